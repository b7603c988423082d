"""Management API: create, read, list, update and delete functions.

    boto3 create_function / update_function_configuration / … ─► these routes
        ─► params (validation) ─► CodeStore.unpack (zip) ─► FunctionConfig
        ─► Scheduler.add_function / update_function / remove_function
        ─► catalog (role, tags, revision) ─► shapes (FunctionConfiguration JSON)

A configuration change goes through ``Scheduler.update_function``: new invocations get new
environments, in-flight ones finish on the old. Changes apply to ``$LATEST``; ``Publish`` makes
it a version too (publishing.py), and DeleteFunction with a Qualifier deletes one version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import validation
from ..config import EPHEMERAL_STORAGE, MEMORY, TIMEOUT, FunctionConfig
from ..engine.status import FunctionStatus
from ..engine.versions import LATEST, QualifierKind
from ..errors import InvalidParameterValue, ResourceConflict, constraint_violation
from ..events.destinations import dead_letter_target
from ..events.model import config_key
from ..zipupload import ZIP_FILE_ERROR, Base64Zip
from . import paging, params, publishing, shapes, uploads
from .catalog import FunctionRecord, Lifecycle
from .keys import CATALOG, CODE_STORE, DISPATCHER, SCHEDULER, SETTINGS
from .publishing import check_revision

routes = web.RouteTableDef()

# Lambda's limit on a CreateFunction / UpdateFunctionCode request, as its refusal states it: a
# 50 MB zip in base64 (69,905,067 bytes) and 256 KB for the rest of the request.
CODE_REQUEST_LIMIT = 70_167_211
CONFIG_REQUEST_LIMIT = 1024 * 1024


# --- reading a configuration from a request ---------------------------------------------------


_STRINGS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("Runtime", "runtime", validation.runtime),
    ("Handler", "handler", validation.handler),
    ("Description", "description", validation.description),
)


def config_changes(body: dict[str, Any], current: FunctionConfig | None = None) -> dict[str, Any]:
    """FunctionConfig keywords for the settings present in a Create / UpdateConfiguration body
    (``current``: the function an update changes), each checked with Lambda's words."""
    changes: dict[str, Any] = {}
    for key, field, check in _STRINGS:
        text = params.string(body, key)
        if text is not None:
            changes[field] = check(text)
    for key, field, bound in (("Timeout", "timeout_s", TIMEOUT), ("MemorySize", "memory_mb", MEMORY)):
        number = params.bounded(body, key, bound)
        if number is not None:
            changes[field] = number
    environment = params.mapping(body, "Environment")
    if environment is not None:
        variables = environment.get("Variables") or {}
        if not isinstance(variables, dict):
            raise constraint_violation(variables, "environment.variables", "Member must be a map")
        changes["environment"] = variables
    storage = params.mapping(body, "EphemeralStorage")
    if storage is not None:
        size = storage.get("Size")
        changes["ephemeral_storage_mb"] = params.check_integer(
            size, EPHEMERAL_STORAGE.member, EPHEMERAL_STORAGE.low, EPHEMERAL_STORAGE.high
        )
    logging = params.mapping(body, "LoggingConfig")
    if logging is not None:
        changes["logging"] = validation.logging_config(logging, current.logging if current else None)
    snapstart = params.mapping(body, "SnapStart")
    if snapstart is not None:
        changes["snapstart"] = validation.snapstart(snapstart)
    tracing = params.mapping(body, "TracingConfig")
    if tracing is not None:
        changes["tracing"] = validation.tracing_mode(tracing)
    if body.get("Layers"):
        raise InvalidParameterValue(
            "Layers given by ARN cannot be fetched by lambda-scheduler; define them in a SAM template instead."
        )
    return changes


_UNCHANGED = object()


