"""The private filesystem view of an environment, built in its own mount namespace.

Runs in a freshly forked environment (``child.enter_environment``), after it entered its
cgroups and while it is still root, before it drops to its uid and every capability::

    unshare(CLONE_NEWNS) ─► / made private ─► O_PATH handles on every needed path
        ─► tmpfs over each *cover* ─► needed paths bound back, read-only ─► hiding covers read-only

A cover is either a scratch directory every environment gets fresh (``/tmp`` sized like
Lambda's ephemeral storage, ``/var/tmp``, ``/dev/shm``), or the topmost directory on the way to
a needed path that other users cannot search (``/root`` for an interpreter in
``/root/.pyenv``, the code store's 0700 folder): that one becomes an empty, read-only 0755
tmpfs holding nothing but mount points for the needed paths under it. So the sandbox uid,
holding no capability, can read exactly the interpreter, the import path and the function's
code there, while the rest of ``/root``, the code of other functions and the template next to
it are simply not in its view.

Needed paths themselves must be readable by others (mode bits); the manager warns when one is
not. A needed path nested in another needed path of the same cover is reached through it.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_SCRATCH_MAX_MB = 64  # /var/tmp and /dev/shm: up to this, /tmp: the ephemeral storage

_libc = ctypes.CDLL(None, use_errno=True)


class ViewFailed(RuntimeError):
    pass


@dataclass
class Cover:
    path: str
    scratch: bool  # a writable tmpfs (/tmp ...), else a read-only one that hides what it covers
    binds: list[str] = field(default_factory=list)  # needed paths under it, bound back read-only


def interpreter_paths() -> list[str]:
    """What the running interpreter itself needs: its prefixes (stdlib, lib-dynload, a
    shared libpython) and its executable, for a handler that starts another Python."""
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.realpath(sys.executable)]


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _hidden_ancestor(path: str) -> str | None:
    """The topmost proper ancestor of ``path`` that other users cannot search, if any."""
    parts = path.strip("/").split("/")[:-1]
    current = ""
    for part in parts:
        current += "/" + part
        try:
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return current
        except OSError:
            return None
    return None


def _classify(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(path, cover) for each existing path that needs a cover to stay visible: a scratch dir
    it lies in, or its topmost ancestor closed to others. Costs a few stat() per path."""
    out = []
    for path in {os.path.realpath(p) for p in paths if os.path.isabs(p)}:
        if path in SCRATCH_DIRS or not os.path.exists(path):
            continue  # a scratch dir itself stays private; nothing to keep of a missing path
        where = next((d for d in SCRATCH_DIRS if _under(path, d)), None) or _hidden_ancestor(path)
        if where is not None:
            out.append((path, where))
    return out


def _assemble(classified: Iterable[tuple[str, str]]) -> list[Cover]:
    covers = {d: Cover(d, True) for d in SCRATCH_DIRS if os.path.isdir(d)}
    for path, where in sorted(classified):  # sorted: a parent before what lies in it
        cover = covers.setdefault(where, Cover(where, where in SCRATCH_DIRS))
        if not any(_under(path, kept) for kept in cover.binds):
            cover.binds.append(path)
    return sorted(covers.values(), key=lambda c: c.path)


def plan(needed: Iterable[str]) -> list[Cover]:
    """The covers of a view in which every existing path of ``needed`` stays visible."""
    return _assemble(_classify(needed))


class Planner:
    """Plans views for environments that share ``common`` paths (the interpreter and the
    zygote's import path). The zygote makes one at start-up, so a new environment only has
    to look at its own code and layers: classifying every path in each child cost ≈ 1.5 ms."""

    def __init__(self, common: Iterable[str]) -> None:
        self.key = tuple(common)
        self._common = _classify([*self.key, *interpreter_paths()])

    def plan(self, own: Iterable[str]) -> list[Cover]:
        return _assemble([*self._common, *_classify(own)])


def _check(result: int, what: str) -> None:
    if result != 0:
        raise ViewFailed(f"{what}: {os.strerror(ctypes.get_errno())}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _mount_point(path: str, is_dir: bool) -> None:
    """Create ``path`` (and missing parents, 0755) on a fresh cover, to mount onto."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if is_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def build(covers: list[Cover], tmp_mb: int) -> None:
    """Enter a mount namespace of our own and lay ``covers`` over it. Root only."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks back to the host
    # Handles first: once a cover is mounted, what it covers cannot be reached by path.
    held = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for cover in covers for path in cover.binds]
    old_umask = os.umask(0o022)  # mount points 0755 whatever the zygote's umask
    try:
        for cover in covers:
            if cover.scratch:
                mb = tmp_mb if cover.path == "/tmp" else min(tmp_mb, _SCRATCH_MAX_MB)
                _mount("tmpfs", cover.path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={mb}m,mode=1777")
            else:
                _mount(
                    "tmpfs", cover.path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755"
                )
        for path, fd in held:
            source = os.fstat(fd)
            _mount_point(path, stat.S_ISDIR(source.st_mode))
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            # Read-only, and never a way to gain privileges; noexec stays if the source had it.
            noexec = MS_NOEXEC if os.statvfs(path).f_flag & os.ST_NOEXEC else 0
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | noexec)
        for cover in covers:
            if not cover.scratch:
                _mount(None, cover.path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.umask(old_umask)
        for _, fd in held:
            os.close(fd)
