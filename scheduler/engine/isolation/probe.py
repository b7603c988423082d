"""What this host lets the scheduler do: cgroups (v2, v1 or none), mount namespaces, root.

Probed once at start-up, cheaply and without side effects beyond a test mkdir, so the choice
of mechanism — and the reason for a fallback — can be reported in the log and in /metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "pids")


@dataclass(frozen=True)
class HostCapabilities:
    root: bool
    cgroup_version: int  # 2, 1 or 0 (none usable)
    cgroup_reason: str  # why the chosen version, or why none
    v1_dirs: dict[str, Path] = field(default_factory=dict)  # controller -> our own cgroup dir
    v2_dir: Path | None = None
    mount_namespace: bool = False
    mount_reason: str = ""


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for the unified hierarchy) -> our path in it, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            out[""] = path
        for name in controllers.split(","):
            out[name.removeprefix("name=")] = path
    return out


def _writable_dir(path: Path) -> bool:
    probe = path / f"lambda-scheduler-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        probe.rmdir()
    except OSError:
        pass
    return True


def _probe_v2(own: dict[str, str]) -> tuple[Path | None, str]:
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        return None, "no unified cgroup hierarchy at /sys/fs/cgroup"
    base = CGROUP_ROOT / own.get("", "/").lstrip("/")
    available = set((base / "cgroup.controllers").read_text().split()) if (base / "cgroup.controllers").exists() else set()
    missing = {"memory", "cpu", "pids"} - available
    if missing:
        return None, f"cgroup v2 controllers not delegated here: {', '.join(sorted(missing))}"
    if not _writable_dir(base):
        return None, f"cgroup v2 directory {base} is not writable"
    return base, "cgroup v2"


def _probe_v1(own: dict[str, str]) -> tuple[dict[str, Path], str]:
    dirs: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        mount = CGROUP_ROOT / controller
        if not (mount / "cgroup.procs").exists():
            return {}, f"cgroup v1 controller {controller} is not mounted"
        base = mount / own.get(controller, "/").lstrip("/")
        if not _writable_dir(base):
            return {}, f"cgroup v1 directory {base} is not writable"
        dirs[controller] = base
    return dirs, "cgroup v1"


_UNSHARE_TEST = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "ok = libc.unshare(0x00020000) == 0 and libc.mount(None, b'/', None, 16384 | (1 << 18), None) == 0\n"
    "sys.exit(0 if ok else 1)\n"
)


def _probe_mount_namespace() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "not root: no mount namespace for a private /tmp"
    # Try it for real, in a separate interpreter (never fork the scheduler): containers often
    # forbid it even to root.
    result = subprocess.run([sys.executable, "-I", "-c", _UNSHARE_TEST], check=False, capture_output=True, timeout=30)
    if result.returncode == 0:
        return True, "mount namespace"
    return False, "unshare(CLONE_NEWNS) is not permitted here"


def probe(allow_cgroups: bool = True, allow_namespaces: bool = True) -> HostCapabilities:
    root = os.geteuid() == 0
    own = _own_cgroups()
    version, reason = 0, "cgroups disabled by settings"
    v1_dirs: dict[str, Path] = {}
    v2_dir: Path | None = None
    if allow_cgroups:
        v2_dir, reason2 = _probe_v2(own)
        if v2_dir is not None:
            version, reason = 2, reason2
        else:
            v1_dirs, reason1 = _probe_v1(own)
            version, reason = (1, reason1) if v1_dirs else (0, f"{reason2}; {reason1}")
    mount_ok, mount_reason = _probe_mount_namespace() if allow_namespaces else (False, "namespaces disabled by settings")
    return HostCapabilities(root, version, reason, v1_dirs, v2_dir, mount_ok, mount_reason)
