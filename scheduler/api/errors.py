"""The one place where errors become Lambda's HTTP error responses.

Every request passes through :func:`lambda_errors`: it gives the request its id (the
``x-amzn-RequestId`` of whatever response goes out, success or error) and turns a
:class:`SchedulerError` into the status, ``x-amzn-ErrorType`` header and JSON body from which
botocore raises the modeled exception (``client.exceptions.ResourceNotFoundException`` …).
Routing misses and unexpected exceptions get the same shape, so a client always sees a code.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from ..engine.invocation import new_request_id
from ..errors import InternalError, RequestTooLarge, SchedulerError, UnknownOperation
from .keys import REQUEST_ID

log = logging.getLogger("lambda_scheduler.api")


def error_response(exc: SchedulerError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers())


def _from_http(request: web.Request, exc: web.HTTPException) -> SchedulerError:
    if exc.status == 413:
        return RequestTooLarge(exc.text or "Request entity too large")
    return UnknownOperation(f"No Lambda operation is served at {request.method} {request.path}", exc.status)


@web.middleware
async def lambda_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except SchedulerError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http(request, exc))
    except Exception:
        log.exception("%s %s failed (request %s)", request.method, request.path, request_id)
        response = error_response(
            InternalError(f"An internal error occurred; see the server log for request {request_id}.")
        )
    response.headers["x-amzn-RequestId"] = request_id
    return response
