"""What a node applies in-process when another node's change cannot be replayed through its
API: a published version with the code and configuration it was published with (PublishVersion
only ever publishes the $LATEST there is now), and the identities a replay would make afresh
(RevisionId, CodeSha256, LastModified), which must be the same on every node so that a client
may read them through one node and send them as preconditions through another.

    entry <fn>.version.<N> ─► code from the Object Store ─► a new folder of the code store
        ─► $LATEST's FunctionConfig with the version's settings and that folder
        ─► Scheduler.adopt_version (its own pool, numbered N) ─► its catalog record
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from ..api.catalog import FunctionRecord
from ..api.functions import config_changes
from ..api.keys import CATALOG, CODE_STORE, SCHEDULER
from ..codezip import CodeInfo
from ..engine.status import FunctionStatus

# FunctionConfiguration members a replay sends back as the request's (same names, same shapes).
CONFIG_MEMBERS = (
    "Runtime",
    "Handler",
    "Role",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "EphemeralStorage",
    "LoggingConfig",
    "DeadLetterConfig",
    "SnapStart",
)


def replay_settings(configuration: dict[str, Any]) -> dict[str, Any]:
    """The Create/UpdateFunctionConfiguration body that gives another node these settings."""
    settings = {k: configuration[k] for k in CONFIG_MEMBERS if k in configuration}
    settings.setdefault("DeadLetterConfig", {})  # removed on the first node: removed here
    if "SnapStart" in settings:
        settings["SnapStart"] = {"ApplyOn": settings["SnapStart"].get("ApplyOn", "None")}
    return settings


def take_identity(record: FunctionRecord, configuration: dict[str, Any]) -> None:
    """The first node's RevisionId, LastModified and code digest, in this node's record."""
    record.revision_id = str(configuration.get("RevisionId") or record.revision_id)
    record.last_modified = str(configuration.get("LastModified") or record.last_modified)
    if "CodeSha256" in configuration and "CodeSize" in configuration:
        record.code = CodeInfo(int(configuration["CodeSize"]), str(configuration["CodeSha256"]))


async def adopt_version(
    app: web.Application, name: str, number: str, configuration: dict[str, Any], code: bytes
) -> FunctionStatus:
    """Version ``number`` of ``name`` as its answered ``configuration`` says, running ``code`` (a zip)."""
    scheduler, store = app[SCHEDULER], app[CODE_STORE]
    folder, _ = await store.unpack_zip(name, code)
    try:
        fn = scheduler.get_function(name)  # again: the unpacking let other changes run
        changes = config_changes(replay_settings(configuration), fn.config)
        config = fn.config.replace(code_dir=folder, **changes)
        version = scheduler.adopt_version(name, number, config, str(configuration.get("CodeSha256", "")))
    except BaseException:
        store.discard(folder)
        raise
    if Path(version.config.code_dir) != folder:  # it existed already
        store.discard(folder)
        return version
    record = app[CATALOG].record(version)
    record.code_dir = folder
    take_identity(record, configuration)
    return version
