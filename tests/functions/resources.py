"""Handlers that use resources: memory, CPU, /tmp, processes, privileges."""

import errno
import os
import time

_held = []


def hog(event, context):
    """Allocate (and touch) memory in steps, so a watchdog has time to see it grow."""
    step = event.get("step_mb", 16) << 20
    for _ in range(event["mb"] // event.get("step_mb", 16)):
        _held.append(bytearray(step))
        time.sleep(event.get("pause", 0.01))
    _held.clear()
    return "survived"


def huge(event, context):
    """One allocation far beyond any memory size."""
    block = bytearray(event["gb"] << 30)
    return len(block)


def peak(event, context):
    """Use ``mb`` of memory for a moment, then free it."""
    block = bytearray(event["mb"] << 20)
    del block
    return "done"


def spin(event, context):
    """A fixed amount of CPU work; returns how long it took inside the handler."""
    began = time.perf_counter()
    total = 0
    for i in range(event["n"]):
        total += i * i
    return {"seconds": time.perf_counter() - began}


def fill_tmp(event, context):
    """Write ``mb`` MB into the temp dir; report how far it got and the error."""
    directory = os.environ.get("TMPDIR", "/tmp")
    chunk = b"z" * (1 << 20)
    written = 0
    try:
        with open(os.path.join(directory, "fill"), "wb") as f:
            for _ in range(event["mb"]):
                f.write(chunk)
                written += 1
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return {"written_mb": written, "errno": errno.errorcode.get(exc.errno, exc.errno)}
    return {"written_mb": written, "errno": None}


def fork_bomb(event, context):
    """Fork sleepers until the kernel refuses; report how many were made."""
    made = 0
    for _ in range(event.get("attempts", 500)):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    return {"forked": made}


def identity(event, context):
    """Who am I, and what can I touch?"""
    result = {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}
    try:
        with open(event["protected"], "a") as f:
            f.write("tampered\n")
        result["write"] = "allowed"
    except OSError as exc:
        result["write"] = errno.errorcode.get(exc.errno, str(exc.errno))
    try:
        os.kill(event["scheduler_pid"], 0)
        result["signal"] = "allowed"
    except OSError as exc:
        result["signal"] = errno.errorcode.get(exc.errno, str(exc.errno))
    return result

