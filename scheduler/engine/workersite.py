"""The worker's one dependency, msgspec, for an interpreter that does not have it.

The worker (``scheduler.worker``, ``engine/protocol.py``) speaks msgpack through msgspec, a
compiled extension built per Python version, so a python3.13 environment cannot borrow the
server's copy. An interpreter without one gets a folder of its own,
``<root>/python3.13.0-<digest of its path>/``, filled once with ``pip install --target`` and put
first on its zygote's path (so the handler can import it too, as it could anything the runtime
brings). pip may download from the configured package index: it is logged at warning level
before it runs, and ``lambda-scheduler runtimes`` does it ahead of time, so a server that must
not touch the network never has to. A lock file makes concurrent servers install it once; the
folder appears whole or not at all (installed beside it, then renamed).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger("lambda_scheduler.runtimes")

MSGSPEC_MIN = (0, 18)  # as the server's own requirement (pyproject.toml)
REQUIREMENT = "msgspec>=" + ".".join(map(str, MSGSPEC_MIN))
_DONE = ".installed"
_PIP_TIMEOUT_S = 600.0


class InstallFailed(Exception):
    pass


def default_root() -> Path:
    """``$XDG_CACHE_HOME/lambda-scheduler/runtimes`` (``~/.cache/...`` without it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "lambda-scheduler" / "runtimes"


def folder_for(executable: str, release: str, root: Path) -> Path:
    digest = hashlib.sha256(executable.encode()).hexdigest()[:12]
    return root / f"python{release}-{digest}"


def ensure(executable: str, release: str, root: Path) -> str:
    """The folder holding msgspec for ``executable``, installed now if it is not yet."""
    folder = folder_for(executable, release, root)
    if (folder / _DONE).is_file():
        return str(folder)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another server may be installing the same one
        if not (folder / _DONE).is_file():
            _install(executable, release, folder)
    return str(folder)


def _install(executable: str, release: str, folder: Path) -> None:
    log.warning(
        "Python %s (%s) cannot import msgspec, which the worker needs: installing %s into %s with pip "
        "(it may download from your package index; `lambda-scheduler runtimes` does this ahead of time)",
        release,
        executable,
        REQUIREMENT,
        folder,
    )
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        done = subprocess.run(
            [executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
            + ["--target", str(staging), REQUIREMENT],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=_PIP_TIMEOUT_S,
            check=False,
            umask=0o022,
        )
        if done.returncode != 0:
            said = [line for line in done.stderr.decode(errors="replace").splitlines() if "WARNING" not in line]
            raise InstallFailed(
                f"pip could not install {REQUIREMENT} for {executable} ({' '.join(said[-2:]) or done.returncode}); "
                f"install it into that interpreter ({executable} -m pip install msgspec)"
            )
        _open_to_all(staging)  # environments run as other users: they must read it
        (staging / _DONE).write_text(REQUIREMENT + "\n")
        if folder.exists():
            shutil.rmtree(folder)  # a folder without the marker: an install that did not finish
        os.rename(staging, folder)
    except subprocess.TimeoutExpired:
        raise InstallFailed(f"pip did not install {REQUIREMENT} for {executable} within {_PIP_TIMEOUT_S:.0f} s") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def package_link(package_dir: str, root: Path) -> str:
    """A folder holding nothing but ``scheduler``, a link to ``package_dir``: what another
    interpreter's zygote imports the worker through. Not the folder the package lies in, which
    for an installed scheduler is the server's site-packages: its compiled modules are built
    for the server's Python, and handlers of another one must not find them first."""
    digest = hashlib.sha256(package_dir.encode()).hexdigest()[:12]
    folder = root / f"package-{digest}"
    link = folder / "scheduler"
    if link.is_symlink() and os.readlink(link) == package_dir:
        return str(folder)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", suffix=".part", dir=root))
    staging.chmod(0o755)
    os.symlink(package_dir, staging / "scheduler")
    try:
        os.rename(staging, folder)
    except OSError:  # made meanwhile by another server (or a stale one: replaced)
        if not (link.is_symlink() and os.readlink(link) == package_dir):
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def _open_to_all(top: Path) -> None:
    top.chmod(0o755)  # mkdtemp made it 0700
    for parent, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o755)
        for name in files:
            path = os.path.join(parent, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
