"""The servers under test, each started the same way (its own session, a log file, a ready
check) and stopped by its pid:

- ``ours``: ``lambda-scheduler serve benchmarks/template.yaml`` at log level warning (or the
  level a benchmark asks for: info is the server's default, a log line per invocation);
- ``floor``: benchmarks/http_floor.py, a bare aiohttp handler calling the same handler code
  in-process (the HTTP floor of this machine);
- ``serverless-offline``: ``serverless offline start`` (Serverless Framework 3 with the
  serverless-offline 13 plugin) in benchmarks/peers/serverless-offline, serving the same
  handlers on its Lambda port; telemetry, notifications, update checks off, dummy credentials.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .procs import Server, free_port, port_open, start_server, url_in_log

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
TEMPLATE = BENCH / "template.yaml"
PEER_DIR = BENCH / "peers" / "serverless-offline"
SLS_BIN = PEER_DIR / "node_modules" / "serverless" / "bin" / "serverless.js"
LOGS = BENCH / "results" / "tmp"

# serverless needs none of its services: no telemetry, no notifications, no update checks,
# no interactive setup, no geo lookup; AWS credentials are never checked offline, but the SDK
# it loads looks for some.
SLS_ENV = {
    "SLS_TELEMETRY_DISABLED": "1",
    "SLS_TRACKING_DISABLED": "1",
    "SLS_NOTIFICATIONS_MODE": "off",
    "SLS_DEPRECATION_DISABLE": "*",
    "SLS_DISABLE_AUTO_UPDATE": "1",
    "SLS_GEO_LOCATION": "us",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": "us-east-1",
    "AWS_SDK_LOAD_CONFIG": "0",
}


def python() -> str:
    return sys.executable


# serverless' level for each of ours: warning for warning (neither prints a line per
# invocation), and its own default ("notice") for ours (info).
SLS_LOG_LEVELS = {"debug": "debug", "info": "notice", "warning": "warning", "error": "error"}


def start_ours(
    extra: Sequence[str] = (), template: Path = TEMPLATE, name: str = "lambda-scheduler", log_level: str = "warning"
) -> Server:
    command = [python(), "-m", "scheduler", "serve", str(template), "--port", "0", "--log-level", log_level, *extra]
    return start_server(name, command, log=LOGS / f"{name}.log", ready=url_in_log(), cwd=ROOT)


def start_floor() -> Server:
    command = [python(), str(BENCH / "http_floor.py"), "--port", "0"]
    return start_server("aiohttp-floor", command, log=LOGS / "aiohttp-floor.log", ready=url_in_log(), cwd=ROOT)


def serverless_offline_available() -> str | None:
    """None when it can run here, else why not."""
    if not SLS_BIN.is_file():
        return f"not installed ({SLS_BIN} missing: run npm install in {PEER_DIR})"
    if not (PEER_DIR / "handlers" / "bench.py").is_file():
        return f"{PEER_DIR / 'handlers'} does not lead to benchmarks/handlers"
    return None


def start_serverless_offline(log_level: str = "warning") -> Server:
    lambda_port, http_port, ws_port = free_port(), free_port(), free_port()
    env = {**os.environ, **SLS_ENV, "SLS_LOG_LEVEL": SLS_LOG_LEVELS[log_level]}
    # Its Python runner runs `python3` from PATH; VIRTUAL_ENV puts this venv's first, so the
    # handlers run on the same interpreter (with boto3) as ours.
    env["VIRTUAL_ENV"] = sys.prefix
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [
        "node",
        str(SLS_BIN),
        "offline",
        "start",
        "--noAuth",
        "--noPrependStageInUrl",
        "--host",
        "127.0.0.1",
        "--lambdaPort",
        str(lambda_port),
        "--httpPort",
        str(http_port),
        "--websocketPort",
        str(ws_port),
    ]
    url = f"http://127.0.0.1:{lambda_port}"
    # At log level warning it prints nothing when ready: readiness is its Lambda port accepting.
    return start_server(
        "serverless-offline",
        command,
        log=LOGS / "serverless-offline.log",
        ready=lambda _text: url if port_open(lambda_port) else None,
        cwd=PEER_DIR,
        env=env,
        timeout_s=90,
    )
