"""``GET /health``: one JSON answer for load balancers and scripts — 200 while serving, 503
once shutdown has begun — with the counts worth a glance. Open even with ``--auth sigv4``
(probes cannot sign); the Host / Origin guard still applies."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .keys import EVENT_QUEUE, REFUSALS, SCHEDULER, STATE

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    state = request.app[STATE]
    stopping = state.stopping or scheduler.closing
    environments: dict[str, int] = {}
    for fn in scheduler.functions.values():
        for env_state, count in fn.by_state().items():
            environments[env_state.value] = environments.get(env_state.value, 0) + count
    body: dict[str, Any] = {
        "status": "stopping" if stopping else "ok",
        "uptime_s": round(time.time() - state.started_at, 3),
        "functions": len(scheduler.functions),
        "in_flight": scheduler.admission.in_flight,
        "environments": environments,
        "events": request.app[EVENT_QUEUE].stats(),
        # Requests refused before any handler (api/guard.py, api/auth.py), by reason.
        "refused": request.app[REFUSALS].snapshot(),
    }
    return web.json_response(body, status=503 if stopping else 200)
