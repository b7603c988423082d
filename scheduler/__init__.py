"""lambda-scheduler: run AWS Lambda Python functions locally in forked execution environments,
with Lambda's lifecycle, limits and API.

    from scheduler import Scheduler, FunctionConfig

    async with Scheduler(functions=[FunctionConfig(name="hello", handler="app.handler",
                                                   code_dir="examples/hello")]) as s:
        result = await s.invoke("hello", {"name": "world"})
"""

from .config import FunctionConfig, SchedulerConfig
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
from .invocation import InvocationResult
from .scheduler import Scheduler

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
