"""A real ``nats-server -js`` for the cluster tests: a free loopback port, a temporary store
directory, ready once it accepts connections; stopped (and its store removed) afterwards.

Without the binary the tests skip, saying why, unless LAMBDA_SCHEDULER_REQUIRE_NATS=1 (the CI):
then they fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REQUIRE = "LAMBDA_SCHEDULER_REQUIRE_NATS"


def binary() -> str:
    found = shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.access(p, os.X_OK)), None
    )
    if found is None:
        message = "nats-server is not installed (apt-get install nats-server); the cluster tests need it"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One JetStream server. ``restart`` keeps the port and the store (what a restart of the
    service does), so clients reconnect to the same address and find their streams."""

    def __init__(self) -> None:
        self.binary = binary()
        self.port = free_port()
        self.store = Path(tempfile.mkdtemp(prefix="nats-", dir=os.environ.get("TMPDIR")))
        self.log = self.store / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        args = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store / "js")]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nats-server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"INFO"):  # the server's greeting: it serves clients
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"nats-server did not accept connections:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)
