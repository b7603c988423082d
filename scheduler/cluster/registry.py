"""The function registry shared by the nodes: what is created, updated, published or deleted
through one node's API is applied by every other node within about a second.

    a change answered 2xx on node A (changes.py says which: a function, a version, an alias,
    reserved / provisioned concurrency, event-invoke settings)
        ─► code folders zipped ─► Object Store lambda_code (by content hash, stored once)
        ─► KV lambda_functions[key] = {origin, the state the change left}
    every other node watches the bucket, in revision order:
        $LATEST, aliases, settings ─► replayed through its own API (the same validation, catalog
            and code store as a local call; signed with its own key under --auth sigv4), marked
            so that the replay is not shared again
        a published version ─► adopted in-process (adopt.py): its own code and configuration
        the first node's RevisionId, CodeSha256 and LastModified ─► its catalog

What travels is what the API answered, not the request, so a replay sees the values the first
node settled on; each key holds the state the last change of it left (an UpdateAlias travels
as the whole alias), so the last change of each wins on every node. A node joining later reads
every key in revision order; a key of a function it does not have yet (the function's own key
is a later revision, its code having changed since) is held until the function is there.

Layers are not carried: they come from each node's template, as the functions that use them.
A version published on two nodes at once under the same number keeps the first in the bucket;
the other node logs that its own differs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors
from aiohttp import web
from aiohttp.typedefs import Handler
from nats.js import api
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from ..api.catalog import FunctionRecord
from ..api.functions import configuration as configuration_response
from ..api.keys import CATALOG, SETTINGS
from ..engine.scheduler import Scheduler
from ..engine.status import FunctionStatus
from ..errors import SchedulerError
from ..sigv4 import Signer
from .adopt import adopt_version, replay_settings, take_identity
from .changes import FUNCTIONS_PATH, Change, Changed, Key, Setting, changed_by
from .link import ClusterLink, cancel

log = logging.getLogger("lambda_scheduler.cluster")

FUNCTION_BUCKET = "lambda_functions"
CODE_BUCKET = "lambda_code"
# A request carrying this header is a replay of another node's change: applied, not shared.
REPLICATED = "X-Lambda-Scheduler-Replicated"
_APPLY_ERRORS = (aiohttp.ClientError, TimeoutError, nats.errors.Error, ValueError, KeyError, OSError, SchedulerError)


def zip_folder(folder: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = Path(root) / name
                archive.write(path, path.relative_to(folder).as_posix())
    return out.getvalue()


def _answered(response: web.StreamResponse) -> dict[str, Any]:
    if isinstance(response, web.Response) and isinstance(response.body, bytes) and response.body:
        found = json.loads(response.body)
        return found if isinstance(found, dict) else {}
    return {}


class Registry:
    def __init__(self, link: ClusterLink, scheduler: Scheduler) -> None:
        self.link = link
        self.scheduler = scheduler
        # This process, not just the node's name: a node restarted under its name applies
        # what it shared in its earlier life, which it no longer has.
        self.origin = f"{link.node}/{uuid.uuid4().hex[:12]}"
        self.url: str | None = None  # this node's API, where replays are sent
        self._app: web.Application | None = None
        self._signer: Signer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._kv: KeyValue | None = None
        self._code: ObjectStore | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._applied: dict[str, str] = {}  # by function: the code hash $LATEST has from the bucket
        self._versions: dict[str, set[str]] = {}  # by function: versions in the bucket already
        self._stored: set[str] = set()  # code objects this process put or found
        self._pending: dict[str, dict[str, bytes]] = {}  # by function: its keys seen before it
        self.published = 0
        self.applied = 0

    async def open(self) -> None:
        self._kv = await self.link.js.create_key_value(api.KeyValueConfig(bucket=FUNCTION_BUCKET, history=1))
        self._code = await self.link.js.create_object_store(CODE_BUCKET)

    def bind(self, app: web.Application) -> None:
        """The API this node replays through and whose catalog it keeps in step."""
        self._app = app
        settings = app[SETTINGS]
        if settings.auth_mode == "sigv4":
            key = settings.credentials[0]
            self._signer = Signer(key.access_key, key.secret_key, self.scheduler.settings.region)

    def start(self, url: str) -> None:
        self.url = url
        self._session = aiohttp.ClientSession()
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        await cancel(watcher)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- sharing ------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if REPLICATED in request.headers or not 200 <= response.status < 300:
            return response
        changed = changed_by(request)
        if changed is None:
            return response
        try:
            await self._share(request, changed, _answered(response))
        except (TimeoutError, nats.errors.Error, OSError, SchedulerError) as exc:
            what = changed.change or changed.setting
            assert what is not None
            log.warning("registry: could not share %s of %s with the cluster: %s", what.value, changed.name, exc)
        return response

    async def _share(self, request: web.Request, changed: Changed, answered: dict[str, Any]) -> None:
        name = changed.name or str(answered.get("FunctionName", ""))
        if changed.setting is not None:
            qualifier = changed.qualifier or answered.get("Name")  # CreateAlias names it in the answer
            entry: dict[str, Any] = {"method": "DELETE"}
            if request.method != "DELETE":
                entry = {"method": "PUT", "body": changed.setting.replay_body(answered)}
                if changed.setting is Setting.ALIAS:
                    entry["revision"] = answered["RevisionId"]
            await self._put(changed.setting.key(name, qualifier), entry)
        elif changed.change is Change.DELETED:
            await self._forget(name)
        elif changed.change is Change.VERSION_DELETED:
            assert changed.qualifier is not None
            self._versions.get(name, set()).discard(changed.qualifier)
            await self._put(Setting.VERSION.key(name, changed.qualifier), {"method": "DELETE"})
        else:
            fn = self.scheduler.functions.get(name)
            if fn is None:
                return
            if changed.change is not Change.PUBLISHED:
                code, digest = await self._store_code(name, Path(fn.config.code_dir))
                self._applied[name] = digest
                entry = {"configuration": await self._configuration(request, fn), "code": code}
                await self._put(name, {**entry, "sha256": digest})
            await self._share_versions(request, name)

    async def _share_versions(self, request: web.Request, name: str) -> None:
        """Every version of ``name`` not in the bucket yet (a Publish, a PublishVersion)."""
        assert self._kv is not None
        shared = self._versions.setdefault(name, set())
        for version in self.scheduler.versions(name)[1:]:
            if version.version in shared:
                continue
            code, _ = await self._store_code(name, Path(version.config.code_dir))
            configuration = await self._configuration(request, version)
            entry = {"origin": self.origin, "method": "PUT", "configuration": configuration, "code": code}
            try:
                await self._kv.create(Setting.VERSION.key(name, version.version), json.dumps(entry).encode())
                shared.add(version.version)
                self.published += 1
            except nats.js.errors.KeyWrongLastSequenceError:
                shared.add(version.version)
                await self._check_same(name, version.version, configuration)

    async def _check_same(self, name: str, number: str, mine: dict[str, Any]) -> None:
        """A version this node has that the bucket had already: the same one (every node
        publishes its template's versions), or one published elsewhere at the same moment."""
        assert self._kv is not None
        found = await self._kv.get(Setting.VERSION.key(name, number))
        theirs = json.loads(found.value or b"{}").get("configuration", {})
        if theirs.get("CodeSha256") != mine.get("CodeSha256") or theirs.get("Handler") != mine.get("Handler"):
            log.warning(
                "registry: version %s of %s was published by another node as well, with other code or "
                "settings; the other nodes run that one",
                number,
                name,
            )


    async def _forget(self, name: str) -> None:
        """The whole function: its key and every key of its parts."""
        assert self._kv is not None
        self._applied.pop(name, None)
        self._versions.pop(name, None)
        await self._kv.delete(name)
        try:
            parts = await self._kv.keys(filters=[f"{name}.>"])
        except nats.js.errors.NoKeysError:
            parts = []
        for key in parts:
            await self._kv.delete(key)
        self.published += 1

    async def _put(self, key: str, entry: dict[str, Any]) -> None:
        assert self._kv is not None
        await self._kv.put(key, json.dumps({"origin": self.origin, **entry}).encode())
        self.published += 1

    async def _configuration(self, request: web.Request, fn: FunctionStatus) -> dict[str, Any]:
        return _answered(await configuration_response(request, fn))

    async def _store_code(self, name: str, folder: Path) -> tuple[str, str]:
        """The folder's zip in the Object Store (once per content): its object name and hash."""
        assert self._code is not None
        data = await asyncio.to_thread(zip_folder, folder)
        digest = hashlib.sha256(data).hexdigest()
        code_name = f"{name}-{digest[:32]}"
        if code_name not in self._stored:
            await self._code.put(code_name, data)
            self._stored.add(code_name)
        return code_name, digest

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
                    except _APPLY_ERRORS as exc:
                        log.warning("registry: could not apply the change of %s: %s", entry.key, exc)
            except asyncio.CancelledError:
                raise
            except nats.errors.Error as exc:
                log.debug("registry watch: %s", exc)
                await asyncio.sleep(0.5)

    async def _apply(self, key: str, value: bytes | None) -> None:
        parsed = Key.parse(key)
        name = parsed.name
        if value is None:
            if parsed.setting is None:  # the whole function, deleted on another node
                await self._drop(name)
            return  # a part's key goes only with its function
        entry = json.loads(value)
        if entry["origin"] == self.origin:
            return
        if parsed.setting is None:
            await self._apply_function(name, entry)
            for held_key, held in self._pending.pop(name, {}).items():
                await self._apply(held_key, held)
        elif name not in self.scheduler.functions:
            held_parts = self._pending.setdefault(name, {})
            held_parts.pop(key, None)  # kept in the order of their last change
            held_parts[key] = value
        else:
            await self._apply_part(parsed, entry)
        self.applied += 1

    async def _drop(self, name: str) -> None:
        self._applied.pop(name, None)
        self._versions.pop(name, None)
        self._pending.pop(name, None)
        if name in self.scheduler.functions:
            await self._call("DELETE", f"{FUNCTIONS_PATH}/{name}", None)
            self.applied += 1

    async def _apply_function(self, name: str, entry: dict[str, Any]) -> None:
        configuration: dict[str, Any] = entry["configuration"]
        settings = replay_settings(configuration)
        if name not in self.scheduler.functions:
            body = {"FunctionName": name, "Code": {"ZipFile": await self._zip(entry["code"])}, **settings}
            if configuration.get("Architectures"):
                body["Architectures"] = configuration["Architectures"]
            done = await self._call("POST", FUNCTIONS_PATH, body)
        else:
            done = True
            if self._applied.get(name) != entry["sha256"]:
                done = await self._call("PUT", f"{FUNCTIONS_PATH}/{name}/code", {"ZipFile": await self._zip(entry["code"])})
            done = await self._call("PUT", f"{FUNCTIONS_PATH}/{name}/configuration", settings) and done
        self._applied[name] = entry["sha256"]
        if done and name in self.scheduler.functions:
            take_identity(self._catalog_record(name), configuration)

    async def _apply_part(self, key: Key, entry: dict[str, Any]) -> None:
        setting, name, qualifier = key.setting, key.name, key.qualifier
        assert setting is not None
        method = str(entry["method"])
        if setting is Setting.VERSION:
            assert qualifier is not None and self._app is not None
            shared = self._versions.setdefault(name, set())
            here = {v.version for v in self.scheduler.versions(name)[1:]}
            if method == "DELETE":
                shared.discard(qualifier)
                if qualifier in here:
                    await self._call("DELETE", setting.path(name, qualifier, method=method), None)
            elif qualifier not in here:
                found = await self._code_object(entry["code"])
                await adopt_version(self._app, name, qualifier, entry["configuration"], found)
                shared.add(qualifier)
            return
        body = entry.get("body")
        if setting is Setting.ALIAS and method == "PUT":
            assert qualifier is not None
            if qualifier not in self.scheduler.get_function(name).versions.aliases:
                method, body = "POST", {"Name": qualifier, **entry["body"]}
            if await self._call(method, setting.path(name, qualifier, method=method), body):
                self._catalog_record(name).alias_revisions[qualifier] = str(entry["revision"])
            return
        await self._call(method, setting.path(name, qualifier, method=method), body)

    def _catalog_record(self, name: str) -> FunctionRecord:
        assert self._app is not None
        return self._app[CATALOG].function_record(self.scheduler.status(name))

    async def _code_object(self, code_name: str) -> bytes:
        assert self._code is not None
        found = await self._code.get(code_name)
        return found.data or b""

    async def _zip(self, code_name: str) -> str:
        return base64.b64encode(await self._code_object(code_name)).decode()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> bool:
        """Replay one request through this node's API; whether it was applied."""
        assert self.url is not None and self._session is not None
        url = self.url + path
        data = b"" if body is None else json.dumps(body).encode()
        headers = {REPLICATED: "1"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._signer is not None:  # --auth sigv4: the node's own key, as any client
            headers = self._signer.sign(method, url, data, headers)
        async with self._session.request(method, url, data=data or None, headers=headers) as response:
            text = await response.text()
            # A DELETE of what is already gone here (a function, an event-invoke config) is done.
            if response.status < 300 or (method == "DELETE" and response.status == 404):
                return True
            log.warning("registry: replaying %s %s answered %d: %s", method, path, response.status, text[:300])
            return False
