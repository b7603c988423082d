"""lambda-scheduler: run AWS Lambda Python functions locally in forked execution environments,
with Lambda's lifecycle, limits and API.

    from scheduler import Scheduler, FunctionConfig

    async with Scheduler(functions=[FunctionConfig(name="hello", handler="app.handler",
                                                   code_dir="examples/hello")]) as s:
        result = await s.invoke("hello", {"name": "world"})
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import FunctionConfig, SchedulerConfig
    from .engine.invocation import InvocationResult
    from .engine.scheduler import Scheduler
    from .errors import (
        ConfigError,
        FunctionNotFound,
        InvalidParameterValue,
        RequestTooLarge,
        ResourceConflict,
        SchedulerClosed,
        SchedulerError,
        Throttled,
    )

# Exports load on first use: the zygote imports scheduler.worker, which must not drag the
# scheduler itself (asyncio, the pools) into every environment's memory.
_EXPORTS = {
    "FunctionConfig": "config",
    "SchedulerConfig": "config",
    "ConfigError": "errors",
    "FunctionNotFound": "errors",
    "InvalidParameterValue": "errors",
    "RequestTooLarge": "errors",
    "ResourceConflict": "errors",
    "SchedulerClosed": "errors",
    "SchedulerError": "errors",
    "Throttled": "errors",
    "InvocationResult": "engine.invocation",
    "Scheduler": "engine.scheduler",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ConfigError",
    "FunctionConfig",
    "FunctionNotFound",
    "InvalidParameterValue",
    "InvocationResult",
    "RequestTooLarge",
    "ResourceConflict",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerConfig",
    "SchedulerError",
    "Throttled",
]

__version__ = "0.1.0"
