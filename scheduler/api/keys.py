"""Every typed key of the API's application and requests, in one place.

Route modules read their collaborators through these keys (``request.app[SCHEDULER]``), so
the objects are created once, in ``app.init_app``, and nothing is reached through globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from ..config import ServerConfig
from ..engine.scheduler import Scheduler
from ..events import EventDispatcher, EventQueue
from .catalog import Catalog
from .codestore import CodeStore
from .refusals import Refusals


@dataclass
class ServerState:
    started_at: float = field(default_factory=time.time)
    stopping: bool = False  # set when shutdown begins: health answers 503, Event invokes are refused


SCHEDULER = web.AppKey("scheduler", Scheduler)
SETTINGS = web.AppKey("settings", ServerConfig)
CATALOG = web.AppKey("catalog", Catalog)
CODE_STORE = web.AppKey("code_store", CodeStore)
EVENT_QUEUE = web.AppKey("event_queue", EventQueue)
DISPATCHER = web.AppKey("dispatcher", EventDispatcher)
STATE = web.AppKey("state", ServerState)
REFUSALS = web.AppKey("refusals", Refusals)  # what api/guard.py and api/auth.py refused

# The id of the request being served: the x-amzn-RequestId of its response and, for an
# invocation, the handler's context.aws_request_id.
REQUEST_ID = web.RequestKey("request_id", str)
