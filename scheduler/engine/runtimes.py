"""Which interpreter runs a function's runtime.

    FunctionConfig.runtime "python3.12" ─► Runtimes.choose (once per runtime, in a thread)
        1. --runtime python3.12=PATH         (SchedulerConfig.runtime_interpreters)
        2. the server's own interpreter      (SchedulerConfig.python), if it is a 3.12
        3. python3.12 on PATH                (every match in order: a pyenv shim may not run)
      ─► probe: does it start, is it that version, can it import msgspec (workersite.py
         installs it into a folder of its own if not)
      ─► no usable one: the server's interpreter, with a warning — or, with strict_runtime,
         the function is refused (InvalidParameterValueException over the API)

On Lambda, ``Runtime: python3.12`` means the handler runs on Python 3.12: ``sys.version_info``
shows it, and so do the language's rules (a 3.12-only syntax fails on 3.11). So each
interpreter gets a zygote of its own (zygotes.py), and the worker code runs under it: what
``scheduler.worker`` imports (``engine/protocol.py``, ``engine/isolation/child.py`` and
``view.py``, ``errors.py``) keeps to Python 3.9.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..config import SchedulerConfig
from ..errors import RuntimeUnavailable
from . import workersite
from .isolation import view
from .isolation.manager import interpreter_path

log = logging.getLogger("lambda_scheduler.runtimes")

WORKER_MIN_VERSION = (3, 9)
_PROBE_TIMEOUT_S = 20.0
# Run with -E (no PYTHON* variables): what the interpreter has of its own, not what the
# server's PYTHONPATH would lend it.
_PROBE = (
    "import json, sys\n"
    "try:\n"
    "    import msgspec\n"
    "    has = msgspec.__version__\n"
    "except Exception:\n"
    "    has = ''\n"
    "print(json.dumps({'version': list(sys.version_info[:3]), 'executable': sys.executable,"
    " 'path': [p for p in sys.path if p], 'msgspec': has}))\n"
)


class Match(Enum):
    """How a runtime was matched to an interpreter."""

    EXACT = "exact"  # an interpreter of the runtime's version
    SUBSTITUTE = "substitute"  # none usable here: the server's interpreter instead
    REFUSED = "refused"  # none usable, and strict_runtime: the function is refused


@dataclass(frozen=True)
class Interpreter:
    """A Python that can run the worker. ``zygote_path``: what its zygote puts on its import
    path (the worker's dependency where the interpreter lacks it, then the ``scheduler``
    package); None for the server's own interpreter, which imports both as the server does."""

    executable: str
    version: tuple[int, int, int]
    paths: tuple[str, ...]  # its import path, for the sandbox's readability check
    site: str | None = None  # where msgspec was installed for it, if it has none of its own
    zygote_path: tuple[str, ...] | None = None

    @property
    def release(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True)
class Choice:
    runtime: str
    match: Match
    interpreter: Interpreter
    reason: str = ""  # why no interpreter of the runtime's version is used

    def refusal(self) -> RuntimeUnavailable:
        return RuntimeUnavailable(
            self.runtime,
            f"Runtime {self.runtime} cannot run here: {self.reason}. Give an interpreter with "
            f"--runtime {self.runtime}=PATH, or serve without --strict-runtime to run it on Python "
            f"{self.interpreter.release} ({self.interpreter.executable})."
        )

    def warning(self) -> str:
        return (
            f"runtime {self.runtime} runs on Python {self.interpreter.release} ({self.interpreter.executable}) "
            f"instead: {self.reason}; give one with --runtime {self.runtime}=PATH (--strict-runtime refuses "
            "such functions)"
        )


class Unusable(Exception):
    """An interpreter that cannot run the worker; the message says why."""


