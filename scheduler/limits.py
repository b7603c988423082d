"""Resource isolation of execution environments (memory, CPU, /tmp, containment).

``enter_environment`` runs in the forked child before user code; the scheduler side decides
what to ask for. With no isolation requested the child runs with the zygote's limits.
"""

from __future__ import annotations

from collections.abc import Mapping


def enter_environment(isolation: Mapping[str, object], zygote_pid: int) -> None:
    """Apply the isolation described by ``isolation`` to the calling (child) process."""
    if not isolation:
        return
    raise NotImplementedError(f"isolation {sorted(isolation)} is not available")