def _dead_letter(body: dict[str, Any]) -> Any:
    """DeadLetterConfig.TargetArn: an ARN, None (an empty one removes it), or _UNCHANGED."""
    config = params.mapping(body, "DeadLetterConfig")
    if config is None:
        return _UNCHANGED
    target = config.get("TargetArn")
    if not target:
        return None
    if not isinstance(target, str):
        raise constraint_violation(target, "deadLetterConfig.targetArn", "Member must be a string")
    return dead_letter_target(target)


def _set_dead_letter(request: web.Request, name: str, target: Any) -> None:
    if target is _UNCHANGED:
        return
    letters = request.app[DISPATCHER].dead_letters
    if target is None:
        letters.pop(name, None)
    else:
        letters[name] = target


def _role(body: dict[str, Any]) -> str | None:
    role = params.string(body, "Role")
    return None if role is None else validation.role(role)


def _architectures(body: dict[str, Any]) -> list[str] | None:
    value = body.get("Architectures")
    return None if value is None else validation.architectures(value)


def _zip_file(value: Any) -> Base64Zip:
    """The ZipFile, still base64 (uploads.py left it undecoded; CodeStore decodes it)."""
    if not isinstance(value, Base64Zip):
        raise InvalidParameterValue(ZIP_FILE_ERROR)
    return value


def _code_zip(code: dict[str, Any]) -> Base64Zip:
    if "ZipFile" in code:
        return _zip_file(code["ZipFile"])
    if code.get("ImageUri"):
        raise InvalidParameterValue("Container image functions are not supported by lambda-scheduler; use a zip.")
    if code.get("S3Bucket") or code.get("S3Key"):
        raise InvalidParameterValue("Code in S3 cannot be fetched by lambda-scheduler; upload the zip as ZipFile.")
    raise InvalidParameterValue("Code must have a ZipFile.")


async def configuration(
    request: web.Request, fn: FunctionStatus, status: int = 200, qualifier: str | None = None
) -> web.Response:
    """A FunctionConfiguration response: of $LATEST, or of the version ``fn`` is; ``qualifier``
    as the request named it."""
    catalog = request.app[CATALOG]
    record = catalog.record(fn)
    dead_letter = request.app[DISPATCHER].dead_letters.get(fn.name)
    body = shapes.function_configuration(fn, record, await catalog.code(fn), dead_letter, qualifier)
    record.settle()  # a Pending / InProgress answer is the only one that says so (catalog.py)
    return web.json_response(body, status=status)


# --- routes ---------------------------------------------------------------------------------


@routes.post("/2015-03-31/functions")
@routes.post("/2015-03-31/functions/")
async def create_function(request: web.Request) -> web.Response:
    uploads.check_length(request, CODE_REQUEST_LIMIT, "CreateFunction")
    async with request.app[CODE_STORE].upload_slot:
        return await _create_function(request)


async def _create_function(request: web.Request) -> web.Response:
    body = await uploads.read_code_request(
        request, CODE_REQUEST_LIMIT, "CreateFunction", ("Code", "ZipFile"), request.app[SETTINGS].header_timeout_s
    )
    scheduler = request.app[SCHEDULER]
    name = params.function_name(request, body.get("FunctionName"))
    if body.get("PackageType", "Zip") != "Zip":
        raise InvalidParameterValue("Container image functions are not supported by lambda-scheduler; use a zip.")
    changes = config_changes(body)
    dead_letter = _dead_letter(body)
    if "runtime" not in changes or "handler" not in changes:
        raise InvalidParameterValue(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages."
        )
    await scheduler.prepare_runtime(changes["runtime"])  # finds its interpreter off the loop
    code = params.mapping(body, "Code")
    if code is None:
        raise constraint_violation(None, "code", "Member must not be null")
    data = _code_zip(code)
    architectures = _architectures(body)
    tags = params.mapping(body, "Tags") or {}
    role = _role(body)
    if name in scheduler.functions:
        raise ResourceConflict(f"Function already exist: {name}")
    store = request.app[CODE_STORE]
    code_dir, info = await store.unpack_upload(name, data)
    if name in scheduler.functions:  # created by the template's reload or the Python API meanwhile
        store.discard(code_dir)
        raise ResourceConflict(f"Function already exist: {name}")
    try:
        scheduler.add_function(FunctionConfig(name=name, code_dir=code_dir, **changes))
    except BaseException:
        store.discard(code_dir)
        raise
    fn = scheduler.functions[name]
    _set_dead_letter(request, name, dead_letter)
    record = FunctionRecord(fn, role or request.app[CATALOG].default_role, code=info, code_dir=code_dir)
    record.tags = {str(k): str(v) for k, v in tags.items()}
    if architectures:
        record.architectures = architectures
    request.app[CATALOG].add(record)
    if body.get("Publish") is True:
        fn = await publishing.publish(request, fn)
    record.changing(Lifecycle.PENDING)
    return await configuration(request, fn, status=201)


