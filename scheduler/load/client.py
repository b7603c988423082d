"""One invocation over Lambda's Invoke API, and what its response says.

    POST {endpoint}/2015-03-31/functions/{name}/invocations     X-Amz-Log-Type: Tail
      200, no X-Amz-Function-Error ─► ok           (echo check: the token came back?)
      200 + X-Amz-Function-Error   ─► error "function <errorType from the payload>"
      429                          ─► throttle "<Reason>"
      other status                 ─► error "http <status> <x-amzn-ErrorType>"
      no response                  ─► error "client <exception>"

Cold or warm is read from the response alone — the REPORT line of the Tail log carries
``Init Duration`` only on a cold start (with the JSON log format, the platform.report record's
``initDurationMs``) — so the split works against any server that speaks
the Invoke API and returns the log; without the log the start is ``unknown``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDictProxy

Start = Literal["cold", "warm", "unknown"]

_REPORT = b"REPORT RequestId:"
_INIT = b"Init Duration: "
_DURATION = b"\tDuration: "
_START = b"START RequestId:"
_INIT_REPORT = b"INIT_REPORT "
_JSON_START = b'"type":"platform.start"'
_JSON_INIT_REPORT = b'"type":"platform.initReport"'


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
        return _read_json_report(log)
    line_end = log.find(b"\n", report)
    line = log[report : line_end if line_end >= 0 else len(log)]
    duration = _report_value(line, _DURATION)
    if _INIT in line:
        return "cold", _report_value(line, _INIT), duration
    if _init_failed_first(log):
        return "cold", None, duration
    return "warm", None, duration


def _read_json_report(log: bytes) -> tuple[Start, float | None, float | None]:
    """The same from a function with the JSON log format: its last line is the platform.report
    record, whose metrics carry initDurationMs only on a cold start; a failed first Init puts a
    platform.initReport record before platform.start."""
    last = log.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        document = json.loads(last)
        metrics = document["record"]["metrics"] if document.get("type") == "platform.report" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        metrics = None
    if not isinstance(metrics, dict):
        return "unknown", None, None
    duration, init = metrics.get("durationMs"), metrics.get("initDurationMs")
    duration = float(duration) if isinstance(duration, int | float) else None
    if isinstance(init, int | float):
        return "cold", float(init), duration
    start = log.find(_JSON_START)
    if start > 0 and log.rfind(_JSON_INIT_REPORT, 0, start) >= 0:
        return "cold", None, duration
    return "warm", None, duration


def _init_failed_first(log: bytes) -> bool:
    """A cold start whose first Init failed or timed out: Lambda reports that Init with an
    INIT_REPORT line before START, retries it inside the invoke, and leaves Init Duration
    out of REPORT. A warm invocation's log begins with START, so a handler cannot fake this."""
    start = log.find(_START)
    return start > 0 and (log.startswith(_INIT_REPORT) or log.rfind(b"\n" + _INIT_REPORT, 0, start) >= 0)


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


# (method, url, body, headers) -> the headers with X-Amz-Date and Authorization: sigv4.Signer.sign.
Sign = Callable[[str, str, bytes, Mapping[str, str]], dict[str, str]]


class Invoker:
    """Sends invocations on one aiohttp session (keep-alive connections, reused); signs each
    one when given ``sign`` (a server with ``--auth sigv4``): about 0.2 ms of CPU per request
    with botocore's signer, so a signing harness tops out lower; unsigned costs nothing."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        *,
        tail: bool = True,
        verify_field: str | None = None,
        sign: Sign | None = None,
    ) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._headers = {"X-Amz-Log-Type": "Tail"} if tail else {}
        self._verify_field = verify_field
        self._sign = sign
        self._urls: dict[str, str] = {}

    def url(self, function: str) -> str:
        url = self._urls.get(function)
        if url is None:
            url = f"{self._endpoint}/2015-03-31/functions/{quote(function, safe=':$')}/invocations"
            self._urls[function] = url
        return url

    async def invoke(self, function: str, payload: bytes, token: str | None = None) -> Outcome:
        url = self.url(function)
        # Unsigned, the same header dict every time: nothing added to the hot loop but a test.
        headers = self._headers if self._sign is None else self._sign("POST", url, payload, self._headers)
        try:
            async with self._session.post(url, data=payload, headers=headers) as response:
                body = await response.read()
                return classify(response.status, response.headers, body, token, self._verify_field)
        except TimeoutError:
            return Outcome(0, error="client timeout")
        except aiohttp.ClientError as exc:
            return Outcome(0, error=f"client {type(exc).__name__}")
