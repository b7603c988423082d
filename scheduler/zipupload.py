"""An uploaded ZipFile, still in base64, and its decoding into a file in slices.

api/uploads.py finds the base64 text in a request without copying it (:class:`Base64Zip`);
api/codestore.py decodes it with :func:`decode_to_file` in a thread, then unpacks the file.
``binascii.a2b_base64`` holds the GIL for its whole input, so it gets 256 KiB at a time (about
1.5 ms each): the event loop gets the GIL back between slices, and nothing but the slice and
the file is ever in memory besides the request body itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from pathlib import Path

import msgspec

from .codezip import CodeInfo, zipped_too_large
from .errors import InvalidParameterValue

_SLICE = 256 * 1024  # base64 characters decoded per C call (a multiple of 4)
_PAUSE_S = 0.0001  # after each slice: 100 µs x 256 slices adds 26 ms to a 67 MB upload
ZIP_FILE_ERROR = "ZipFile must be the base64 text of a zip archive."
_BACKSLASH = re.compile(rb"\\")


class Base64Zip:
    """The ZipFile string of a request, still undecoded: its JSON token (quotes included),
    usually a view of the request's buffer. ``release()`` drops it, and with it the buffer."""

    def __init__(self, token: bytes | memoryview) -> None:
        self._raw: bytes | memoryview | None = token

    def _view(self) -> memoryview:
        if self._raw is None:
            raise RuntimeError("the upload was already released")
        return memoryview(self._raw)

    def text(self) -> memoryview:
        """The characters between the JSON quotes, as they are (no copy)."""
        return self._view()[1:-1]

    def unescaped(self) -> bytes | None:
        """The string with its JSON escapes resolved (a writer may escape "/" as "\\/"); None
        when it has none."""
        view = self._view()
        if _BACKSLASH.search(view) is None:
            return None
        return msgspec.json.decode(view, type=str).encode("ascii", "replace")

    def release(self) -> None:
        self._raw = None


def decode_to_file(source: Base64Zip, path: Path, max_zipped: int) -> CodeInfo:
    """Decode the base64 text into ``path`` (created), slice by slice; ``CodeSha256`` and
    ``CodeSize`` of the zip come out of the same pass. Blocking: run it in a thread."""
    try:
        return _decode(source.text(), path, max_zipped)
    except InvalidParameterValue:
        escaped = source.unescaped()  # the rare writer that escapes: decode its real text
        if escaped is None:
            raise
        path.unlink(missing_ok=True)
        return _decode(escaped, path, max_zipped)


def _decode(text: memoryview | bytes, path: Path, max_zipped: int) -> CodeInfo:
    size = len(text)
    if size // 4 * 3 > max_zipped + 2:  # known before decoding anything
        raise zipped_too_large(max_zipped)
    digest = hashlib.sha256()
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for start in range(0, size, _SLICE):
            piece = text[start : start + _SLICE]
            # Padding may only end the whole text; strict mode sees one slice at a time.
            if start + _SLICE < size and piece[-1:] == b"=":
                raise InvalidParameterValue(ZIP_FILE_ERROR)
            try:
                data = binascii.a2b_base64(piece, strict_mode=True)
            except binascii.Error:
                raise InvalidParameterValue(ZIP_FILE_ERROR) from None
            digest.update(data)
            written += len(data)
            _write_all(fd, data)
            yield_gil()
    finally:
        os.close(fd)
    if written > max_zipped:
        raise zipped_too_large(max_zipped)
    return CodeInfo(written, base64.b64encode(digest.digest()).decode())


def yield_gil() -> None:
    """Let a thread waiting for the GIL (the event loop) have it now. Without this it waits
    out the switch interval (5 ms) at each of its wake-ups while this thread runs slice after
    slice; an invocation wakes the loop three or four times."""
    time.sleep(_PAUSE_S)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
