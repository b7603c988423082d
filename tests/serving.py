"""``lambda-scheduler serve`` as a real subprocess, for the tests that drive the command itself."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMAND = str(Path(sys.executable).with_name("lambda-scheduler"))


class Server:
    """``lambda-scheduler serve`` in a subprocess, and the URL it printed. Its stderr goes to a
    file, so a chatty server can never block on a full pipe."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen([COMMAND, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=stderr)
        self.url = self._wait_for_url(timeout=20)

    def _wait_for_url(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = self.process.stdout.readline().decode()
            if not line:
                break
            found = re.search(r" at (http://\S+)$", line.strip())
            if found:
                return found.group(1)
        self.close()
        raise AssertionError(f"no URL printed; stderr:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        self.process.communicate(timeout=30)
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)
