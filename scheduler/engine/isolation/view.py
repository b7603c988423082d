"""The private filesystem view of an environment, built in its own mount namespace.

Runs in a freshly forked environment (``child.enter_environment``), after it entered its
cgroups and while it is still root, before it drops to its uid and every capability::

    unshare(CLONE_NEWNS) ─► / made private ─► O_PATH handles on every needed path
        ─► covers and binds, parents first ─► hiding covers read-only

A *cover* is a tmpfs laid over a directory:

* a scratch directory every environment gets fresh (``/tmp`` sized like Lambda's ephemeral
  storage, ``/var/tmp``, ``/dev/shm``);
* the topmost directory on the way to a needed path that other users cannot search (``/root``
  for an interpreter in ``/root/.pyenv``, the code store's 0700 folder);
* a *private root*, even a world-readable one: the template's folder, every function's code
  and layers, the scheduler's own source checkout (``Layout.hidden``, chosen by the manager).

A hiding cover is an empty, read-only 0755 tmpfs holding nothing but mount points for the
needed paths under it. So the sandbox uid, holding no capability, reads exactly the
interpreter, the import path and the function's code and layers there; the rest of ``/root``,
the template, other functions' code and the rest of a checkout are simply not in its view.

Exceptions, so that a function always gets what it was given:

* a private root equal to or inside one of this environment's needed paths is not covered
  (``CodeUri: .`` puts the template inside the function's own code: it sees it);
* *shared* paths (``Layout.shared``) are bound back as they are, writable where their modes
  allow, and nothing at or inside them is a private root: folders a function exchanges files
  with the host through. Under a shared path only its own closed folders get covers.

Needed paths themselves must be readable by others (mode bits); the manager warns when one is
not. A needed path nested in another needed path of the same cover is reached through it.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import sysconfig
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
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # .../scheduler

_libc = ctypes.CDLL(None, use_errno=True)


class ViewFailed(RuntimeError):
    pass


@dataclass
class Cover:
    path: str
    scratch: bool  # a writable tmpfs (/tmp ...), else a read-only one that hides what it covers
    binds: list[str] = field(default_factory=list)  # needed paths under it, bound back read-only
    shared: list[str] = field(default_factory=list)  # shared paths under it, bound back as they are


@dataclass(frozen=True)
class Layout:
    """What a view hides although modes do not (``hidden``: private roots) and what it keeps
    as it is (``shared``). Real paths, no trailing slash."""

    hidden: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()


def interpreter_paths() -> list[str]:
    """What the running interpreter itself needs: its prefixes (stdlib, lib-dynload, a
    shared libpython) and its executable, for a handler that starts another Python. Planned in
    the zygote, so these are the function's runtime's (engine/runtimes.py), whichever that is."""
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.realpath(sys.executable)]


def source_checkout() -> str | None:
    """The folder holding the ``scheduler`` package when that is a source checkout (an
    editable install, or PYTHONPATH pointing at it) rather than an installation directory:
    environments need the package, never the rest of the checkout (tests, templates, .git)."""
    parent = os.path.dirname(PACKAGE_DIR)
    installed = {os.path.realpath(p) for key in ("purelib", "platlib") if (p := sysconfig.get_path(key))}
    return None if parent in installed or parent == "/" else parent


def narrow(paths: Iterable[str]) -> list[str]:
    """``paths`` with the scheduler's source checkout replaced by its package directory."""
    checkout = source_checkout()
    return [PACKAGE_DIR if checkout is not None and os.path.realpath(p) == checkout else p for p in paths]