def runtime_version(runtime: str) -> tuple[int, int]:
    major, minor = runtime.removeprefix("python").split(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class Probed:
    interpreter: Interpreter
    has_msgspec: bool


_probed: dict[str, Probed | Unusable] = {}  # by path: an interpreter found stays what it was for this process
_probing = threading.Lock()


def probe(executable: str) -> Probed:
    """What ``executable`` is, read by starting it the first time it is asked for in this
    process (blocking: call it in a thread). Raises Unusable."""
    with _probing:
        found = _probed.get(executable)
        if found is None:
            try:
                found = _probe(executable)
            except Unusable as exc:
                found = exc
            _probed[executable] = found
    if isinstance(found, Unusable):
        raise Unusable(str(found))  # a fresh one: re-raising the cached one would pile up tracebacks
    return found


def _probe(executable: str) -> Probed:
    try:
        done = subprocess.run(
            [executable, "-E", "-c", _PROBE],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unusable(f"{executable} does not start ({exc})") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise Unusable(f"{executable} does not run ({said[0] if said else f'exit status {done.returncode}'})")
    try:
        found = json.loads(done.stdout.decode().strip().splitlines()[-1])
        major, minor, micro = (int(v) for v in found["version"])
        paths = tuple(str(p) for p in found["path"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise Unusable(f"{executable} is not a Python this scheduler can read") from None
    # Its own sys.executable, not the path given: a pyenv shim names the real interpreter
    # there, while a virtual environment's python keeps its own path (and its packages).
    interpreter = Interpreter(str(found["executable"] or executable), (major, minor, micro), paths)
    # An older msgspec of the interpreter's own is passed over: ours goes first on its path.
    return Probed(interpreter, _release(str(found["msgspec"])) >= workersite.MSGSPEC_MIN)


def _release(version: str) -> tuple[int, ...]:
    """``"0.18.6"`` as (0, 18, 6); () for none or one that cannot be read."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def on_path(runtime: str) -> list[str]:
    """Every ``python3.N`` executable on PATH, in PATH order."""
    found = []
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", runtime)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


class Runtimes:
    """The interpreter of each runtime, chosen once per scheduler (``choose`` blocks: it may
    start interpreters and run pip; the scheduler calls it in a thread)."""

    def __init__(self, settings: SchedulerConfig) -> None:
        self.settings = settings
        self._explicit = dict(settings.runtime_interpreters)
        self._chosen: dict[str, Choice] = {}
        self._lock = threading.Lock()
        self._site_root = Path(settings.runtime_dir) if settings.runtime_dir else workersite.default_root()
        self._own: Interpreter | None = None

    def chosen(self, runtime: str) -> Choice | None:
        """The choice already made for ``runtime``, if any (never blocks)."""
        return self._chosen.get(runtime)

    def choose(self, runtime: str) -> Choice:
        with self._lock:
            choice = self._chosen.get(runtime)
            if choice is None:
                choice = self._chosen[runtime] = self._choose(runtime)
            return choice

    def server_interpreter(self) -> Interpreter:
        """The server's own interpreter (``settings.python``), which every scheduler has a
        zygote for and which runs the functions no other interpreter matches."""
        if self._own is None:
            python = self.settings.python
            if python == sys.executable:
                major, minor, micro = sys.version_info[:3]
                self._own = Interpreter(python, (major, minor, micro), tuple(interpreter_path()))
            else:
                try:
                    found = probe(python).interpreter
                    # Under the configured path: the one the server's own zygote is keyed by.
                    self._own = Interpreter(python, found.version, found.paths)
                except Unusable:
                    # Its zygote will fail to start and say why; the version is unknown here.
                    self._own = Interpreter(python, (0, 0, 0), ())
        return self._own

    def _choose(self, runtime: str) -> Choice:
        wanted = runtime_version(runtime)
        own = self.server_interpreter()
        reasons: list[str] = []
        for candidate in self._candidates(runtime, own):
            if isinstance(candidate, Interpreter):
                return Choice(runtime, Match.EXACT, candidate)
            try:
                interpreter = self._usable(probe(candidate))
            except Unusable as exc:
                reasons.append(str(exc))
                continue
            if interpreter.version[:2] != wanted:
                reasons.append(f"{candidate} is Python {interpreter.release}")
                continue
            return Choice(runtime, Match.EXACT, interpreter)
        if not reasons:
            reasons.append(f"no {runtime} on PATH")
        match = Match.REFUSED if self.settings.strict_runtime else Match.SUBSTITUTE
        return Choice(runtime, match, own, "; ".join(reasons))

    def _candidates(self, runtime: str, own: Interpreter) -> list[str | Interpreter]:
        explicit = self._explicit.get(runtime)
        if explicit is not None:
            return [explicit]  # what the operator named, and nothing else
        out: list[str | Interpreter] = []
        if own.version[:2] == runtime_version(runtime):
            out.append(own)
        out.extend(on_path(runtime))
        return out

    def _usable(self, probed: Probed) -> Interpreter:
        """The probed interpreter, ready to run the worker: msgspec importable, installed into
        a folder of its own (workersite.py) if it has none, and the package reachable."""
        interpreter = probed.interpreter
        if interpreter.version[:2] < WORKER_MIN_VERSION:
            return interpreter  # turned down by its version in _choose, before any install
        try:
            site = None if probed.has_msgspec else workersite.ensure(interpreter.executable, interpreter.release, self._site_root)
            package = workersite.package_link(view.PACKAGE_DIR, self._site_root)
        except workersite.InstallFailed as exc:
            raise Unusable(str(exc)) from None
        except OSError as exc:  # the runtime dir cannot be written: this interpreter cannot be prepared
            raise Unusable(f"cannot prepare {self._site_root} for {interpreter.executable}: {exc}") from None
        path = (site, package) if site else (package,)
        return Interpreter(interpreter.executable, interpreter.version, (*path, *interpreter.paths), site, path)
