"""Sandbox uids are leased host-wide: two servers never share one, a function of one server
cannot signal the other's environments, and a killed server's uids come free again."""

from __future__ import annotations

import json
import os
import pwd
import random
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.engine.isolation.uids import LOCK_DIRS, UidLeases, lock_directory, processes_of

from .procs import wait_gone, zygote_family

ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(not ROOT, reason="needs root: only root leases sandbox uids")


def _base() -> int:
    """A base of our own, far from the default 50,000: other test runs lease on this host too."""
    return random.randrange(3_000_000, 900_000_000, 1_000)


# --- leases in one process ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_leases_are_exclusive_until_released(tmp_path: Path) -> None:
    base = _base()
    one, two = UidLeases(base, directory=tmp_path), UidLeases(base, directory=tmp_path)
    try:
        assert one.lease("f") == base and one.lease("f") == base  # a function keeps its uid
        assert two.lease("f") == base + 1  # the lock is another open file: it conflicts
        assert one.lease("g") == base + 2
        assert (tmp_path / f"{base}.lock").read_text() == f"{os.getpid()}\n"  # whose lease, for people
        one.close(clean=True)
        assert (tmp_path / f"{base}.lock").read_text() == "clean\n"  # the next holder need not look
        assert two.lease("h") == base  # released: the lowest free uid again
        two.close()
        assert (tmp_path / f"{base}.lock").read_text() == f"{os.getpid()}\n"  # not known clean
    finally:
        one.close()
        two.close()


@needs_root
@pytest.mark.timeout(30)
def test_a_leftover_process_of_a_free_uid_is_killed_first(tmp_path: Path) -> None:
    base = _base()
    straggler = subprocess.Popen(["setpriv", f"--reuid={base}", f"--regid={base}", "--clear-groups", "sleep", "60"])
    try:
        while not processes_of(base):  # setpriv has switched uid: the straggler is in place
            assert straggler.poll() is None
        leases = UidLeases(base, directory=tmp_path)
        assert leases.lease("f") == base
        assert straggler.wait(timeout=5) == -9 and not processes_of(base)
        leases.close()
    finally:
        straggler.kill()
        straggler.wait()


@pytest.mark.timeout(30)
def test_uids_of_accounts_are_skipped(tmp_path: Path) -> None:
    uid = next(u for u in sorted(p.pw_uid for p in pwd.getpwall()) if u > 0 and not _account(u + 1))
    leases = UidLeases(uid, directory=tmp_path)
    try:
        assert leases.lease("f") == uid + 1
    finally:
        leases.close()


def _account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@needs_root
@pytest.mark.timeout(30)
def test_the_lock_directory_is_root_only(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)  # someone else's: not to be trusted
    chosen = lock_directory((str(foreign), str(tmp_path / "ours")))
    assert chosen == tmp_path / "ours" and (chosen.stat().st_mode & 0o777) == 0o700
    assert lock_directory() == Path(LOCK_DIRS[0])  # this host's /run is writable


# --- two servers, each in its own process ---------------------------------------------------


class Server:
    """``tests.uidserver`` in a child process: a scheduler with functions from tests/functions."""

    def __init__(self, base: int, *functions: str) -> None:
        self.base = base
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.uidserver", str(base), *functions],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env, text=True,
        )  # fmt: skip
        started = self._line(30)
        self.pid, self.zygote = started["pid"], started["zygote"]

    def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no answer from the server in time"
        line = self.proc.stdout.readline()
        assert line, f"the server exited ({self.proc.poll()})"
        return json.loads(line)  # type: ignore[no-any-return]

    def invoke(self, function: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"fn": function, "event": event or {}}) + "\n")
        self.proc.stdin.flush()
        reply = self._line(30)
        assert reply["error"] is None, reply
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; stopped after it, checking that none left a process behind."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
    for server in started:
        assert not wait_gone(zygote_family(owner=server.pid), timeout=10), "processes left behind"
    for base in {server.base for server in started}:  # a random base nobody else leases from
        for uid in range(base, base + 10):
            (Path(LOCK_DIRS[0]) / f"{uid}.lock").unlink(missing_ok=True)


@needs_root
@pytest.mark.timeout(90)
def test_two_servers_never_share_a_uid_nor_signal_each_other(servers: list[Server]) -> None:
    base = _base()
    servers.append(a := Server(base, "f=sandbox.probe", "killer=sandbox.kill"))
    servers.append(b := Server(base, "f=sandbox.probe"))
    fa, fb = a.invoke("f")["payload"], b.invoke("f")["payload"]
    assert fa["uid"] == base and fb["uid"] == base + 1  # b found a's uid leased, took the next
    killed = a.invoke("killer", {"pid": fb["pid"]})["payload"]
    assert killed == {"kill": "EPERM", "uid": base + 2}  # another function of a: its own uid again
    again = b.invoke("f")
    assert again["payload"]["pid"] == fb["pid"]  # b's environment is untouched, still warm


@needs_root
@pytest.mark.timeout(90)
def test_a_killed_servers_uids_are_leased_again(servers: list[Server]) -> None:
    base = _base()
    servers.append(a := Server(base, "f=sandbox.probe"))
    uid_a = a.invoke("f")["payload"]["uid"]
    servers.append(b := Server(base, "f=sandbox.probe"))
    assert b.invoke("f")["payload"]["uid"] == uid_a + 1
    a.proc.kill()  # SIGKILL: no clean-up of any kind; the kernel drops its locks
    a.proc.wait()
    assert not wait_gone(zygote_family(owner=a.pid), timeout=10)  # its zygote and environments die with it
    servers.append(c := Server(base, "f=sandbox.probe"))
    assert c.invoke("f")["payload"]["uid"] == uid_a
    assert b.invoke("f")["payload"]["uid"] == uid_a + 1
