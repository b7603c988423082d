"""Where uploaded code lives while the server runs.

    CreateFunction / UpdateFunctionCode ─► CodeStore.unpack ─► <root>/<function>/<revision>/
                                                                  └─ FunctionConfig.code_dir

The root is a private folder made at startup (inside ``ServerConfig.code_store_dir``) and
removed at shutdown. Every upload gets a new revision folder, so environments still running
the previous code keep their files; a replaced revision is deleted once the pool that used it
has no environment left (``Pool.wait_drained``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from ..codezip import CodeInfo, unpack_zip
from ..pool import Pool

log = logging.getLogger("lambda_scheduler.api")


class CodeStore:
    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self.parent = parent
        self._root: Path | None = None
        self._removals: set[asyncio.Task[None]] = set()

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("the code store is not open")
        return self._root

    def open(self) -> None:
        if self.parent is not None:
            Path(self.parent).mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix="lambda-scheduler-code-", dir=self.parent))

    def close(self) -> None:
        for task in self._removals:
            task.cancel()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def unpack(self, function_name: str, data: bytes) -> tuple[Path, CodeInfo]:
        """Unpack a zip into a new revision folder (in a thread: archives can be large)."""
        dest = self.root / function_name / uuid.uuid4().hex
        info = await asyncio.to_thread(unpack_zip, data, dest)
        return dest, info

    def discard(self, path: Path) -> None:
        """A revision that never ran (its function could not be created or updated)."""
        shutil.rmtree(path, ignore_errors=True)

    def retire(self, path: Path, pool: Pool) -> None:
        """A revision replaced or deleted: remove it once ``pool``'s last environment exits."""
        task = asyncio.ensure_future(self._remove_when_drained(path, pool))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    async def _remove_when_drained(self, path: Path, pool: Pool) -> None:
        await pool.wait_drained()
        await asyncio.to_thread(shutil.rmtree, path, True)
