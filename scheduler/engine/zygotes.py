"""One zygote per interpreter: the server's own, started with the scheduler, and one more for
each other interpreter a function's runtime runs on (runtimes.py), started when the first such
function is added.

A fork inherits its zygote's interpreter, so environments of a python3.12 function must come
from a zygote running Python 3.12; functions of the same interpreter share one. ``--preload``
modules are imported only by the server's own zygote: another interpreter may not have them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from ..errors import ZygoteError
from .runtimes import Interpreter
from .zygote import ZygoteClient

log = logging.getLogger("lambda_scheduler.zygote")


class Zygotes:
    def __init__(self, default: ZygoteClient) -> None:
        """``default``: the server's own interpreter's (Scheduler.zygote)."""
        self._by_python: dict[str, ZygoteClient] = {default.python: default}

    def client(self, interpreter: Interpreter) -> ZygoteClient:
        """The zygote of ``interpreter``, made (not started) on first use."""
        client = self._by_python.get(interpreter.executable)
        if client is None:
            client = ZygoteClient(interpreter.executable, path=interpreter.zygote_path)
            self._by_python[interpreter.executable] = client
        return client

    def __iter__(self) -> Iterator[ZygoteClient]:
        return iter(list(self._by_python.values()))

    async def warm(self, client: ZygoteClient) -> None:
        """Start ``client`` ahead of its first environment, so that no Init pays for it. A
        failure is only logged here: the first cold start tries again and reports it."""
        try:
            await client.ensure_running()
        except ZygoteError as exc:
            log.error("the zygote of %s did not start: %s", client.python, exc)

    async def stop(self) -> None:
        await asyncio.gather(*(client.stop() for client in self._by_python.values()))
