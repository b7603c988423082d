"""What the benchmarks need beyond the Python packages, installed when missing, so that
``python benchmarks/run_all.py`` runs on a fresh machine:

- wrk: ``apt-get install -y wrk`` (Debian's package) when running as root;
- node and npm: ``apt-get install -y nodejs npm`` when running as root (serverless-offline 13
  needs node ≥ 18.12; Debian 12 ships 18.19);
- serverless + serverless-offline: ``npm ci`` (or ``npm install``) in
  benchmarks/peers/serverless-offline, from the npm registry, pinned by its package-lock.json.

Each step says what it did; a step that cannot be done leaves a note, and the benchmarks that
need it are skipped with that note instead of failing the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .servers import PEER_DIR, SLS_BIN, SLS_ENV

_apt_updated = False


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


def _apt_install(*packages: str) -> tuple[bool, str]:
    global _apt_updated
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False, "not root or no apt-get: install " + " ".join(packages) + " by hand"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        _run(["apt-get", "update", "-qq"], env=env)
        _apt_updated = True
    return _run(["apt-get", "install", "-y", "-qq", *packages], env=env)


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return "wrk: present"
    ok, out = _apt_install("wrk")
    return "wrk: installed with apt-get" if ok and shutil.which("wrk") else f"wrk: MISSING ({out.strip()[-300:]})"


def ensure_node() -> str:
    if shutil.which("node") and shutil.which("npm"):
        return "node, npm: present"
    ok, out = _apt_install("nodejs", "npm")
    if ok and shutil.which("node") and shutil.which("npm"):
        return "node, npm: installed with apt-get"
    return f"node/npm: MISSING ({out.strip()[-300:]})"


def ensure_serverless_offline() -> str:
    lock = PEER_DIR / "package-lock.json"
    stamp = PEER_DIR / "node_modules" / ".package-lock.json"
    if SLS_BIN.is_file() and stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return "serverless-offline: present"
    if not shutil.which("npm"):
        return "serverless-offline: MISSING (no npm)"
    env = {
        **os.environ,
        **SLS_ENV,
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_update_notifier": "false",
    }
    command = ["npm", "ci"] if lock.is_file() else ["npm", "install"]
    ok, out = _run([*command, "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, env=env)
    if ok and SLS_BIN.is_file():
        return f"serverless-offline: installed ({' '.join(command)} in {PEER_DIR})"
    return f"serverless-offline: MISSING ({out.strip()[-300:]})"


def ensure_all() -> list[str]:
    return [ensure_wrk(), ensure_node(), ensure_serverless_offline()]
