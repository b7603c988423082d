"""Runtime hooks of SnapStart, with the API of the ``snapshot-restore-py`` package.

Code written for Lambda does ``from snapshot_restore_py import register_before_snapshot,
register_after_restore``; Lambda's Python runtimes bring that package. This module stands in under that name
(``install``), so such code imports unchanged, and the hooks run in Lambda's order: before the snapshot in
the reverse order of registration, after a restore in the order of registration.

Runs inside environments, on the function's interpreter: Python 3.9 syntax only.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before: list[Hook] = []
_after: list[Hook] = []

MODULE = "snapshot_restore_py"


def _register(
    registry: list[Hook], func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[..., Any]:
    registry.append((func, args, kwargs))
    return func


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """As a decorator (``@register_before_snapshot``) or a call with the hook's arguments."""
    return _register(_before, func, args, kwargs)


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    return _register(_after, func, args, kwargs)


def get_before_snapshot() -> list[Hook]:
    return list(_before)


def get_after_restore() -> list[Hook]:
    return list(_after)


def install() -> None:
    """Make ``import snapshot_restore_py`` find this module before the handler's module is
    imported. It stands in even where the real package is installed: that package keeps its
    registries to itself, and one registry the runtime reads is what makes the order sure."""
    stand_in = types.ModuleType(MODULE)
    for name in ("register_before_snapshot", "register_after_restore", "get_before_snapshot", "get_after_restore"):
        setattr(stand_in, name, globals()[name])
    sys.modules[MODULE] = stand_in


def run_before_snapshot() -> None:
    """Reverse order of registration; an exception fails the snapshot (the caller's Init)."""
    for func, args, kwargs in reversed(_before):
        func(*args, **kwargs)


def run_after_restore() -> None:
    for func, args, kwargs in _after:
        func(*args, **kwargs)
