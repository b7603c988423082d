"""Pages of a list answer: at most ?MaxItems= (50) items after ?Marker=, and the NextMarker.

A marker is opaque to the client: here it is the sort key of the page's last item, base64
encoded, and the next page starts at the first item whose key is greater. Items removed between
two pages therefore never make a page start over or end early.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import web

from ..errors import InvalidParameterValue
from . import params

MAX_PAGE = 50

T = TypeVar("T")


def page(request: web.Request, items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) and the marker of the next, if any."""
    max_items = request.query.get("MaxItems")
    size = MAX_PAGE if max_items is None else min(MAX_PAGE, params.check_integer(max_items, "maxItems", 1, 10_000))
    marker = request.query.get("Marker")
    start = 0
    if marker:
        start = bisect.bisect_right([key(item) for item in items], decode_marker(marker))
    out = list(items[start : start + size])
    more = start + size < len(items)
    return out, encode_marker(key(out[-1])) if more and out else None


def encode_marker(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def decode_marker(marker: str) -> str:
    try:
        return base64.b64decode(marker.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        raise InvalidParameterValue(f"Invalid Marker: {marker}") from None


def version_key(version: str) -> str:
    """Versions in order: $LATEST, then 1, 2, … 10 (numbers compare as numbers)."""
    return "" if version == "$LATEST" else f"{int(version):010d}"
