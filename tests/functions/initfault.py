"""A module that misbehaves while being imported (Init), as FAULT says, for the first
FAULT_TIMES imports counted in FAULT_COUNTER (a file); later imports succeed."""

import ctypes
import os
import signal
import sys
import time

_counter = os.environ.get("FAULT_COUNTER")
_times = int(os.environ.get("FAULT_TIMES", "1000000"))
_n = 0
if _counter:
    with open(_counter, "a+") as f:
        f.seek(0)
        _n = len(f.read())
        f.write("x")
ACTIVE = _n < _times
FAULT = os.environ.get("FAULT", "") if ACTIVE else ""

if FAULT == "raise":
    raise RuntimeError("init failed on purpose")
elif FAULT == "import":
    import module_that_does_not_exist  # noqa: F401
elif FAULT == "exit":
    sys.exit(2)
elif FAULT == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
elif FAULT == "segfault":
    ctypes.string_at(0)
elif FAULT == "hang":
    time.sleep(3600)
elif FAULT == "flood":
    for _ in range(20_000):
        sys.stdout.write("y" * 1023 + "\n")
elif FAULT == "garbage":
    from scheduler.worker import runtime

    os.write(runtime.control_out_fd, b"\x00\x00\x00\x07garbage")
    time.sleep(10)
elif FAULT == "syntax":
    exec(compile("def broken(:\n", "broken.py", "exec"))  # noqa: S102 - a SyntaxError on purpose

print(f"init ran (attempt {_n + 1}, fault {FAULT or 'none'})")


def handler(event, context):
    return {"ok": True, "pid": os.getpid()}
