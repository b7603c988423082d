"""Facts about the machine and the software versions, recorded with every result."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .servers import PEER_DIR
from .wrk import wrk_version


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _npm_version(name: str) -> str | None:
    try:
        return str(json.loads((PEER_DIR / "node_modules" / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip() or None


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(_mem_total_gib(), 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "load_average": os.getloadavg(),
        "versions": {
            "python": platform.python_version(),
            "lambda-scheduler": _version("lambda-scheduler"),
            "aiohttp": _version("aiohttp"),
            "uvloop": _version("uvloop"),
            "msgspec": _version("msgspec"),
            "loky": _version("loky"),
            "matplotlib": _version("matplotlib"),
            "boto3": _version("boto3"),
            "node": _node_version(),
            "serverless": _npm_version("serverless"),
            "serverless-offline": _npm_version("serverless-offline"),
            "wrk": wrk_version(),
        },
    }
