"""The one place where errors become Lambda's HTTP error responses.

api/front.py gives every request its id (the ``x-amzn-RequestId`` of whatever response goes
out, success or error) and :func:`response_for` turns a :class:`SchedulerError` into the
status, ``x-amzn-ErrorType`` header and JSON body from which botocore raises the modeled exception (``client.exceptions.ResourceNotFoundException`` …).
Routing misses and unexpected exceptions get the same shape, so a client always sees a code.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..errors import InternalError, RequestTooLarge, SchedulerError, UnknownOperation

log = logging.getLogger("lambda_scheduler.api")


def error_response(exc: SchedulerError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers())


def _from_http(request: web.Request, exc: web.HTTPException) -> SchedulerError:
    if exc.status == 413:
        return RequestTooLarge(exc.text or "Request entity too large")
    return UnknownOperation(f"No Lambda operation is served at {request.method} {request.path}", exc.status)


def response_for(request: web.Request, request_id: str, exc: Exception) -> web.Response:
    """Lambda's error response for what a route (or a check before it) raised. An HTTP
    exception below 400 (a redirect) is not an error: it is raised again."""
    if isinstance(exc, SchedulerError):
        return error_response(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(_from_http(request, exc))
    log.error("%s %s failed (request %s)", request.method, request.path, request_id, exc_info=exc)
    return error_response(InternalError(f"An internal error occurred; see the server log for request {request_id}."))