# Never private roots, nor anything holding them or in them: what every program needs.
_SYSTEM_DIRS = ("/usr", "/etc", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/dev", "/proc", "/sys", "/run", "/boot")


def hideable(path: str) -> bool:
    """May ``path`` (a real path) be a private root? Not ``/``, nor a system directory, nor
    anything in or above one: a function's code in /usr/share would hide libraries otherwise."""
    return path.startswith("/") and not any(_under(path, d) or _under(d, path) for d in _SYSTEM_DIRS)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _inside(path: str, directory: str) -> bool:
    """Strictly below ``directory``."""
    return path != directory and _under(path, directory)


def _hidden_ancestor(path: str, below: str | None) -> str | None:
    """The topmost proper ancestor of ``path`` (strictly below ``below``, if given) that
    other users cannot search, if any."""
    parts = path.strip("/").split("/")[:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if below is not None and _under(below, current):
            continue
        try:
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return current
        except OSError:
            return None
    return None


def _cover_of(path: str, layout: Layout) -> str | None:
    """The cover ``path`` must be bound back into: the topmost of the scratch dir it lies
    in, its topmost ancestor closed to others and the private roots above it — all strictly
    below the shared path it lies in, if any, which shows what is under it as it is."""
    floor = max((s for s in layout.shared if _inside(path, s)), key=len, default=None)
    found = [d for d in SCRATCH_DIRS if _inside(path, d) and floor is None]
    found += [r for r in layout.hidden if _inside(path, r) and (floor is None or _inside(r, floor))]
    closed = _hidden_ancestor(path, floor)
    if closed is not None:
        found.append(closed)
    return min(found, key=len, default=None)  # all ancestors of path: the shortest is topmost


Classified = tuple[str, str, bool]  # (path, its cover, shared)


def _real(paths: Iterable[str]) -> set[str]:
    return {os.path.realpath(p) for p in paths if os.path.isabs(p)}


def _classify(paths: set[str], layout: Layout, shared: bool = False) -> list[Classified]:
    """(path, cover, shared) for each existing path of ``paths`` (real paths) that needs a
    cover to stay visible. Costs a few stat() per path."""
    out = []
    for path in paths:
        if path in SCRATCH_DIRS or not os.path.exists(path):
            continue  # a scratch dir itself stays private; nothing to keep of a missing path
        where = _cover_of(path, layout)
        if where is not None:
            out.append((path, where, shared))
    return out


def _assemble(classified: list[Classified], needed: set[str], layout: Layout) -> list[Cover]:
    covers = {d: Cover(d, True) for d in SCRATCH_DIRS if os.path.isdir(d)}
    for path, where, shared in sorted(classified):  # sorted: a parent before what lies in it
        cover = covers.setdefault(where, Cover(where, where in SCRATCH_DIRS))
        kept = cover.shared if shared else cover.binds
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    # Private roots nothing needed lies in: empty covers. Not one this environment needs
    # whole, nor one a shared path shows, nor one another cover hides already.
    for root in sorted(layout.hidden):
        if root in covers or any(_under(root, n) for n in needed) or any(_under(root, s) for s in layout.shared):
            continue
        if not any(_inside(root, c) for c in covers) and os.path.isdir(root):
            covers[root] = Cover(root, False)
    return sorted(covers.values(), key=lambda c: c.path)


def plan(needed: Iterable[str], layout: Layout = Layout()) -> list[Cover]:
    """The covers of a view in which every existing path of ``needed`` stays visible."""
    return Planner([], layout).plan(needed)


class Planner:
    """Plans views for environments that share ``common`` paths (the interpreter and the
    zygote's import path) and one layout. The zygote makes one before it forks (and keeps it
    while the layout stays the same), so a new environment only has to look at its own code
    and layers: classifying every path in each child cost ≈ 1.5 ms."""

    def __init__(self, common: Iterable[str], layout: Layout = Layout()) -> None:
        self.key = (tuple(common), layout)
        self.layout = layout
        # The package itself always: the worker runtime may import more of it after the fork.
        self._needed = _real(narrow([*self.key[0], *interpreter_paths(), PACKAGE_DIR]))
        self._common = [
            *_classify(self._needed, layout),
            *_classify(_real(layout.shared) - self._needed, layout, shared=True),
        ]

    def plan(self, own: Iterable[str]) -> list[Cover]:
        mine = _real(own) - self._needed
        return _assemble([*self._common, *_classify(mine, self.layout)], self._needed | mine, self.layout)


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


def _lay_cover(cover: Cover, tmp_mb: int) -> None:
    if not os.path.isdir(cover.path):
        _mount_point(cover.path, True)  # /var/tmp on the cover of a private root /var
    if cover.scratch:
        mb = tmp_mb if cover.path == "/tmp" else min(tmp_mb, _SCRATCH_MAX_MB)
        _mount("tmpfs", cover.path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={mb}m,mode=1777")
    else:
        _mount("tmpfs", cover.path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755")


def _bind(path: str, fd: int, writable: bool) -> None:
    source = os.fstat(fd)
    _mount_point(path, stat.S_ISDIR(source.st_mode))
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    # Never a way to gain privileges; read-only unless shared; noexec stays if the source had it.
    noexec = MS_NOEXEC if os.statvfs(path).f_flag & os.ST_NOEXEC else 0
    readonly = 0 if writable else MS_RDONLY
    _mount(None, path, None, MS_REMOUNT | MS_BIND | readonly | MS_NOSUID | MS_NODEV | noexec)


def build(covers: list[Cover], tmp_mb: int) -> None:
    """Enter a mount namespace of our own and lay ``covers`` over it. Root only."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks back to the host
    # Handles first: once a cover is mounted, what it covers cannot be reached by path.
    binds = [(path, False) for cover in covers for path in cover.binds]
    binds += [(path, True) for cover in covers for path in cover.shared]
    held = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path, _ in binds}
    # Parents first: a cover can lie inside a shared path bound back into another cover.
    steps: list[tuple[str, Cover | bool]] = [*((c.path, c) for c in covers), *binds]
    steps.sort(key=lambda step: (step[0], not isinstance(step[1], Cover)))  # a cover before a bind on it
    old_umask = os.umask(0o022)  # mount points 0755 whatever the zygote's umask
    try:
        for path, what in steps:
            if isinstance(what, Cover):
                _lay_cover(what, tmp_mb)
            else:
                _bind(path, held[path], what)
        for cover in covers:
            if not cover.scratch:
                _mount(None, cover.path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.umask(old_umask)
        for fd in held.values():
            os.close(fd)