@routes.get("/2015-03-31/functions")
@routes.get("/2015-03-31/functions/")
async def list_functions(request: web.Request) -> web.Response:
    """Every function's $LATEST; with ?FunctionVersion=ALL, each published version too (listed
    after its $LATEST, with qualified ARNs, as ListVersionsByFunction lists them)."""
    scheduler = request.app[SCHEDULER]
    every_version = request.query.get("FunctionVersion")
    if every_version is not None and every_version != "ALL":
        raise constraint_violation(every_version, "functionVersion", "Member must satisfy enum value set: [ALL]")
    names = sorted(scheduler.functions)
    statuses: list[FunctionStatus]
    if every_version is None:
        functions = scheduler.functions
        statuses = [functions[name] for name in names]
    else:
        statuses = [status for name in names for status in scheduler.versions(name)]
    # NUL sorts before every character a name may hold, so "a" and its versions precede "a-b".
    listed, marker = paging.page(request, statuses, lambda s: f"{s.name}\0{paging.version_key(s.version)}")
    configurations = await listed_configurations(request, listed, qualify_latest=every_version is not None)
    out: dict[str, Any] = {"Functions": [shapes.listed_configuration(c) for c in configurations]}
    if marker is not None:
        out["NextMarker"] = marker
    return web.json_response(out)


async def listed_configurations(
    request: web.Request, statuses: list[FunctionStatus], *, qualify_latest: bool
) -> list[dict[str, Any]]:
    """The configurations of a list answer; ``qualify_latest``: where versions are listed,
    $LATEST's ARN carries its qualifier like every other version's."""
    catalog, letters = request.app[CATALOG], request.app[DISPATCHER].dead_letters
    out = []
    for status in statuses:
        item = shapes.function_configuration(status, catalog.record(status), await catalog.code(status), letters.get(status.name))
        if qualify_latest and status.version == LATEST:
            item["FunctionArn"] = f"{status.arn}:$LATEST"
        out.append(item)
    return out


@routes.get("/2015-03-31/functions/{name}")
async def get_function(request: web.Request) -> web.Response:
    fn = params.function(request)
    catalog = request.app[CATALOG]
    dead_letter = request.app[DISPATCHER].dead_letters.get(fn.name)
    code = await catalog.code(fn)
    return web.json_response(shapes.get_function(fn, catalog.record(fn), code, dead_letter, params.qualifier(request)))


@routes.get("/2015-03-31/functions/{name}/configuration")
async def get_function_configuration(request: web.Request) -> web.Response:
    return await configuration(request, params.function(request), qualifier=params.qualifier(request))


@routes.put("/2015-03-31/functions/{name}/configuration")
async def update_function_configuration(request: web.Request) -> web.Response:
    fn = params.function(request)
    body = await params.read_json_object(request, CONFIG_REQUEST_LIMIT, "UpdateFunctionConfiguration")
    record = request.app[CATALOG].record(fn)
    check_revision(body, record.revision_id)
    changes = config_changes(body, fn.config)
    dead_letter = _dead_letter(body)
    role = _role(body)
    if "runtime" in changes:
        await request.app[SCHEDULER].prepare_runtime(changes["runtime"])
    if changes:
        request.app[SCHEDULER].update_function(fn.config.replace(**changes))
    _set_dead_letter(request, fn.name, dead_letter)
    if role is not None:
        record.role = role
    record.touch()
    record.changing()
    return await configuration(request, request.app[SCHEDULER].status(fn.name))


