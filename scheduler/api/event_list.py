"""``GET /events[?state=…&limit=…]``: the Event invocations the store holds, newest first
(``lambda-scheduler events``). Not a Lambda operation: it goes through the same checks
(api/front.py: guard, SigV4 with --auth sigv4) as every route, and shows ids, states and counts, never
payloads.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import constraint_violation
from ..events import EventState
from . import params
from .keys import EVENT_QUEUE

routes = web.RouteTableDef()

_STATES = [s.value for s in EventState]


@routes.get("/events")
async def list_events(request: web.Request) -> web.Response:
    state_text = request.query.get("state")
    if state_text is not None and state_text not in _STATES:
        raise constraint_violation(state_text, "state", f"Member must satisfy enum value set: [{', '.join(_STATES)}]")
    limit_text = request.query.get("limit")
    limit = 1000 if limit_text is None else params.check_integer(limit_text, "limit", 1, 100_000)
    state = None if state_text is None else EventState(state_text)
    found = await request.app[EVENT_QUEUE].store.list(state, limit)
    return web.json_response(
        {
            "Events": [
                {
                    "RequestId": e.request_id,
                    "FunctionName": e.function_name,
                    "Qualifier": e.qualifier,
                    "State": e.state.value,
                    "Attempts": e.invocations,  # runs that reached the function, as approximateInvokeCount
                    "Throttles": e.throttles,
                    "ReceivedAt": e.received_at,
                    "Due": e.due,
                    "ErrorType": e.error_type,
                }
                for e in found
            ]
        }
    )
