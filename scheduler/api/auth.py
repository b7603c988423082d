"""``--auth sigv4``: every request must carry a valid AWS Signature Version 4.

    request ─► front: request id ─► guard ─► sigv4 ─► routes
                                          │ GET /health (and /metrics with --unsigned-metrics): open
                                          │ Authorization ─► access key known? date within 15 min?
                                          │ body read whole ─► botocore's canonical request for the
                                          │ headers the client signed ─► HMAC with the key's secret
                                          └ any miss ─► 403 with AWS's code and wording

The gate exists only with ``--auth sigv4``: a server without authentication does no work for
it per request. Errors are AWS's, so SDKs raise what they raise against AWS:
``MissingAuthenticationTokenException`` (no Authorization), ``IncompleteSignatureException``
(one that is not SigV4), ``UnrecognizedClientException`` (unknown access key),
``InvalidSignatureException`` (wrong signature, wrong service, or a date more than 15 minutes
from the server's clock).

The body is read whole here and hashed (SigV4 signs its SHA-256), then handed to the route
again; a client that also sends ``X-Amz-Content-SHA256`` must send the body's real hash. A
body without Content-Length (chunked) is refused with 411, so what is read here is bounded by
the length the client declared (and by the application's client_max_size).
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import StreamReader, hdrs, web

from ..config import ServerConfig
from ..errors import (
    AuthError,
    IncompleteSignature,
    InvalidSignature,
    LengthRequired,
    MissingAuthenticationToken,
    UnrecognizedClient,
)
from ..sigv4 import ALGORITHM, SERVICE, TIMESTAMP_FORMAT, expected_signature
from .refusals import Refusals

MAX_SKEW_S = 15 * 60  # AWS's limit between X-Amz-Date and the server's clock
ALWAYS_OPEN = frozenset({"/health"})
_PARTS = ("Credential", "SignedHeaders", "Signature")


@dataclass(frozen=True, slots=True)
class Authorization:
    """An ``Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``."""

    access_key: str
    day: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, header: str) -> Authorization:
        scheme, _, rest = header.strip().partition(" ")
        if scheme != ALGORITHM:
            raise IncompleteSignature(
                f"Unsupported authorization type {scheme!r}: requests must be signed with AWS Signature "
                f"Version 4 ({ALGORITHM})."
            )
        fields: dict[str, str] = {}
        for item in rest.split(","):
            name, sep, value = item.strip().partition("=")
            if sep:
                fields[name] = value
        missing = [name for name in _PARTS if not fields.get(name)]
        if missing:
            raise IncompleteSignature(
                " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
                + f" Authorization={header}"
            )
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
            raise IncompleteSignature(
                f"Credential={fields['Credential']} is malformed: expected ACCESS_KEY/YYYYMMDD/REGION/SERVICE/"
                "aws4_request."
            )
        signed = tuple(fields["SignedHeaders"].lower().split(";"))
        return cls(scope[0], scope[1], scope[2], scope[3], signed, fields["Signature"])


def _stamp(seconds: float) -> str:
    return time.strftime(TIMESTAMP_FORMAT, time.gmtime(seconds))


def check_clock(amz_date: str, now: float) -> None:
    """AWS's 15-minute window, with its wording."""
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, TIMESTAMP_FORMAT))
    except ValueError:
        raise IncompleteSignature(
            f"X-Amz-Date must be in ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z'), got {amz_date!r}."
        ) from None
    if signed_at < now - MAX_SKEW_S:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is now earlier than {_stamp(now - MAX_SKEW_S)} ({_stamp(now)} - 15 min.)"
        )
    if signed_at > now + MAX_SKEW_S:
        raise InvalidSignature(
            f"Signature not yet current: {amz_date} is still later than {_stamp(now + MAX_SKEW_S)} "
            f"({_stamp(now)} + 15 min.)"
        )


class Verifier:
    """Checks a request's signature against the server's access keys."""

    def __init__(self, secrets: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self._secrets = dict(secrets)
        self._clock = clock

    async def verify(self, request: web.Request) -> str:
        """The access key that signed ``request``; raises the AuthError AWS would answer."""
        header = request.headers.get(hdrs.AUTHORIZATION)
        if header is None:
            raise MissingAuthenticationToken()
        auth = Authorization.parse(header)
        amz_date = request.headers.get("X-Amz-Date")
        if amz_date is None:
            raise IncompleteSignature("Authorization header requires existence of a 'X-Amz-Date' header.")
        secret = self._secrets.get(auth.access_key)
        if secret is None:
            raise UnrecognizedClient()
        if auth.service != SERVICE:
            raise InvalidSignature(f"Credential should be scoped to correct service: '{SERVICE}'. ")
        if auth.day != amz_date[:8]:
            raise InvalidSignature(
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{auth.day}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        check_clock(amz_date, self._clock())
        for needed in ("host", "x-amz-date"):
            if needed not in auth.signed_headers:
                raise IncompleteSignature(f"'{needed}' must be a 'SignedHeader' in the AWS Authorization.")
        body = await self._body(request)
        signed = [(name, value) for name in auth.signed_headers for value in request.headers.getall(name, ())]
        expected = expected_signature(
            method=request.method,
            url=f"http://{request.headers.get(hdrs.HOST, '')}{request.raw_path}",
            signed_headers=signed,
            body=body,
            access_key=auth.access_key,
            secret_key=secret,
            timestamp=amz_date,
            region=auth.region,
        )
        if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
            raise InvalidSignature(InvalidSignature.MISMATCH)
        return auth.access_key

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is None and request.body_exists:
            raise LengthRequired("A signed request must give its Content-Length (chunked bodies are not accepted).")
        # Read whole here (the signature covers its hash); over client_max_size aiohttp raises
        # 413, which api/front.py answers as RequestEntityTooLargeException. The route reads it
        # again from request.read()'s cache or from the replayed stream.
        body = await request.read()
        declared = request.headers.get("X-Amz-Content-SHA256")
        if declared is not None and declared.lower() != hashlib.sha256(body).hexdigest():
            raise InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.")
        _replay(request, body)
        return body


def _replay(request: web.Request, body: bytes) -> None:
    """Give the route the body again as a stream: code uploads read ``request.content``
    (api/uploads.py) rather than ``request.read()``. aiohttp has no public way to swap a
    request's payload, hence its private slot. The limit keeps the new stream's flow control
    from ever pausing the connection (the body is all there already)."""
    if not body:
        return  # the original stream is at its end already
    stream = StreamReader(request.protocol, max(len(body), 1 << 16), loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    request._payload = stream


class SigV4Gate:
    """What api/front.py asks of every request with ``--auth sigv4``."""

    def __init__(self, settings: ServerConfig, refusals: Refusals) -> None:
        self._verifier = Verifier({c.access_key: c.secret_key for c in settings.credentials})
        self._open_paths = ALWAYS_OPEN | ({"/metrics"} if settings.unsigned_metrics else set())
        self._refusals = refusals

    async def check(self, request: web.Request) -> None:
        """Raises the refusal of a request that is not signed as it must be."""
        if request.path in self._open_paths:
            return
        try:
            await self._verifier.verify(request)
        except AuthError as exc:
            raise self._refusals.refuse(exc.code, f"{request.method} {request.path}", exc) from None
