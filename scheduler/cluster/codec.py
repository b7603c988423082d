"""An Event as the payload of a JetStream message: JSON, the payload and response in base64.
Every fact the dispatcher decides on travels with it (attempts, throttles, due time), so any
node that pulls the message next continues where the last one stopped."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..events.model import Event, EventState


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: Any) -> bytes | None:
    return None if text is None else base64.b64decode(str(text))


def encode(event: Event) -> bytes:
    return json.dumps(
        {
            "request_id": event.request_id,
            "function_name": event.function_name,
            "qualifier": event.qualifier,
            "payload": _b64(event.payload),
            "received_at": event.received_at,
            "attempts": event.attempts,
            "throttles": event.throttles,
            "due": event.due,
            "state": event.state.value,
            "response": _b64(event.response),
            "error_type": event.error_type,
        },
        separators=(",", ":"),
    ).encode()


def decode(data: bytes) -> Event:
    fields = json.loads(data)
    return Event(
        request_id=str(fields["request_id"]),
        function_name=str(fields["function_name"]),
        qualifier=fields.get("qualifier"),
        payload=_bytes(fields["payload"]) or b"",
        received_at=float(fields["received_at"]),
        attempts=int(fields.get("attempts", 0)),
        throttles=int(fields.get("throttles", 0)),
        due=float(fields.get("due", 0.0)),
        state=EventState(fields.get("state", EventState.PENDING.value)),
        response=_bytes(fields.get("response")),
        error_type=fields.get("error_type"),
    )


def message_id(event: Event) -> str:
    """JetStream's de-duplication id: the same publish sent twice (a retry after a lost ack)
    is kept once; each retry of an event is a new message."""
    return f"{event.request_id}.{event.attempts}.{event.throttles}"
