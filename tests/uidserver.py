"""A scheduler in a process of its own, driven over stdin/stdout, for tests about what two
servers on one host share (``python -m tests.uidserver BASE NAME=HANDLER ...``).

Prints ``{"pid": ...}`` once started; then, for each line ``{"fn": NAME, "event": {...}}``,
invokes and prints ``{"payload": ..., "error": ..., "env_pid": ...}``; stops at end of input.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from scheduler import FunctionConfig, Scheduler

FUNCTIONS = Path(__file__).parent / "functions"


async def main(base: int, functions: list[str]) -> None:
    configs = [FunctionConfig(name=n, handler=h, code_dir=FUNCTIONS) for n, h in (f.split("=") for f in functions)]
    loop = asyncio.get_running_loop()
    async with Scheduler(configs, sandbox_uid_base=base, init_timeout_s=10) as s:
        print(json.dumps({"pid": os.getpid(), "zygote": s.zygote.pid}), flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            request = json.loads(line)
            result = await s.invoke(request["fn"], request.get("event", {}))
            env = next(iter(s.environments(request["fn"])), None)
            reply = {"payload": json.loads(result.payload), "error": result.error_type, "env_pid": env and env.pid}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