@routes.put("/2015-03-31/functions/{name}/code")
async def update_function_code(request: web.Request) -> web.Response:
    fn = params.function(request)
    uploads.check_length(request, CODE_REQUEST_LIMIT, "UpdateFunctionCode")
    async with request.app[CODE_STORE].upload_slot:
        return await _update_function_code(request, fn)


async def _update_function_code(request: web.Request, fn: FunctionStatus) -> web.Response:
    body = await uploads.read_code_request(
        request, CODE_REQUEST_LIMIT, "UpdateFunctionCode", ("ZipFile",), request.app[SETTINGS].header_timeout_s
    )
    catalog = request.app[CATALOG]
    check_revision(body, catalog.record(fn).revision_id)
    data = _code_zip(body)
    architectures = _architectures(body)
    store = request.app[CODE_STORE]
    code_dir, info = await store.unpack_upload(fn.name, data)
    if body.get("DryRun") is True:
        store.discard(code_dir)
        return await configuration(request, fn)
    current = request.app[SCHEDULER].functions.get(fn.name)
    if current is None or current.incarnation != fn.incarnation:  # deleted or replaced meanwhile
        store.discard(code_dir)
        raise ResourceConflict(f"The function {fn.name} changed while its code was being unpacked; try again.")
    record = catalog.record(fn)
    old_dir = record.code_dir
    try:
        request.app[SCHEDULER].update_function(fn.config.replace(code_dir=code_dir))
    except BaseException:
        store.discard(code_dir)
        raise
    record.code, record.code_dir = info, code_dir
    publishing.retire_code(request, fn.name, old_dir, current)
    if architectures:
        record.architectures = architectures
    record.touch()
    updated = request.app[SCHEDULER].status(fn.name)
    if body.get("Publish") is True:
        updated = await publishing.publish(request, updated)
    record.changing()
    return await configuration(request, updated)


@routes.delete("/2015-03-31/functions/{name}")
async def delete_function(request: web.Request) -> web.Response:
    """The whole function, with its versions and aliases; with a Qualifier, one version."""
    qualifier = params.qualifier(request)
    if qualifier == LATEST:
        raise InvalidParameterValue("$LATEST version cannot be deleted without deleting the function.")
    if QualifierKind.of(qualifier) is QualifierKind.ALIAS:
        raise InvalidParameterValue("Deletion of aliases is not supported.")
    fn = params.function(request)
    scheduler, dispatcher = request.app[SCHEDULER], request.app[DISPATCHER]
    if qualifier is not None:
        deleted = scheduler.delete_version(fn.name, qualifier)
        dispatcher.configs.pop(config_key(fn.name, qualifier), None)
        request.app[CATALOG].function_record(fn).versions.pop(qualifier, None)
        publishing.retire_code(request, fn.name, Path(deleted.config.code_dir), deleted)
        return web.Response(status=204)
    statuses = scheduler.versions(fn.name)
    scheduler.remove_function(fn.name)
    for key in [k for k in dispatcher.configs if k == fn.name or k.startswith(fn.name + ":")]:
        del dispatcher.configs[key]
    dispatcher.dead_letters.pop(fn.name, None)
    request.app[CATALOG].forget(fn.name)
    publishing.retire_all_code(request, statuses)
    return web.Response(status=204)


@routes.get("/2016-08-19/account-settings")
@routes.get("/2016-08-19/account-settings/")
async def get_account_settings(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    catalog = request.app[CATALOG]
    total = 0
    for fn in list(scheduler.functions.values()):
        total += (await catalog.code(fn)).size
    return web.json_response(shapes.account_settings(scheduler, total))
