"""Reserved and provisioned concurrency. Note the API dates: reserved
concurrency is set and deleted under 2017-10-31 but read under 2019-09-30.

    PUT/GET/DELETE …/concurrency             ─► Scheduler.set_reserved_concurrency
    PUT/GET/DELETE …/provisioned-concurrency ─► Scheduler.set_provisioned_concurrency
                                                 status from Scheduler.provisioned_concurrency

Provisioned concurrency is configured on a published version or an alias; Lambda refuses it on
``$LATEST``, and so does PUT here. A template may still give ``$LATEST`` some (the scheduler
logs that Lambda would need an alias): GET, LIST and DELETE show and remove that one too.
"""

from __future__ import annotations

from aiohttp import web

from ..engine.status import FunctionStatus, ProvisionedStatus
from ..engine.versions import QualifierKind
from ..errors import InvalidParameterValue, ProvisionedConcurrencyConfigNotFound, constraint_violation
from . import params, shapes
from .catalog import timestamp
from .keys import CATALOG, SCHEDULER

routes = web.RouteTableDef()

_BODY_LIMIT = 64 * 1024


@routes.put("/2017-10-31/functions/{name}/concurrency")
async def put_function_concurrency(request: web.Request) -> web.Response:
    fn = params.function(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "PutFunctionConcurrency")
    value = params.integer(body, "ReservedConcurrentExecutions", 0)
    if value is None:
        raise constraint_violation(None, "reservedConcurrentExecutions", "Member must not be null")
    request.app[SCHEDULER].set_reserved_concurrency(fn.name, value)
    return web.json_response({"ReservedConcurrentExecutions": value})


@routes.get("/2019-09-30/functions/{name}/concurrency")
async def get_function_concurrency(request: web.Request) -> web.Response:
    fn = params.function(request)
    return web.json_response({} if fn.reserved is None else {"ReservedConcurrentExecutions": fn.reserved})


@routes.delete("/2017-10-31/functions/{name}/concurrency")
async def delete_function_concurrency(request: web.Request) -> web.Response:
    fn = params.function(request)
    request.app[SCHEDULER].set_reserved_concurrency(fn.name, None)
    return web.Response(status=204)


# --- provisioned --------------------------------------------------------------------------


def _provisioned_target(request: web.Request) -> tuple[FunctionStatus, str]:
    """The function and the qualifier (a version, an alias or $LATEST) the request names."""
    qualifier = params.qualifier(request)
    if qualifier is None:
        raise InvalidParameterValue("Provisioned concurrency needs a Qualifier: a version or an alias.")
    return params.function(request), qualifier


def _not_found() -> ProvisionedConcurrencyConfigNotFound:
    # AWS's words, which name no function.
    return ProvisionedConcurrencyConfigNotFound("No Provisioned Concurrency Config found for this function")


def _configured(request: web.Request, fn: FunctionStatus, qualifier: str) -> tuple[ProvisionedStatus, str] | None:
    """The configuration on ``qualifier`` and its LastModified, or None."""
    record = request.app[CATALOG].function_record(fn)
    if QualifierKind.of(qualifier) is QualifierKind.LATEST:
        # Only a template (or the Python API) gives $LATEST provisioned concurrency.
        if fn.config.provisioned_concurrency == 0:
            return None
        return fn.provisioned, record.provisioned_modified or record.last_modified
    status = request.app[SCHEDULER].provisioned_concurrency(fn.name, qualifier)
    if status is None:
        return None
    return status, record.provisioned_by_qualifier.get(qualifier) or record.last_modified


@routes.put("/2019-09-30/functions/{name}/provisioned-concurrency")
async def put_provisioned_concurrency(request: web.Request) -> web.Response:
    fn, qualifier = _provisioned_target(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "PutProvisionedConcurrencyConfig")
    value = params.integer(body, "ProvisionedConcurrentExecutions", 1)
    if value is None:
        raise constraint_violation(None, "provisionedConcurrentExecutions", "Member must not be null")
    if QualifierKind.of(qualifier) is QualifierKind.LATEST:
        raise InvalidParameterValue("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
    request.app[SCHEDULER].set_provisioned_concurrency(fn.name, value, qualifier)
    request.app[CATALOG].function_record(fn).provisioned_by_qualifier[qualifier] = timestamp()
    configured = _configured(request, fn, qualifier)
    assert configured is not None
    # Environments start in the background; GetProvisionedConcurrencyConfig shows READY later.
    return web.json_response(shapes.provisioned_config(*configured, "IN_PROGRESS"), status=202)


@routes.get("/2019-09-30/functions/{name}/provisioned-concurrency")
async def get_provisioned_concurrency(request: web.Request) -> web.Response:
    if request.query.get("List") == "ALL":
        return await _list_provisioned(request)
    fn, qualifier = _provisioned_target(request)
    configured = _configured(request, fn, qualifier)
    if configured is None:
        raise _not_found()
    return web.json_response(shapes.provisioned_config(*configured))


async def _list_provisioned(request: web.Request) -> web.Response:
    fn = params.function(request)
    qualifiers = request.app[SCHEDULER].provisioned_qualifiers(fn.name)
    items = []
    for qualifier in ("$LATEST", *qualifiers):
        configured = _configured(request, fn, qualifier)
        if configured is not None:
            arn = request.app[SCHEDULER].settings.function_arn(fn.name, qualifier)
            items.append({"FunctionArn": arn, **shapes.provisioned_config(*configured)})
    return web.json_response({"ProvisionedConcurrencyConfigs": items})


@routes.delete("/2019-09-30/functions/{name}/provisioned-concurrency")
async def delete_provisioned_concurrency(request: web.Request) -> web.Response:
    fn, qualifier = _provisioned_target(request)
    if _configured(request, fn, qualifier) is None:
        raise _not_found()
    latest = QualifierKind.of(qualifier) is QualifierKind.LATEST
    request.app[SCHEDULER].set_provisioned_concurrency(fn.name, 0, None if latest else qualifier)
    record = request.app[CATALOG].function_record(fn)
    if latest:
        record.provisioned_modified = None
    else:
        record.provisioned_by_qualifier.pop(qualifier, None)
    return web.Response(status=204)
