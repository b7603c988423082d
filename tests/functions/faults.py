"""Handlers that misbehave at invoke time, one way each."""

import ctypes
import os
import re
import signal
import sys
import time

from scheduler.worker import runtime


def ok(event, context):
    return {"ok": True, "pid": os.getpid()}


def raise_error(event, context):
    raise KeyError("action")


def exit_nonzero(event, context):
    sys.exit(3)


def exit_zero(event, context):
    os._exit(0)


def sigkill_self(event, context):
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(event, context):
    ctypes.string_at(0)


def hang(event, context):
    time.sleep(3600)


def hang_in_c(event, context):
    # Catastrophic backtracking: minutes inside the C regex engine, which never checks signals.
    re.match(r"(a+)+b", "a" * 64)


def ignore_sigterm_and_hang(event, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)


def ignore_sigterm(event, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return "ignoring SIGTERM from now on"


def flood_stdout(event, context):
    chunk = "x" * 1023 + "\n"
    for _ in range(event.get("kib", 20_000)):
        sys.stdout.write(chunk)
    print("flood done")
    return "flooded"


def garbage(event, context):
    os.write(runtime.control_out_fd, b"\x00\x00\x00\x07garbage")
    time.sleep(10)


def bad_length(event, context):
    os.write(runtime.control_out_fd, b"\xff\xff\xff\xff")
    time.sleep(10)


def unserializable(event, context):
    return {"a set": {1, 2, 3}}


def oversize(event, context):
    return "x" * (6 * 1024 * 1024 + 1)


def big_but_allowed(event, context):
    return "y" * (6 * 1024 * 1024 - 2)


def returns_bytes(event, context):
    return b"raw bytes"


def fork_child_and_exit(event, context):
    """Leave a grandchild holding the pipes, then crash: exit must still be seen."""
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    os._exit(5)
