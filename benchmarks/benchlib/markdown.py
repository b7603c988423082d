"""Markdown pieces for BENCHMARKS.md: numbers, tables, images, loading a result file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .servers import ROOT


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def img(results: Path, name: str, alt: str) -> str:
    path = results / f"{name}.png"
    return f"![{alt}]({path.relative_to(ROOT).as_posix()})\n" if path.is_file() else ""


def num(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, (int, float)):
        text = f"{value:,.{digits}f}"
        return f"{text} {unit}".rstrip()
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
