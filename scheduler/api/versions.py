"""Versions and aliases over the 2015-03-31 API.

    POST   …/functions/{name}/versions            PublishVersion          ─► publishing.publish
    GET    …/functions/{name}/versions            ListVersionsByFunction  ($LATEST first)
    POST   …/functions/{name}/aliases             CreateAlias             ─► Scheduler.put_alias
    GET    …/functions/{name}/aliases             ListAliases (?FunctionVersion=)
    GET · PUT · DELETE  …/aliases/{alias}         GetAlias · UpdateAlias · DeleteAlias

An alias's RevisionId lives in the catalog (a new one on each update); the engine keeps what
routing needs. Pages are at most 50 items, with an opaque NextMarker, as ListFunctions's.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from aiohttp import web

from ..engine.versions import Alias
from ..errors import constraint_violation
from ..events.model import config_key
from . import paging, params, publishing, shapes
from .functions import configuration, listed_configurations
from .keys import CATALOG, DISPATCHER, SCHEDULER

routes = web.RouteTableDef()

_BODY_LIMIT = 64 * 1024
_ALIAS_NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9-_]+)$")
_ALIAS_PATTERN = "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
_VERSION = re.compile(r"^(\$LATEST|[0-9]+)$")

T = TypeVar("T")


# --- versions -----------------------------------------------------------------------------


@routes.post("/2015-03-31/functions/{name}/versions")
async def publish_version(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "PublishVersion")
    publishing.check_revision(body, request.app[CATALOG].record(fn).revision_id)
    version = await publishing.publish(
        request, fn, description=params.string(body, "Description"), code_sha256=params.string(body, "CodeSha256")
    )
    return await configuration(request, version, status=201)


@routes.get("/2015-03-31/functions/{name}/versions")
async def list_versions_by_function(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    statuses = request.app[SCHEDULER].versions(fn.name)
    page, marker = paging.page(request, statuses, lambda status: paging.version_key(status.version))
    out: dict[str, Any] = {"Versions": await listed_configurations(request, page, qualify_latest=True)}
    if marker is not None:
        out["NextMarker"] = marker
    return web.json_response(out)


# --- aliases ------------------------------------------------------------------------------


def _alias_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise constraint_violation(value, "name", "Member must not be null")
    if len(value) > 128:
        raise constraint_violation(value, "name", "Member must have length less than or equal to 128")
    if not _ALIAS_NAME.match(value):
        raise constraint_violation(value, "name", _ALIAS_PATTERN)
    return value


def _function_version(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise constraint_violation(value, "functionVersion", "Member must not be null")
    if not _VERSION.match(value):
        raise constraint_violation(
            value, "functionVersion", r"Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)"
        )
    return value


def _weights(body: dict[str, Any], base: Alias | None) -> dict[str, float]:
    routing = params.mapping(body, "RoutingConfig")
    if routing is None:
        return dict(base.weights) if base is not None else {}
    weights = routing.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise constraint_violation(weights, "routingConfig.additionalVersionWeights", "Member must be a map")
    return {str(k): v for k, v in weights.items()}


def _shape(request: web.Request, name: str, alias: Alias, *, renew: bool = False) -> dict[str, Any]:
    fn = request.app[SCHEDULER].status(name)
    revision = request.app[CATALOG].function_record(fn).alias_revision(alias.name, renew=renew)
    return shapes.alias_configuration(fn.arn, alias, revision)


@routes.post("/2015-03-31/functions/{name}/aliases")
async def create_alias(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "CreateAlias")
    alias = Alias(
        name=_alias_name(body.get("Name")),
        function_version=_function_version(body.get("FunctionVersion")),
        weights=_weights(body, None),
        description=params.string(body, "Description") or "",
    )
    request.app[SCHEDULER].put_alias(fn.name, alias, create=True)
    return web.json_response(_shape(request, fn.name, alias, renew=True), status=201)


@routes.get("/2015-03-31/functions/{name}/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    aliases = request.app[SCHEDULER].aliases(fn.name)
    version = request.query.get("FunctionVersion")
    if version is not None:
        aliases = [a for a in aliases if version in a.versions]
    page, marker = paging.page(request, aliases, lambda alias: alias.name)
    out: dict[str, Any] = {"Aliases": [_shape(request, fn.name, alias) for alias in page]}
    if marker is not None:
        out["NextMarker"] = marker
    return web.json_response(out)


@routes.get("/2015-03-31/functions/{name}/aliases/{alias}")
async def get_alias(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    alias = request.app[SCHEDULER].alias(fn.name, request.match_info["alias"])
    return web.json_response(_shape(request, fn.name, alias))


@routes.put("/2015-03-31/functions/{name}/aliases/{alias}")
async def update_alias(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    scheduler = request.app[SCHEDULER]
    current = scheduler.alias(fn.name, request.match_info["alias"])
    body = await params.read_json_object(request, _BODY_LIMIT, "UpdateAlias")
    publishing.check_revision(body, request.app[CATALOG].function_record(fn).alias_revision(current.name))
    version = body.get("FunctionVersion")
    description = params.string(body, "Description")
    alias = Alias(
        name=current.name,
        function_version=current.function_version if version is None else _function_version(version),
        weights=_weights(body, current),
        description=current.description if description is None else description,
    )
    scheduler.put_alias(fn.name, alias, create=False)
    return web.json_response(_shape(request, fn.name, alias, renew=True))


@routes.delete("/2015-03-31/functions/{name}/aliases/{alias}")
async def delete_alias(request: web.Request) -> web.Response:
    fn = params.describe_unqualified(request)
    name = request.match_info["alias"]
    request.app[SCHEDULER].delete_alias(fn.name, name)
    record = request.app[CATALOG].function_record(fn)
    record.alias_revisions.pop(name, None)
    record.provisioned_by_qualifier.pop(name, None)
    request.app[DISPATCHER].configs.pop(config_key(fn.name, name), None)
    return web.Response(status=204)
