"""The project's performance targets, checked the same way by every benchmark: each gives
what was measured, whether it met the target, and by how much it missed."""

from __future__ import annotations

import math
from typing import Any


def at_least(target_id: str, what: str, measured: float | None, target: float, unit: str = "x") -> dict[str, Any]:
    return _check(target_id, what, measured, target, unit, higher_is_better=True)


def at_most(target_id: str, what: str, measured: float | None, target: float, unit: str = "x") -> dict[str, Any]:
    return _check(target_id, what, measured, target, unit, higher_is_better=False)


def _number(value: float) -> str:
    size = abs(value)
    if size >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.0%}"
    return f"{_number(value)} {unit}"


def _check(
    target_id: str, what: str, measured: float | None, target: float, unit: str, higher_is_better: bool
) -> dict[str, Any]:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return {
            "id": target_id,
            "what": what,
            "target": ("≥ " if higher_is_better else "≤ ") + _fmt(target, unit),
            "measured": "not measured",
            "met": None,
            "miss": None,
        }
    met = measured >= target if higher_is_better else measured <= target
    miss = None
    if not met:
        gap = abs(measured - target)
        relative = gap / target if target else math.inf
        side = "below" if higher_is_better else "above"
        amount = f"{gap:.2f}" if unit == "x" else _fmt(gap, unit)
        miss = f"{amount} {side} the target ({relative:.0%})"
    return {
        "id": target_id,
        "what": what,
        "target": ("≥ " if higher_is_better else "≤ ") + _fmt(target, unit),
        "measured": _fmt(measured, unit),
        "met": met,
        "miss": miss,
    }
