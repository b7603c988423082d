"""The one middleware every request passes: its id, the browser guard, SigV4, and errors.

    request ─► front ─► request id (x-amzn-RequestId of every response, success or error)
                 ├─► guard.BrowserGuard.screen   foreign Host / Origin / Sec-Fetch-Site ─► 403
                 │                               allowed origin's preflight ─► 204 (no route)
                 ├─► auth.SigV4Gate.check        only with --auth sigv4
                 ├─► the route
                 └─► errors.response_for         anything raised ─► Lambda's error response

One middleware rather than a chain of three: aiohttp wraps each middleware around the handler
for every request (a partial and a coroutine frame each), a cost paid per invocation on the
hot path. The order is the chain's: a refusal by the guard or the gate is answered in Lambda's
shape with the request's id, and a preflight never reaches authentication (it carries no
credentials).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..config import ServerConfig
from ..engine.invocation import new_request_id
from ..errors import ConfigError
from .errors import response_for
from .guard import BrowserGuard
from .keys import REQUEST_ID
from .refusals import Refusals

if TYPE_CHECKING:
    from .auth import SigV4Gate


def front_middleware(settings: ServerConfig, refusals: Refusals) -> Middleware:
    guard = BrowserGuard(settings, refusals)
    gate = _gate(settings, refusals)

    @web.middleware
    async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request[REQUEST_ID] = new_request_id()
        try:
            preflight = guard.screen(request)
            if preflight is not None:
                response: web.StreamResponse = preflight
            else:
                if gate is not None:
                    await gate.check(request)
                response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Lambda-shaped answer
            response = response_for(request, request_id, exc)
        response.headers["x-amzn-RequestId"] = request_id
        return response

    return front


def _gate(settings: ServerConfig, refusals: Refusals) -> SigV4Gate | None:
    if settings.auth_mode != "sigv4":
        return None
    try:
        from .auth import SigV4Gate  # botocore: needed only to check signatures
    except ImportError as exc:
        raise ConfigError(
            "auth", f"sigv4 needs botocore ({exc}): pip install 'lambda-scheduler[sigv4]' (or boto3)"
        ) from None
    return SigV4Gate(settings, refusals)
