"""Code uploads (CreateFunction, UpdateFunctionCode): big bodies handled off the event loop,
one at a time, without needless copies.

    route ─► CodeStore.upload_slot (one upload at a time: memory stays about one body)
          ─► read_code_request: the body read into one buffer (a client that stops sending
             for ``idle_timeout`` seconds is refused), then, in a thread, its JSON parsed once
             with the ZipFile kept as a raw slice of that buffer (never a 64 MB str)
          ─► the route checks the parameters (on the loop: small values only)
          ─► CodeStore.unpack_upload (thread): base64 decoded 256 KiB at a time into a file,
             hashed on the way, the body freed, then the archive checked and unpacked

The big steps are C calls that hold the GIL for as long as their input is large; they work in
slices (a base64 slice decodes in about 1.5 ms) so the loop gets the GIL back between them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
from aiohttp import web

from ..errors import InvalidRequestContent, RequestTimeout
from ..zipupload import Base64Zip
from . import params

# Strings this long are found and cut out before msgspec parses the rest of the body.
LONG_STRING = 64 * 1024
_SEGMENT = 1 << 20


def check_length(request: web.Request, limit: int, operation: str) -> None:
    """Refuse a declared length over the limit at once, before waiting for an upload slot."""
    if request.content_length is not None and request.content_length > limit:
        raise params.request_too_large(limit, operation)


async def read_code_request(
    request: web.Request, limit: int, operation: str, zip_at: tuple[str, ...], idle_timeout: float
) -> dict[str, Any]:
    """The JSON object of a code request, with the value at ``zip_at`` (``("ZipFile",)`` or
    ``("Code", "ZipFile")``) as a :class:`Base64Zip` when it is a string."""
    body = await _read(request, limit, operation, idle_timeout)
    return await asyncio.to_thread(parse_code_body, body, zip_at)


async def _read(request: web.Request, limit: int, operation: str, idle_timeout: float) -> bytearray:
    length = request.content_length
    if length is not None and length > limit:
        raise params.request_too_large(limit, operation)
    # One buffer grown in place: no chunk list and no join. Not preallocated: bytearray(n)
    # zero-fills n bytes on the loop (30 ms for 67 MB), while growing a large buffer is a
    # remap of its pages, not a copy.
    buffer = bytearray()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(idle_timeout) as deadline:
            async for chunk in request.content.iter_any():
                if len(buffer) + len(chunk) > limit:
                    raise params.request_too_large(limit, operation)
                buffer += chunk
                deadline.reschedule(loop.time() + idle_timeout)
    except TimeoutError:
        raise RequestTimeout(
            f"The {operation} request body stopped arriving: no data for {idle_timeout:g} seconds."
        ) from None
    if length is not None and len(buffer) != length:
        raise params.parse_error(f"the body has {len(buffer)} bytes where its Content-Length says {length}")
    return buffer


def parse_code_body(body: bytearray, zip_at: tuple[str, ...]) -> dict[str, Any]:
    """Blocking (run it in a thread). Every value but the ZipFile string is parsed as usual.

    msgspec would hold the GIL for the whole 67 MB of a ZipFile just to find where it ends
    (about 80 ms on a busy machine: a stall of every invocation). Instead the long strings are
    found here, a slice at a time, and replaced by short placeholders; msgspec parses what is
    left (a few hundred bytes), and the ZipFile stays a view of the body."""
    if not params.has_content(body):
        return {}
    spans = _long_strings(body)
    marker = f"lambda-scheduler-long-string-{uuid.uuid4().hex}-"
    pieces: list[bytes] = []
    last = 0
    for n, (start, end) in enumerate(spans):
        pieces += [bytes(body[last:start]), b'"%s%d"' % (marker.encode(), n)]
        last = end
    data = _object(params.decode_json(b"".join(pieces) + body[last:] if spans else body))
    view = memoryview(body)
    tokens = {f"{marker}{n}": view[start:end] for n, (start, end) in enumerate(spans)}
    # The ZipFile at its place stays undecoded; a long string anywhere else is decoded.
    holder: Any = data
    for key in zip_at[:-1]:
        holder = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(holder, dict):
        value = holder.get(zip_at[-1])
        if isinstance(value, str) and value in tokens:
            holder[zip_at[-1]] = Base64Zip(tokens.pop(value))
        elif isinstance(value, str):
            holder[zip_at[-1]] = Base64Zip(msgspec.json.encode(value))
    if not tokens:
        return data
    try:
        restored = _restore(data, tokens)
    except RecursionError:  # two frames a level here: deep JSON msgspec itself still parsed
        raise params.parse_error(params.TOO_DEEP) from None
    assert isinstance(restored, dict)
    return restored


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequestContent("Could not parse request body into json: expected a JSON object")
    return data


def _restore(value: Any, tokens: dict[str, memoryview]) -> Any:
    if isinstance(value, str) and value in tokens:
        return params.decode_json(tokens[value])
    if isinstance(value, dict):
        return {_restore(key, tokens): _restore(item, tokens) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item, tokens) for item in value]
    return value


def _long_strings(body: bytearray) -> list[tuple[int, int]]:
    """(start, end) of every JSON string token of at least LONG_STRING bytes, quotes included.
    Outside strings JSON has no quote character, so tokens are found quote to unescaped quote.
    An unterminated string stops the search: msgspec then reports the malformed JSON."""
    spans = []
    size = len(body)
    pos = _find_quote(body, 0, size)
    while pos != -1:
        end = _closing_quote(body, pos + 1, size)
        if end == -1:
            break
        if end + 1 - pos >= LONG_STRING:
            spans.append((pos, end + 1))
        pos = _find_quote(body, end + 1, size)
    return spans


def _closing_quote(body: bytearray, start: int, size: int) -> int:
    while (found := _find_quote(body, start, size)) != -1:
        backslashes = 0
        while body[found - 1 - backslashes] == 0x5C:  # a backslash; the opening quote stops it
            backslashes += 1
        if backslashes % 2 == 0:
            return found
        start = found + 1
    return -1


def _find_quote(body: bytearray, start: int, size: int) -> int:
    """``body.find(b'"', start)``, a slice at a time: the loop gets the GIL back between
    slices while a 67 MB string is crossed."""
    while start < size:
        found = body.find(b'"', start, min(size, start + _SEGMENT))
        if found != -1:
            return found
        start += _SEGMENT
    return -1
