"""The Invoke API: ``POST /2015-03-31/functions/{name}/invocations``.

    X-Amz-Invocation-Type
      RequestResponse ─► body ≤ 6 MB, JSON ─► Scheduler.invoke ─► 200, the function's payload
                         (X-Amz-Function-Error, X-Amz-Log-Result with LogType Tail,
                          X-Amz-Executed-Version)
      Event ──────────► body ≤ 1 MB, JSON ─► EventQueue ─► 202 at once (dispatcher.py runs it)
      DryRun ─────────► the function exists and the body is valid ─► 204

The request id made by api/front.py is handed to the invocation, so the response's
``x-amzn-RequestId`` is the handler's ``context.aws_request_id``, on errors too.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from .. import invocation_log
from ..engine.protocol import MAX_PAYLOAD
from ..errors import InvalidRequestContent, RequestTooLarge, SchedulerClosed, constraint_violation
from ..events import Event
from . import params
from .keys import EVENT_QUEUE, REQUEST_ID, SCHEDULER, STATE

routes = web.RouteTableDef()

MAX_EVENT_PAYLOAD = 1024 * 1024  # raised from 256 KB in October 2025
MAX_CLIENT_CONTEXT = 3583  # bytes of base64


def _sync_too_large(size: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation")


def _event_too_large(size: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"{size} byte payload is too large for the Event invocation type (limit {MAX_EVENT_PAYLOAD} bytes)"
    )


def _client_context(value: str | None) -> str | None:
    """The decoded JSON text of ``X-Amz-Client-Context`` (base64 JSON, sync only)."""
    if value is None:
        return None
    if len(value) > MAX_CLIENT_CONTEXT:
        raise constraint_violation(
            "...", "clientContext", f"Member must have length less than or equal to {MAX_CLIENT_CONTEXT}"
        )
    invalid = InvalidRequestContent("Client context must be a valid Base64-encoded JSON object.")
    try:
        text = base64.b64decode(value, validate=True).decode()
        parsed = json.loads(text)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(parsed, dict):
        raise invalid
    return text


@routes.post("/2015-03-31/functions/{name}/invocations")
async def invoke(request: web.Request) -> web.Response:
    kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind == "RequestResponse":
        return await _request_response(request)
    if kind == "Event":
        return await _event(request)
    if kind == "DryRun":
        return await _dry_run(request)
    raise constraint_violation(
        kind, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
    )


async def _request_response(request: web.Request) -> web.Response:
    headers = request.headers
    log_type = headers.get("X-Amz-Log-Type", "None")
    if log_type not in ("None", "Tail"):
        raise constraint_violation(log_type, "logType", "Member must satisfy enum value set: [Tail, None]")
    client_context = _client_context(headers.get("X-Amz-Client-Context"))
    body = await params.read_body(request, MAX_PAYLOAD, _sync_too_large)
    params.check_json(body)
    result = await request.app[SCHEDULER].invoke(
        request.match_info["name"],
        body,
        qualifier=request.query.get("Qualifier"),
        client_context=client_context,
        trace_id=headers.get("X-Amzn-Trace-Id"),
        tenant_id=headers.get("X-Amz-Tenant-Id"),
        request_id=request[REQUEST_ID],
    )
    invocation_log.emit(result)
    out = {"Content-Type": "application/json", "X-Amz-Executed-Version": result.version}
    if result.error_type is not None:
        out["X-Amz-Function-Error"] = "Unhandled"
    if log_type == "Tail":
        out["X-Amz-Log-Result"] = base64.b64encode(result.log_tail()).decode()
    return web.Response(body=result.payload, headers=out)


async def _event(request: web.Request) -> web.Response:
    if request.app[STATE].stopping:
        raise SchedulerClosed()
    fn = params.function(request)
    body = await params.read_body(request, MAX_EVENT_PAYLOAD, _event_too_large)
    params.check_json(body)
    event = Event(request[REQUEST_ID], fn.name, params.qualifier(request), body)
    await request.app[EVENT_QUEUE].put(event)
    return web.Response(status=202)


async def _dry_run(request: web.Request) -> web.Response:
    params.function(request)
    params.check_json(await params.read_body(request, MAX_PAYLOAD, _sync_too_large))
    return web.Response(status=204)
