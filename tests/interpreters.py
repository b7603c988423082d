"""Python interpreters of other versions on this host, for the runtime tests.

Found in pyenv's versions folder (``$PYENV_ROOT``, else ``~/.pyenv``) or on PATH. A test that
needs one it cannot find is skipped with the reason — or fails, for the runtimes listed in
LAMBDA_SCHEDULER_REQUIRE_RUNTIMES (as .ci/run sets for python3.9, 3.10, 3.12 and 3.13, which
the CI machines have).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from scheduler.engine import runtimes

REQUIRED = tuple(r for r in os.environ.get("LAMBDA_SCHEDULER_REQUIRE_RUNTIMES", "").split(",") if r)


def _pyenv_roots() -> list[Path]:
    roots = [Path(os.environ["PYENV_ROOT"]) / "versions"] if os.environ.get("PYENV_ROOT") else []
    return [*roots, Path.home() / ".pyenv" / "versions", Path("/root/.pyenv/versions")]


@functools.cache
def find(runtime: str) -> str | None:
    """An interpreter of ``runtime`` (python3.N) that starts and is that version, or None."""
    release = runtime.removeprefix("python")
    candidates: list[str] = []
    for root in _pyenv_roots():
        if root.is_dir():
            candidates += [str(d / "bin" / runtime) for d in sorted(root.glob(f"{release}.*"), reverse=True)]
    candidates += runtimes.on_path(runtime)
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        try:
            found = runtimes.probe(candidate).interpreter
        except runtimes.Unusable:
            continue
        if found.version[:2] == runtimes.runtime_version(runtime):
            return candidate
    return None


def require(runtime: str) -> str:
    path = find(runtime)
    if path is not None:
        return path
    message = f"no {runtime} interpreter on this host (looked in pyenv's versions and on PATH)"
    if runtime in REQUIRED:
        pytest.fail(f"{message}, and LAMBDA_SCHEDULER_REQUIRE_RUNTIMES lists it")
    pytest.skip(message)
