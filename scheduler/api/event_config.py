"""FunctionEventInvokeConfig: how Event invocations of a function are retried and how old they
may grow, and where records of its successes and failures go (DestinationConfig). The settings
live on the EventDispatcher, which reads them for every queued event, so a change applies to
events already waiting.

    PUT (replace) · POST (update) · GET · DELETE  /2019-09-25/functions/{name}/event-invoke-config
    GET  /2019-09-25/functions/{name}/event-invoke-config/list

Lambda keeps one configuration per qualifier: ``?Qualifier=`` (or a qualified name) names a
version's or an alias's, and an Event invocation through that qualifier follows it; without
one, ``$LATEST``'s.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..engine.status import FunctionStatus
from ..errors import InvalidParameterValue, ResourceNotFound
from ..events import MAX_EVENT_AGE_S, MAX_RETRY_ATTEMPTS, DestinationConfig, EventInvokeConfig
from ..events.model import config_key
from . import params, shapes
from .keys import DISPATCHER, SCHEDULER

routes = web.RouteTableDef()

_PATH = "/2019-09-25/functions/{name}/event-invoke-config"
_BODY_LIMIT = 64 * 1024


def _destination(destinations: dict[str, Any], key: str, base: str | None) -> str | None:
    if key not in destinations:
        return base
    value = destinations[key]
    if value is None or value == {}:
        return None  # an empty destination removes it, as on Lambda
    arn = value.get("Destination") if isinstance(value, dict) else None
    if not isinstance(arn, str):
        raise InvalidParameterValue(f"DestinationConfig.{key} must be {{\"Destination\": ARN}}.")
    return arn


_SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


def _config_from(body: dict[str, Any], base: EventInvokeConfig | None) -> EventInvokeConfig:
    if not any(body.get(key) is not None for key in _SETTINGS):
        raise InvalidParameterValue("You must specify at least one of error handling or destination setting.")
    destinations = body.get("DestinationConfig") or {}
    if not isinstance(destinations, dict):
        raise InvalidParameterValue("DestinationConfig must be an object with OnSuccess and OnFailure.")
    old = base.destinations if base else DestinationConfig()
    chosen = DestinationConfig(
        on_success=_destination(destinations, "OnSuccess", old.on_success),
        on_failure=_destination(destinations, "OnFailure", old.on_failure),
    )
    retries = body.get("MaximumRetryAttempts", base.maximum_retry_attempts if base else MAX_RETRY_ATTEMPTS)
    age = body.get("MaximumEventAgeInSeconds", base.maximum_event_age_s if base else MAX_EVENT_AGE_S)
    return EventInvokeConfig(
        maximum_retry_attempts=retries, maximum_event_age_s=age, last_modified=time.time(), destinations=chosen
    )


class _Target:
    """The function and qualifier a request names, and where their configuration is kept."""

    def __init__(self, request: web.Request) -> None:
        self.fn: FunctionStatus = params.function(request)
        self.qualifier = params.qualifier(request) or "$LATEST"
        self.key = config_key(self.fn.name, self.qualifier)
        self.arn = request.app[SCHEDULER].settings.function_arn(self.fn.name, self.qualifier)

    def shape(self, config: EventInvokeConfig) -> dict[str, Any]:
        return shapes.event_invoke_config(self.arn, config)


def _existing(request: web.Request, target: _Target) -> EventInvokeConfig:
    config = request.app[DISPATCHER].configs.get(target.key)
    if config is None:
        unqualified = request.app[SCHEDULER].settings.function_arn(target.fn.name)
        shown = f"{unqualified}:$LATEST" if target.qualifier == "$LATEST" else target.arn
        raise ResourceNotFound(f"The function {shown} doesn't have an EventInvokeConfig")
    return config


@routes.put(_PATH)
async def put_event_invoke_config(request: web.Request) -> web.Response:
    target = _Target(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "PutFunctionEventInvokeConfig")
    config = _config_from(body, None)  # Put replaces: settings left out go back to defaults
    request.app[DISPATCHER].configs[target.key] = config
    return web.json_response(target.shape(config))


@routes.post(_PATH)
async def update_event_invoke_config(request: web.Request) -> web.Response:
    target = _Target(request)
    body = await params.read_json_object(request, _BODY_LIMIT, "UpdateFunctionEventInvokeConfig")
    config = _config_from(body, request.app[DISPATCHER].configs.get(target.key))
    request.app[DISPATCHER].configs[target.key] = config
    return web.json_response(target.shape(config))


@routes.get(_PATH)
async def get_event_invoke_config(request: web.Request) -> web.Response:
    target = _Target(request)
    return web.json_response(target.shape(_existing(request, target)))


@routes.delete(_PATH)
async def delete_event_invoke_config(request: web.Request) -> web.Response:
    target = _Target(request)
    _existing(request, target)
    del request.app[DISPATCHER].configs[target.key]
    return web.Response(status=204)


@routes.get(_PATH + "/list")
async def list_event_invoke_configs(request: web.Request) -> web.Response:
    """Every configuration of the function: $LATEST's, then its versions' and aliases'."""
    fn = params.function(request)
    configs = request.app[DISPATCHER].configs
    settings = request.app[SCHEDULER].settings
    items = []
    for key in sorted(k for k in configs if k == fn.name or k.startswith(fn.name + ":")):
        qualifier = key.partition(":")[2] or "$LATEST"
        items.append(shapes.event_invoke_config(settings.function_arn(fn.name, qualifier), configs[key]))
    return web.json_response({"FunctionEventInvokeConfigs": items})
