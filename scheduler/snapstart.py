"""The SnapStart setting of a function (``SnapStart: {ApplyOn: ...}``) and Lambda's rule on it.

With ``PublishedVersions``, publishing a version runs its Init once in a snapshot process and
forks every environment of that version from it (engine/snapshot.py). ``$LATEST`` is never
snapshotted, as on Lambda. Lambda accepts the setting for Python 3.12 and later only.
"""

from __future__ import annotations

import enum


class SnapStartApplyOn(enum.StrEnum):
    PUBLISHED_VERSIONS = "PublishedVersions"
    NONE = "None"


class OptimizationStatus(enum.StrEnum):
    """What GetFunctionConfiguration reports: On for a version published with SnapStart."""

    ON = "On"
    OFF = "Off"


_FIRST_MINOR = 12  # python3.12 is the first Python runtime Lambda snapshots


def supports_snapstart(runtime: str) -> bool:
    minor = runtime.removeprefix("python3.")
    return minor.isdigit() and int(minor) >= _FIRST_MINOR


def unsupported_message(runtime: str) -> str:
    """Lambda's InvalidParameterValueException text for a runtime it does not snapshot."""
    return f"{runtime} is not supported for SnapStart enabled functions."
