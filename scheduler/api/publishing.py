"""Publishing versions, and the code folders versions keep alive: shared by PublishVersion
(versions.py) and by CreateFunction / UpdateFunctionCode with ``Publish`` (functions.py).

    publish ─► RevisionId and CodeSha256 preconditions (Lambda's errors)
            ─► Scheduler.publish_version (an unchanged $LATEST gives back the last version)
            ─► the version's catalog record, with the code digest $LATEST has now

An uploaded revision folder stays while ``$LATEST`` or any published version runs it: a later
UpdateFunctionCode does not remove a folder a version still uses, deleting that version does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..engine.status import FunctionStatus
from ..errors import InvalidParameterValue, PreconditionFailed, ResourceConflict
from .keys import CATALOG, CODE_STORE, SCHEDULER


def check_revision(body: dict[str, Any], current: str) -> None:
    """A request's RevisionId precondition against the current one (a function's, an alias's)."""
    revision = body.get("RevisionId")
    if revision is not None and revision != current:
        raise PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )


async def publish(
    request: web.Request, fn: FunctionStatus, *, description: str | None = None, code_sha256: str | None = None
) -> FunctionStatus:
    """Publish ``fn`` ($LATEST) as a version; returns the version's snapshot."""
    catalog, scheduler = request.app[CATALOG], request.app[SCHEDULER]
    code = await catalog.code(fn)
    current = scheduler.functions.get(fn.name)
    if current is None or current.incarnation != fn.incarnation or current.config != fn.config:
        raise ResourceConflict(f"The function {fn.name} changed while its version was being published; try again.")
    if code_sha256 is not None and code_sha256 != code.sha256:
        raise InvalidParameterValue(
            f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST ({code.sha256}). "
            "Please try again with the CodeSHA256 in $LATEST."
        )
    version = scheduler.publish_version(fn.name, description=description, code_digest=code.sha256)
    catalog.record(version)  # made now, so it keeps the digest of the code published
    return version


def code_in_use(request: web.Request, name: str, path: Path) -> bool:
    """Whether $LATEST or a published version of ``name`` runs the code in ``path``."""
    scheduler = request.app[SCHEDULER]
    if name not in scheduler.functions:
        return False
    return any(Path(v.config.code_dir) == path for v in scheduler.versions(name))


def retire_code(request: web.Request, name: str, path: Path | None, drained: FunctionStatus) -> None:
    """Remove an uploaded revision folder once ``drained``'s environments are gone, unless the
    function still runs it (a published version does)."""
    store = request.app[CODE_STORE]
    if path is not None and store.owns(path) and not code_in_use(request, name, path):
        store.retire(path, drained.drained)


def retire_all_code(request: web.Request, statuses: Iterable[FunctionStatus]) -> None:
    """A deleted function: each uploaded folder goes once every version that ran it drained."""
    store = request.app[CODE_STORE]
    users: dict[Path, list[FunctionStatus]] = {}
    for status in statuses:
        users.setdefault(Path(status.config.code_dir), []).append(status)
    for path, using in users.items():
        if store.owns(path):
            store.retire(path, *(status.drained for status in using))
