"""Linux inotify through ctypes: recursive folder watches whose events the event loop reads.

Why not the ``watchfiles`` package: it runs its watcher in a thread and hands changes over
through a queue, and brings a compiled dependency to every install for one optional flag.
inotify is a file descriptor: the loop reads it like the environments' pipes (``add_reader``),
nothing polls, and the scheduler is Linux-only already (pidfds, namespaces, cgroups). The price
is what inotify does not do by itself — recursion — which is done here: every folder of a tree
gets a watch, and a folder created or moved in later gets one as its creation is read.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

# What changes a file's content or a folder's entries; IN_MODIFY too, for writers that never
# close (the debounce in watch.py waits for the writes to settle).
CHANGES = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Change:
    path: str  # the file or folder that changed ("" for a queue overflow: anything may have)
    mask: int

    @property
    def overflow(self) -> bool:
        return bool(self.mask & IN_Q_OVERFLOW)


class Inotify:
    """One inotify instance; ``fileno()`` is readable when :meth:`read` has changes."""

    def __init__(self, skip: Iterable[str] = ()) -> None:
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self._fd: int = int(fd)
        self._skip = frozenset(skip)  # folder names never watched (__pycache__, .git)
        self._folders: dict[int, str] = {}  # watch descriptor -> folder
        self._files: dict[int, str] = {}  # watch descriptor -> a single watched file's folder

    def fileno(self) -> int:
        return self._fd

    def watch_tree(self, root: str) -> None:
        """Watch ``root`` and every folder under it (not those named in ``skip``)."""
        for folder, dirs, _files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in self._skip]
            self._add(folder, CHANGES | IN_ONLYDIR)

    def watch_folder(self, folder: str) -> None:
        """Watch ``folder``'s own entries only (for one file in it: a template)."""
        self._add(folder, CHANGES | IN_MOVE_SELF | IN_ONLYDIR, recursive=False)

    def _add(self, folder: str, mask: int, recursive: bool = True) -> None:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):
                return  # gone again before its watch was added: its removal is reported
            raise OSError(err, os.strerror(err), folder)
        (self._folders if recursive else self._files)[wd] = folder

    def read(self) -> list[Change]:
        """The changes queued so far (none if there are none yet)."""
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return []
        changes = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            changes.extend(self._event(wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
        return changes

    def _event(self, wd: int, mask: int, name: str) -> list[Change]:
        if mask & IN_Q_OVERFLOW:
            return [Change("", mask)]
        recursive = wd in self._folders
        folder = self._folders.get(wd) if recursive else self._files.get(wd)
        if folder is None:
            return []
        if mask & IN_IGNORED:  # the folder is gone (or unmounted): its watch with it
            self._folders.pop(wd, None)
            self._files.pop(wd, None)
            return []
        path = os.path.join(folder, name) if name else folder
        if recursive and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO) and name not in self._skip:
            self.watch_tree(path)  # a new folder: watched, and what it already holds reported
            return [Change(path, mask), *(Change(p, IN_CREATE) for p in _files_in(path))]
        return [Change(path, mask)]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _files_in(folder: str) -> list[str]:
    """Files already in a folder that was just created or moved in: written before its
    watch existed, their own events were never queued."""
    found: list[str] = []
    for top, _dirs, files in os.walk(folder):
        found.extend(os.path.join(top, f) for f in files)
    return found
