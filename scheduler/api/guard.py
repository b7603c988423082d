"""Refuse what a browser sends: the check api/front.py makes first, before any route.

    request ─► front: request id ─► guard ─► [auth: SigV4, api/auth.py] ─► routes
                                  │ Host a name this server answers to?      no ─► 403
                                  │ Origin, if any, in --allowed-origins?    no ─► 403
                                  │ no Origin but Sec-Fetch-Site cross-site? yes ─► 403
                                  └ allowed origin's preflight (OPTIONS)    ─► 204 with CORS

Any web page can make the browser that shows it send requests to 127.0.0.1: a "simple"
cross-origin POST (text/plain, ``mode: "no-cors"``) is sent without asking, so without this an
attacker's page could CreateFunction a zip and Invoke it — running its code on the machine —
even though it never reads an answer. Such requests carry ``Origin``; a page that instead
rebinds its own DNS name to 127.0.0.1 sends its name as ``Host``. Tools that are not browsers
(boto3, the AWS CLI, curl, wrk, ``lambda-scheduler load``) send neither, so they pass.

Host rules: any port; any IP address literal (a rebinding page always presents a *name*; a
browser that was given an address is on that address's own origin, or sends ``Origin``);
``localhost`` and ``*.localhost`` (browsers resolve those to loopback themselves); the bound
``--host``; and ``--allowed-hosts`` (exact names, ``*.suffix``, or ``*`` for any). A request
without ``Host`` (HTTP/1.0) is no browser's and passes.

Refusals are Lambda-shaped (403 ``AccessDeniedException``), counted and logged (refusals.py).
CORS headers are sent only when ``--allowed-origins`` lists origins, and only to those.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import hdrs, web

from ..config import ServerConfig
from ..errors import BrowserRequestRefused
from .refusals import Refusals

_ENV = "LAMBDA_SCHEDULER_"
# Sec-Fetch-Site values of requests that no other site's page made: a page of this very
# origin (there is none: the server serves no pages) or the user typing the URL.
_OWN_FETCH = frozenset({"same-origin", "none"})

ALLOWED_METHODS = "GET, POST, PUT, DELETE"
# What an SDK in a page sends: SigV4's headers and the Invoke API's own.
ALLOWED_HEADERS = (
    "authorization, content-type, x-amz-date, x-amz-security-token, x-amz-content-sha256, x-amz-user-agent, "
    "x-amz-invocation-type, x-amz-log-type, x-amz-client-context, x-amz-tenant-id, amz-sdk-invocation-id, "
    "amz-sdk-request"
)
# Response headers a page may read: the request id, the error code, the Invoke API's own.
EXPOSED_HEADERS = "x-amzn-RequestId, x-amzn-ErrorType, X-Amz-Function-Error, X-Amz-Log-Result, X-Amz-Executed-Version"
_CACHED_HOSTS = 256


def host_name(header: str) -> str:
    """The name of a Host header, without its port, lower-case, without a trailing dot;
    IPv6 addresses keep their brackets off (``[::1]:9000`` → ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        value = name
    return value.rstrip(".")


class HostRule:
    """Which Host headers the server answers to (see the module docstring)."""

    def __init__(self, bound_host: str, allowed: Sequence[str]) -> None:
        self._names = {"localhost", host_name(bound_host)}
        self._suffixes = (".localhost", *(name[1:] for name in allowed if name.startswith("*.")))
        self._names.update(name for name in allowed if not name.startswith("*"))
        self._any = "*" in allowed
        # Clients send the same few Host values over and over: decide each one once.
        self._decided: dict[str, bool] = {}

    def allows(self, header: str) -> bool:
        decided = self._decided.get(header)
        if decided is None:
            decided = self._decide(header)
            if len(self._decided) < _CACHED_HOSTS:  # a bound: Host values are the client's choice
                self._decided[header] = decided
        return decided

    def _decide(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        if self._any or name in self._names or name.endswith(self._suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _host_refused(host: str) -> BrowserRequestRefused:
    name = host_name(host) or host
    return BrowserRequestRefused(
        f"Host {host!r} is not a name this server answers to: a web page reaching 127.0.0.1 through "
        f"DNS rebinding looks like this. If {name!r} is a name of this server, allow it with "
        f"--allowed-hosts {name} (or {_ENV}ALLOWED_HOSTS)."
    )


def _origin_refused(origin: str) -> BrowserRequestRefused:
    return BrowserRequestRefused(
        f"Requests from the web origin {origin!r} are refused: web pages may not drive this server. "
        f"To let that origin's pages call the API, start the server with --allowed-origins {origin} "
        f"(or {_ENV}ALLOWED_ORIGINS)."
    )


def _cross_site_refused(site: str) -> BrowserRequestRefused:
    return BrowserRequestRefused(
        f"Requests a browser sends for another site's page (Sec-Fetch-Site: {site}) are refused. To let a "
        f"web page call the API, start the server with --allowed-origins ORIGIN (or {_ENV}ALLOWED_ORIGINS)."
    )


def _preflight(origin: str) -> web.Response:
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: "600",
            hdrs.VARY: "Origin",
        },
    )


class BrowserGuard:
    """The checks of the module docstring, made once per request by api/front.py."""

    def __init__(self, settings: ServerConfig, refusals: Refusals) -> None:
        self._hosts = HostRule(settings.host, settings.allowed_hosts)
        self._origins = frozenset(settings.allowed_origins)
        self._refusals = refusals

    def screen(self, request: web.Request) -> web.Response | None:
        """Raises the refusal of a browser's request; returns the answer to an allowed
        origin's preflight; None when the request goes on to the routes."""
        headers = request.headers
        host = headers.get(hdrs.HOST)
        if host is not None and not self._hosts.allows(host):
            raise self._refusals.refuse("host", host, _host_refused(host))
        origin = headers.get(hdrs.ORIGIN)
        if origin is not None:
            if origin.lower() not in self._origins:
                raise self._refusals.refuse("origin", origin, _origin_refused(origin))
            # A preflight carries no credentials: answered here, before api/auth.py.
            if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in headers:
                return _preflight(origin)
            return None
        # Browsers leave Origin off no-cors GETs (and some navigations); Sec-Fetch-Site
        # still says another site's page asked for them.
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site not in _OWN_FETCH:
            raise self._refusals.refuse("cross_site", site, _cross_site_refused(site))
        return None


def add_cors(app: web.Application, settings: ServerConfig) -> None:
    """CORS headers on every response to an allowed origin (errors included, so its pages can
    read Lambda's error codes); nothing at all when no origin is allowed."""
    origins = frozenset(settings.allowed_origins)
    if not origins:
        return

    async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin.lower() in origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS
            if "Origin" not in response.headers.getall(hdrs.VARY, ()):
                response.headers.add(hdrs.VARY, "Origin")

    app.on_response_prepare.append(cors_headers)
