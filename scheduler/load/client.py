"""One invocation over Lambda's Invoke API, and what its response says.

    POST {endpoint}/2015-03-31/functions/{name}/invocations     X-Amz-Log-Type: Tail
      200, no X-Amz-Function-Error ─► ok           (echo check: the token came back?)
      200 + X-Amz-Function-Error   ─► error "function <errorType from the payload>"
      429                          ─► throttle "<Reason>"
      other status                 ─► error "http <status> <x-amzn-ErrorType>"
      no response                  ─► error "client <exception>"

Cold or warm is read from the response alone — the REPORT line of the Tail log carries
``Init Duration`` only on a cold start — so the split works against any server that speaks
the Invoke API and returns the log; without the log the start is ``unknown``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy

Start = Literal["cold", "warm", "unknown"]

_REPORT = b"REPORT RequestId:"
_INIT = b"Init Duration: "
_DURATION = b"\tDuration: "


@dataclass(slots=True)
class Outcome:
    status: int  # HTTP status; 0 when no response came
    start: Start = "unknown"
    error: str | None = None
    throttle: str | None = None
    init_ms: float | None = None
    duration_ms: float | None = None  # the REPORT line's Duration: the server's own measure
    mismatch: bool = False  # the echo check found another request's token


def _report_value(line: bytes, key: bytes) -> float | None:
    """The number after ``key`` in a REPORT line (``Init Duration: 107.95 ms``)."""
    at = line.find(key)
    if at < 0:
        return None
    try:
        return float(line[at + len(key) :].split(b" ", 1)[0])
    except ValueError:
        return None


def read_report(log_result: str | None) -> tuple[Start, float | None, float | None]:
    """Cold or warm, the Init Duration and the Duration, from an ``X-Amz-Log-Result`` header."""
    if not log_result:
        return "unknown", None, None
    try:
        log = base64.b64decode(log_result)
    except (binascii.Error, ValueError):
        return "unknown", None, None
    # The platform's REPORT line is the last one; a handler printing "REPORT" comes before it.
    report = log.rfind(_REPORT)
    if report < 0:
        return "unknown", None, None
    line_end = log.find(b"\n", report)
    line = log[report : line_end if line_end >= 0 else len(log)]
    duration = _report_value(line, _DURATION)
    if _INIT not in line:
        return "warm", None, duration
    return "cold", _report_value(line, _INIT), duration


def start_from_log(log_result: str | None) -> tuple[Start, float | None]:
    """Cold or warm, and the Init Duration, from an ``X-Amz-Log-Result`` header."""
    start, init_ms, _ = read_report(log_result)
    return start, init_ms


def _json_field(body: bytes, key: str) -> object:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get(key) if isinstance(document, dict) else None


def classify(
    status: int, headers: CIMultiDictProxy[str], body: bytes, token: str | None, verify_field: str | None
) -> Outcome:
    if status == 429:
        reason = _json_field(body, "Reason") or headers.get("x-amzn-ErrorType") or "TooManyRequestsException"
        return Outcome(status, throttle=str(reason))
    if status >= 300:
        code = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
        return Outcome(status, error=f"http {status} {code}".rstrip())
    start, init_ms, duration_ms = read_report(headers.get("X-Amz-Log-Result"))
    if headers.get("X-Amz-Function-Error"):
        error_type = _json_field(body, "errorType") or "unknown"
        return Outcome(status, start, error=f"function {error_type}", init_ms=init_ms, duration_ms=duration_ms)
    mismatch = token is not None and verify_field is not None and _json_field(body, verify_field) != token
    return Outcome(status, start, init_ms=init_ms, duration_ms=duration_ms, mismatch=mismatch)


class Invoker:
    """Sends invocations on one aiohttp session (keep-alive connections, reused)."""

    def __init__(
        self, session: aiohttp.ClientSession, endpoint: str, *, tail: bool = True, verify_field: str | None = None
    ) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._headers = {"X-Amz-Log-Type": "Tail"} if tail else {}
        self._verify_field = verify_field
        self._urls: dict[str, str] = {}

    def url(self, function: str) -> str:
        url = self._urls.get(function)
        if url is None:
            url = f"{self._endpoint}/2015-03-31/functions/{quote(function, safe=':$')}/invocations"
            self._urls[function] = url
        return url

    async def invoke(self, function: str, payload: bytes, token: str | None = None) -> Outcome:
        try:
            async with self._session.post(self.url(function), data=payload, headers=self._headers) as response:
                body = await response.read()
                return classify(response.status, response.headers, body, token, self._verify_field)
        except TimeoutError:
            return Outcome(0, error="client timeout")
        except aiohttp.ClientError as exc:
            return Outcome(0, error=f"client {type(exc).__name__}")
