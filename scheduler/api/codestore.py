"""Where uploaded code lives while the server runs.

    CreateFunction / UpdateFunctionCode ─► upload_slot (one upload at a time, api/uploads.py)
        ─► CodeStore.unpack_upload (a thread): base64 ─► <root>/.upload-<id>.zip ─► unpacked into
           <root>/<function>/<revision>/ ─► FunctionConfig.code_dir

The root is a private folder made at startup (inside ``ServerConfig.code_store_dir``) and
removed at shutdown. Every upload gets a new revision folder, so environments still running
the previous code keep their files; a replaced revision is deleted once the pool that used it
has no environment left (``Pool.wait_drained``), unless a published version still runs it: then
it goes when the last such version is deleted (api/publishing.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from ..codezip import MAX_ZIPPED_BYTES, CodeInfo, unpack_zip, unpack_zip_file
from ..zipupload import Base64Zip, decode_to_file

log = logging.getLogger("lambda_scheduler.api")

# Uploads read, decoded and unpacked at once: each holds its request body (up to 70 MB) while
# it is processed, so one at a time bounds the memory, and keeps a single thread competing
# with the event loop for the GIL.
UPLOAD_SLOTS = 1


_PREFIX = "lambda-scheduler-code-"


def remove_stale_stores(parent: Path) -> list[Path]:
    """Remove the code stores of servers that were killed (``kill -9`` leaves them behind, up to
    250 MB per function): folders named with a pid that no longer runs. Returns what went."""
    removed = []
    for entry in parent.glob(f"{_PREFIX}*"):
        pid_text = entry.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or Path(f"/proc/{pid_text}").exists():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        log.warning("removed the code store %s of a server that is gone (pid %s)", entry, pid_text)
    return removed


class CodeStore:
    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self.parent = parent
        self._root: Path | None = None
        self._removals: set[asyncio.Task[None]] = set()
        self.upload_slot = asyncio.Semaphore(UPLOAD_SLOTS)  # held from reading the body to unpacking

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the code store is not open")
        return self._root

    def open(self) -> None:
        if self.parent is not None:
            Path(self.parent).mkdir(parents=True, exist_ok=True)
        parent = Path(self.parent) if self.parent is not None else Path(tempfile.gettempdir())
        remove_stale_stores(parent)
        # The pid in the name lets a later server know whose folder it was.
        self._root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))

    def close(self) -> None:
        for task in self._removals:
            task.cancel()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def unpack_upload(self, function_name: str, source: Base64Zip) -> tuple[Path, CodeInfo]:
        """Decode an uploaded ZipFile to a file, free the request body, unpack the file into a
        new revision folder; all in a thread."""
        dest = self.root / function_name / uuid.uuid4().hex
        info = await asyncio.to_thread(self._decode_and_unpack, source, dest)
        return dest, info

    async def unpack_zip(self, function_name: str, data: bytes) -> tuple[Path, CodeInfo]:
        """A zip already decoded (a cluster node's copy of another's code) into a new folder."""
        dest = self.root / function_name / uuid.uuid4().hex
        info = await asyncio.to_thread(unpack_zip, data, dest)
        return dest, info

    def _decode_and_unpack(self, source: Base64Zip, dest: Path) -> CodeInfo:
        staged = self.root / f".upload-{uuid.uuid4().hex}.zip"
        try:
            info = decode_to_file(source, staged, MAX_ZIPPED_BYTES)
            source.release()  # the request body is not needed any more
            unpack_zip_file(staged, dest)
        finally:
            source.release()
            staged.unlink(missing_ok=True)
        return info

    def discard(self, path: Path) -> None:
        """A revision that never ran (its function could not be created or updated)."""
        shutil.rmtree(path, ignore_errors=True)

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is a revision folder of this store (a template's code is not)."""
        return self._root is not None and path.parent.parent == self._root

    def retire(self, path: Path, *drained: asyncio.Future[None]) -> None:
        """A revision replaced or deleted: remove it once the last environment of every
        configuration that used it exits (their ``FunctionStatus.drained``)."""
        task = asyncio.ensure_future(self._remove_when_drained(path, drained))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    async def _remove_when_drained(self, path: Path, drained: tuple[asyncio.Future[None], ...]) -> None:
        for future in drained:
            await asyncio.shield(future)
        await asyncio.to_thread(shutil.rmtree, path, True)
