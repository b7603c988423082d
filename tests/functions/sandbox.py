"""A handler that reports what its environment may touch: capabilities, files, directories,
open descriptors, other processes. Everything it tries is reported, never raised."""

import errno
import importlib
import os
import signal
import subprocess
import sys

_CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Uid", "Gid", "Groups")


def _err(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if isinstance(exc, OSError) else type(exc).__name__


def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in _CAP_FIELDS:
                out[key] = value.strip()
    return out


def _read(path):
    try:
        with open(path, "rb") as f:
            return "read:" + f.read(64).decode("utf-8", "replace")
    except OSError as exc:
        return _err(exc)


def _write(path):
    try:
        with open(path, "w") as f:
            f.write(f"written by {os.getuid()}\n")
        return "written"
    except OSError as exc:
        return _err(exc)


def _list(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return _err(exc)


def _fds():
    """Each open descriptor and what it points at."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError as exc:
            out[name] = _err(exc)
    return out


def _signal(pid):
    try:
        os.kill(pid, 0)
        return "allowed"
    except OSError as exc:
        return _err(exc)


def _child_status():
    """Capabilities of a process the handler starts (another Python): still none."""
    code = "import sys; sys.path[:0] = [%r]; import sandbox, json; print(json.dumps(sandbox.status()))"
    proc = subprocess.run(
        [sys.executable, "-c", code % os.path.dirname(os.path.abspath(__file__))],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    return proc.stdout.strip() or proc.stderr[-500:]


def probe(event, context):
    result = {"status": status(), "uid": os.getuid(), "pid": os.getpid()}
    result["read"] = {path: _read(path) for path in event.get("read", [])}
    result["list"] = {path: _list(path) for path in event.get("list", [])}
    result["write"] = {path: _write(path) for path in event.get("write", [])}
    result["signal"] = {str(pid): _signal(pid) for pid in event.get("signal", [])}
    if event.get("fds"):
        result["fds"] = _fds()
    if event.get("child"):
        result["child"] = _child_status()
    for module in event.get("imports", []):
        try:
            mod = importlib.import_module(module)
            result.setdefault("imports", {})[module] = getattr(mod, "__file__", None) or "builtin"
        except Exception as exc:  # noqa: BLE001 - reported
            result.setdefault("imports", {})[module] = f"{type(exc).__name__}: {exc}"
    return result


def kill(event, context):
    """SIGKILL a pid (another server's environment): what does the kernel say?"""
    try:
        os.kill(event["pid"], signal.SIGKILL)
        return {"kill": "allowed", "uid": os.getuid()}
    except OSError as exc:
        return {"kill": _err(exc), "uid": os.getuid()}
