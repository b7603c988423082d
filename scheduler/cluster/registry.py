"""The function registry shared by the nodes: a function created, updated or deleted through
one node's API is applied by every other node within about a second.

    CreateFunction · UpdateFunctionCode · UpdateFunctionConfiguration answered 2xx on node A
        ─► its code folder zipped ─► Object Store lambda_code (by content hash)
        ─► KV lambda_functions[name] = {origin A, the FunctionConfiguration answered, code object}
    DeleteFunction (the whole function) on A ─► KV delete (with the function's settings)
    Put/DeleteFunctionConcurrency, Put/Update/DeleteFunctionEventInvokeConfig of $LATEST on A
        ─► KV lambda_functions[name.<setting>] = {origin A, PUT with the settings answered, or DELETE}
    every other node watches the bucket ─► replays the change through its own API (the same
    validation, catalog and code store as a local call), marked so that it is not published again

What travels is what the API answered (FunctionConfiguration), not the request, so a replay
sees the values the first node settled on; a setting travels as the state it left (an Update
of the event-invoke settings is replayed as a Put of the merged result), so the last change of
each wins on every node, and a node joining later applies each setting after its function
(the watch delivers in revision order, and a function's entry can be a later revision than
its settings, which are held until the function is there). Layers, versions and aliases, and
the settings of published versions, are not carried yet: each node keeps its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
from aiohttp import web
from aiohttp.typedefs import Handler
from nats.js import api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from ..engine.scheduler import Scheduler
from .link import ClusterLink

log = logging.getLogger("lambda_scheduler.cluster")

FUNCTION_BUCKET = "lambda_functions"
CODE_BUCKET = "lambda_code"
# A request carrying this header is a replay of another node's change: applied, not published.
REPLICATED = "X-Lambda-Scheduler-Replicated"
FUNCTIONS_PATH = "/2015-03-31/functions"
# FunctionConfiguration members a replay sends back as the request's (same names, same shapes).
_CONFIG_MEMBERS = (
    "Runtime",
    "Handler",
    "Role",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "EphemeralStorage",
    "LoggingConfig",
    "DeadLetterConfig",
)


class Change(Enum):
    CREATED = "created"
    CODE = "code"
    CONFIGURATION = "configuration"
    DELETED = "deleted"
    SETTING = "setting"


class Setting(Enum):
    """A function-level setting the registry carries: its API path and KV key suffix."""

    RESERVED = "reserved"
    EVENTS = "events"

    @property
    def path(self) -> str:
        if self is Setting.RESERVED:
            return "/2017-10-31/functions/{name}/concurrency"
        return "/2019-09-25/functions/{name}/event-invoke-config"

    def replay_body(self, answered: dict[str, Any]) -> dict[str, Any]:
        """The Put that leaves another node in the state this answer describes."""
        if self is Setting.RESERVED:
            return {"ReservedConcurrentExecutions": answered["ReservedConcurrentExecutions"]}
        keys = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
        return {k: answered[k] for k in keys if k in answered}


_SETTING_PATHS = {
    ("2017-10-31", "concurrency"): Setting.RESERVED,
    ("2019-09-25", "event-invoke-config"): Setting.EVENTS,
}


def setting_of(request: web.Request) -> tuple[Setting, str] | None:
    """A change of a carried setting of $LATEST (unqualified): the setting and the function."""
    parts = request.path.rstrip("/").split("/")  # "", date, "functions", name, what
    if len(parts) != 5 or parts[2] != "functions" or request.method not in ("PUT", "POST", "DELETE"):
        return None
    setting = _SETTING_PATHS.get((parts[1], parts[4]))
    if setting is None or request.query.get("Qualifier", "$LATEST") != "$LATEST":
        return None
    if setting is Setting.RESERVED and request.method == "POST":
        return None
    return setting, parts[3]


def change_of(request: web.Request) -> tuple[Change, str] | None:
    """Which registry change a request to the API is, and its function's name."""
    path = request.path.rstrip("/")
    if not path.startswith(FUNCTIONS_PATH):
        return None
    parts = path[len(FUNCTIONS_PATH) :].split("/")  # "", then the name, then what of it
    if len(parts) == 1 and request.method == "POST":
        return Change.CREATED, ""
    if len(parts) == 2 and request.method == "DELETE":
        return None if "Qualifier" in request.query else (Change.DELETED, parts[1])
    if len(parts) == 3 and request.method == "PUT" and parts[2] in ("code", "configuration"):
        return (Change.CODE if parts[2] == "code" else Change.CONFIGURATION), parts[1]
    return None


