"""``lambda-scheduler runtimes [RUNTIME ...]``: which interpreter each runtime would run on.

Choosing one installs msgspec for it where it lacks it (engine/workersite.py), so running this
once ahead of ``serve`` means the server itself never needs the package index. Exits 1 if a
runtime named on the command line has no interpreter of its own here (what ``--strict-runtime``
would refuse), so a CI step can insist on them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import SUPPORTED_RUNTIMES, SchedulerConfig
from .engine.runtimes import Match, Runtimes


def report(settings: SchedulerConfig, runtimes: Sequence[str]) -> int:
    named = list(runtimes)
    unknown = [r for r in named if r not in SUPPORTED_RUNTIMES]
    if unknown:
        raise ValueError(f"not a runtime Lambda supports: {', '.join(unknown)} (one of {', '.join(SUPPORTED_RUNTIMES)})")
    chooser = Runtimes(settings)
    missing = 0
    for runtime in named or SUPPORTED_RUNTIMES:
        choice = chooser.choose(runtime)
        interpreter = choice.interpreter
        if choice.match is Match.EXACT:
            extra = f"  (msgspec from {interpreter.site})" if interpreter.site else ""
            print(f"{runtime:11} Python {interpreter.release:8} {interpreter.executable}{extra}")
            continue
        missing += runtime in named
        print(f"{runtime:11} none here: {choice.reason}; would run on Python {interpreter.release} ({interpreter.executable})")
    return 1 if missing else 0
