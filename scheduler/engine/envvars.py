"""The environment variables an execution environment starts with."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import FunctionConfig, SchedulerConfig
from ..logconfig import LogFormat

RUNTIME_DIR = str(Path(__file__).resolve().parent.parent / "worker")

# Host variables handed through so handlers can reach the same AWS endpoints as the user.
_PASS_THROUGH = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "LD_LIBRARY_PATH",
)


def code_path(config: FunctionConfig) -> list[str]:
    """sys.path entries for the function: its code, then each layer's python/ folder."""
    entries = [str(config.task_root)]
    for layer in config.layers:
        python_dir = Path(layer) / "python"
        entries.append(str(python_dir if python_dir.is_dir() else layer))
    return entries


def base_environment(config: FunctionConfig, settings: SchedulerConfig, version: str = "$LATEST") -> dict[str, str]:
    """Variables shared by every environment of one function configuration; ``version`` is
    what Lambda sets AWS_LAMBDA_FUNCTION_VERSION to ($LATEST or the published number)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": os.pathsep.join(code_path(config)),
    }
    env.update({key: os.environ[key] for key in _PASS_THROUGH if key in os.environ})
    env.update(config.environment)
    env.update(
        {
            "_HANDLER": config.handler,
            "AWS_REGION": settings.region,
            "AWS_DEFAULT_REGION": settings.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_LOG_GROUP_NAME": config.logging.group(config.name),
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "LAMBDA_TASK_ROOT": str(config.task_root),
            "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        }
    )
    env.update(_log_controls(config, env))
    return env


def _log_controls(config: FunctionConfig, env: dict[str, str]) -> dict[str, str]:
    """What the runtime reads to format and filter the handler's logging records. With JSON,
    Lambda sets both from LoggingConfig; with Text it sets the format, and a function may set
    ``AWS_LAMBDA_LOG_LEVEL`` (or the format) itself, as these variables are not reserved."""
    logging = config.logging
    if logging.log_format is LogFormat.JSON:
        assert logging.application_log_level is not None
        return {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": logging.application_log_level.value}
    return {"AWS_LAMBDA_LOG_FORMAT": env.get("AWS_LAMBDA_LOG_FORMAT", LogFormat.TEXT.value)}


def environment_for(base: dict[str, str], log_stream: str, provisioned: bool) -> dict[str, str]:
    env = dict(base)
    env["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "provisioned-concurrency" if provisioned else "on-demand"
    return env