def zip_folder(folder: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = Path(root) / name
                archive.write(path, path.relative_to(folder).as_posix())
    return out.getvalue()


class Registry:
    def __init__(self, link: ClusterLink, scheduler: Scheduler) -> None:
        self.link = link
        self.scheduler = scheduler
        self.url: str | None = None  # this node's API, where replays are sent
        self._kv: KeyValue | None = None
        self._code: ObjectStore | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._applied: dict[str, str] = {}  # by function: the code hash last applied here
        self._pending: dict[str, dict[Setting, bytes]] = {}  # settings seen before their function
        self.published = 0
        self.applied = 0

    async def open(self) -> None:
        self._kv = await self.link.js.create_key_value(api.KeyValueConfig(bucket=FUNCTION_BUCKET, history=1))
        self._code = await self.link.js.create_object_store(CODE_BUCKET)

    def start(self, url: str) -> None:
        self.url = url
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    # --- publishing -------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if REPLICATED in request.headers or not 200 <= response.status < 300:
            return response
        change = change_of(request)
        setting = setting_of(request) if change is None else None
        try:
            if change is not None:
                await self._publish(change, response)
            elif setting is not None:
                await self._publish_setting(setting[0], setting[1], request.method, response)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            what = change or setting
            assert what is not None
            log.warning("registry: could not share %s of %s with the cluster: %s", what[0].value, what[1], exc)
        return response

    async def _publish_setting(self, setting: Setting, name: str, method: str, response: web.StreamResponse) -> None:
        assert self._kv is not None
        entry: dict[str, Any] = {"origin": self.link.node, "method": "DELETE"}
        if method != "DELETE":
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            entry = {"origin": self.link.node, "method": "PUT", "body": setting.replay_body(json.loads(response.body))}
        await self._kv.put(f"{name}.{setting.value}", json.dumps(entry).encode())
        self.published += 1

    async def _publish(self, change: tuple[Change, str], response: web.StreamResponse) -> None:
        kind, name = change
        assert self._kv is not None and self._code is not None
        if kind is Change.DELETED:
            self._applied.pop(name, None)
            await self._kv.delete(name)
            for setting in Setting:  # a function made again under this name starts afresh
                await self._kv.delete(f"{name}.{setting.value}")
            self.published += 1
            return
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        configuration = json.loads(response.body)
        name = str(configuration["FunctionName"])
        fn = self.scheduler.functions.get(name)
        if fn is None:
            return
        data = await asyncio.to_thread(zip_folder, Path(fn.config.code_dir))
        digest = hashlib.sha256(data).hexdigest()
        code_name = f"{name}-{digest[:32]}"
        await self._code.put(code_name, data)
        self._applied[name] = digest
        entry = {"origin": self.link.node, "configuration": configuration, "code": code_name, "sha256": digest}
        await self._kv.put(name, json.dumps(entry).encode())
        self.published += 1

    # --- applying -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        assert self._kv is not None
        while True:
            try:
                watcher = await self._kv.watchall()
                async for entry in watcher:
                    if entry is None:
                        continue
                    try:
                        await self._apply(entry.key, entry.value if entry.operation is None else None)
                    except (aiohttp.ClientError, TimeoutError, nats.errors.Error, ValueError, KeyError) as exc:
                        log.warning("registry: could not apply the change of %s: %s", entry.key, exc)
            except asyncio.CancelledError:
                raise
            except nats.errors.Error as exc:
                log.debug("registry watch: %s", exc)
                await asyncio.sleep(0.5)

    async def _apply(self, key: str, value: bytes | None) -> None:
        name, _, suffix = key.partition(".")
        if suffix:
            await self._apply_setting(name, Setting(suffix), value)
            return
        if value is None:  # deleted on another node
            self._applied.pop(name, None)
            self._pending.pop(name, None)
            if name in self.scheduler.functions:
                await self._call("DELETE", f"{FUNCTIONS_PATH}/{name}", None)
                self.applied += 1
            return
        entry = json.loads(value)
        if entry["origin"] == self.link.node:
            return
        configuration: dict[str, Any] = entry["configuration"]
        settings = {k: configuration[k] for k in _CONFIG_MEMBERS if k in configuration}
        if "DeadLetterConfig" not in settings:
            settings["DeadLetterConfig"] = {}
        if name not in self.scheduler.functions:
            zipped = await self._zip(entry["code"])
            body = {"FunctionName": name, "Code": {"ZipFile": zipped}, **settings}
            if configuration.get("Architectures"):
                body["Architectures"] = configuration["Architectures"]
            await self._call("POST", FUNCTIONS_PATH, body)
        else:
            if self._applied.get(name) != entry["sha256"]:
                await self._call("PUT", f"{FUNCTIONS_PATH}/{name}/code", {"ZipFile": await self._zip(entry["code"])})
            await self._call("PUT", f"{FUNCTIONS_PATH}/{name}/configuration", settings)
        self._applied[name] = entry["sha256"]
        self.applied += 1
        for setting, held in self._pending.pop(name, {}).items():
            await self._apply_setting(name, setting, held)

    async def _apply_setting(self, name: str, setting: Setting, value: bytes | None) -> None:
        if value is None:
            return  # the function was deleted, and the setting with it
        entry = json.loads(value)
        if entry["origin"] == self.link.node:
            return
        if name not in self.scheduler.functions:
            # Its function's entry is a later revision (its code changed since): applied then.
            self._pending.setdefault(name, {})[setting] = value
            return
        path = setting.path.format(name=name)
        if entry["method"] == "DELETE":
            await self._call("DELETE", path, None)
        else:
            await self._call("PUT", path, entry["body"])
        self.applied += 1

    async def _zip(self, code_name: str) -> str:
        assert self._code is not None
        found = await self._code.get(code_name)
        return base64.b64encode(found.data or b"").decode()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        assert self.url is not None
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body, headers={REPLICATED: "1"}) as response,
        ):
            text = await response.text()
            # A DELETE of what is already gone here (a function, an event-invoke config) is done.
            if response.status >= 300 and not (method == "DELETE" and response.status == 404):
                log.warning("registry: replaying %s %s answered %d: %s", method, path, response.status, text[:300])
