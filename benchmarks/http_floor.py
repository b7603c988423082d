"""The HTTP floor: a bare aiohttp server answering Lambda's Invoke route by calling the same
handler code (benchmarks/handlers/bench.py) in-process — no scheduler, no worker process, no
deadline. Whatever this server cannot beat on this machine, no server built on aiohttp can.

    python benchmarks/http_floor.py [--port 0]      prints "serving at http://127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent / "handlers"))
import bench

Handler = Callable[[Any, Any], Any]
HANDLERS: dict[str, Handler] = {"noop": bench.noop, "echo": bench.echo, "sleep": bench.sleep}


async def invoke(request: web.Request) -> web.Response:
    handler = HANDLERS.get(request.match_info["name"])
    if handler is None:
        return web.json_response({"Message": "Function not found"}, status=404)
    body = await request.read()
    result = handler(json.loads(body) if body else {}, None)
    return web.Response(body=json.dumps(result).encode(), content_type="application/json")


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"aiohttp floor: serving at http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(main(parser.parse_args().port))
