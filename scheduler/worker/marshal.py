"""Event decoding and response encoding, with the Python runtime's JSON rules."""

from __future__ import annotations

import decimal
import json
import math
import os
from typing import Any

from .faults import MARSHAL_ERROR, UNMARSHAL_ERROR, Fault

# Runtimes from python3.12 on write non-ASCII characters as they are, older ones escape them.
_ESCAPING_RUNTIMES = {f"AWS_Lambda_python3.{minor}" for minor in range(6, 12)}


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            # Decimals become JSON numbers; NaN as the runtime writes it.
            if o.is_nan():
                return math.nan
            return float(o) if o != o.to_integral_value() else int(o)
        return super().default(o)


def make_encoder() -> json.JSONEncoder:
    ascii_only = os.environ.get("AWS_EXECUTION_ENV") in _ESCAPING_RUNTIMES
    return _Encoder(ensure_ascii=ascii_only, allow_nan=True, separators=(", ", ": "))


def decode_event(payload: bytes) -> Any:
    if not payload:
        return {}
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # Nesting deeper than the recursion limit allows is an unmarshal error too, as in
        # Lambda's runtime (awslambdaric turns any exception of json.loads into one).
        raise Fault(UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}") from None


def encode_response(encoder: json.JSONEncoder, response: Any) -> bytes:
    if isinstance(response, bytes):
        return response
    try:
        return encoder.encode(response).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise Fault(MARSHAL_ERROR, f"Unable to marshal response: {exc}") from None
