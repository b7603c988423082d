"""Reserved and provisioned concurrency. Note the API dates: reserved
concurrency is set and deleted under 2017-10-31 but read under 2019-09-30.

    PUT/GET/DELETE …/concurrency             ─► Scheduler.set_reserved_concurrency
    PUT/GET/DELETE …/provisioned-concurrency ─► Scheduler.set_provisioned_concurrency
                                                 status from FunctionStatus.provisioned

Provisioned concurrency is accepted on ``$LATEST`` (Lambda allows it only on a version or an
alias): this scheduler has no versions, and it is the way to pre-initialise environments here.
"""

from __future__ import annotations

from aiohttp import web

from ..engine.status import FunctionStatus
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


def _provisioned_target(request: web.Request) -> FunctionStatus:
    if "Qualifier" not in request.query and params.qualifier(request) is None:
        raise InvalidParameterValue("Provisioned concurrency needs a Qualifier ($LATEST here).")
    return params.function(request)


def _not_found(fn: FunctionStatus) -> ProvisionedConcurrencyConfigNotFound:
    return ProvisionedConcurrencyConfigNotFound("No Provisioned Concurrency Config found for this function")


@routes.put("/2019-09-30/functions/{name}/provisioned-concurrency")
async def put_provisioned_concurrency(request: web.Request) -> web.Response:
    fn = _provisioned_target(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "PutProvisionedConcurrencyConfig")
    value = params.integer(body, "ProvisionedConcurrentExecutions", 1)
    if value is None:
        raise constraint_violation(None, "provisionedConcurrentExecutions", "Member must not be null")
    request.app[SCHEDULER].set_provisioned_concurrency(fn.name, value)
    fn = request.app[SCHEDULER].status(fn.name)
    record = request.app[CATALOG].record(fn)
    record.provisioned_modified = timestamp()
    # Environments start in the background; GetProvisionedConcurrencyConfig shows READY later.
    return web.json_response(shapes.provisioned_config(fn, record, "IN_PROGRESS"), status=202)


@routes.get("/2019-09-30/functions/{name}/provisioned-concurrency")
async def get_provisioned_concurrency(request: web.Request) -> web.Response:
    if request.query.get("List") == "ALL":
        return await _list_provisioned(request)
    fn = _provisioned_target(request)
    if fn.config.provisioned_concurrency == 0:
        raise _not_found(fn)
    return web.json_response(shapes.provisioned_config(fn, request.app[CATALOG].record(fn)))


async def _list_provisioned(request: web.Request) -> web.Response:
    fn = params.function(request)
    items = []
    if fn.config.provisioned_concurrency:
        item = shapes.provisioned_config(fn, request.app[CATALOG].record(fn))
        items.append({"FunctionArn": f"{fn.arn}:$LATEST", **item})
    return web.json_response({"ProvisionedConcurrencyConfigs": items})


@routes.delete("/2019-09-30/functions/{name}/provisioned-concurrency")
async def delete_provisioned_concurrency(request: web.Request) -> web.Response:
    fn = _provisioned_target(request)
    if fn.config.provisioned_concurrency == 0:
        raise _not_found(fn)
    request.app[SCHEDULER].set_provisioned_concurrency(fn.name, 0)
    request.app[CATALOG].record(fn).provisioned_modified = None
    return web.Response(status=204)
