"""A function's logging and tracing settings (LoggingConfig, TracingConfig.Mode), typed.

Shared by the engine (the platform's records, the runtime's variables), the API and the
template reader; the words Lambda refuses bad values with are in validation.py.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

_E = TypeVar("_E", bound=enum.StrEnum)


def checked_enum(name: str, kind: type[_E], value: Any) -> _E:
    """``value`` as a member of ``kind``, or a ConfigError naming the field."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(name, f"must be one of {', '.join(kind)}, got {value!r}") from None


class LogFormat(enum.StrEnum):
    """LoggingConfig.LogFormat: how the runtime writes application logs and the platform its
    records (START / REPORT lines, or ``platform.*`` JSON records)."""

    JSON = "JSON"
    TEXT = "Text"


class ApplicationLogLevel(enum.StrEnum):
    """LoggingConfig.ApplicationLogLevel: the handler's ``logging`` records below it are dropped
    (Python's runtime maps TRACE to DEBUG and FATAL to CRITICAL)."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class SystemLogLevel(enum.StrEnum):
    """LoggingConfig.SystemLogLevel: the platform's records below it are dropped."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"

    @property
    def rank(self) -> int:
        return _SYSTEM_RANKS[self]


_SYSTEM_RANKS = {SystemLogLevel.DEBUG: 10, SystemLogLevel.INFO: 20, SystemLogLevel.WARN: 30}

LOG_LEVEL_TEXT_REFUSED = (
    'LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request or change the '
    'LogFormat to "JSON" and try again.'
)
# A log group name, as Lambda's API prints its pattern, and its length.
LOG_GROUP_PATTERN = r"[\.\-_/#A-Za-z0-9]+"
LOG_GROUP = re.compile(LOG_GROUP_PATTERN)
MAX_LOG_GROUP = 512


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """A function's LoggingConfig. Lambda accepts log levels only with the JSON format, and
    reports both levels as INFO when JSON is chosen without them; the log group defaults to
    ``/aws/lambda/<function name>`` (None here: the function's default)."""

    log_format: LogFormat = LogFormat.TEXT
    application_log_level: ApplicationLogLevel | None = None
    system_log_level: SystemLogLevel | None = None
    log_group: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_format", checked_enum("log_format", LogFormat, self.log_format))
        group = self.log_group
        if group is not None and not (isinstance(group, str) and LOG_GROUP.fullmatch(group) and len(group) <= MAX_LOG_GROUP):
            raise ConfigError("log_group", f"must be 1-{MAX_LOG_GROUP} of {LOG_GROUP_PATTERN}, got {group!r}")
        if self.log_format is LogFormat.TEXT:
            if self.application_log_level is not None or self.system_log_level is not None:
                raise ConfigError("logging", "log levels need LogFormat JSON", api_message=LOG_LEVEL_TEXT_REFUSED)
            return
        app_level = self.application_log_level or ApplicationLogLevel.INFO
        object.__setattr__(self, "application_log_level", checked_enum("application_log_level", ApplicationLogLevel, app_level))
        system_level = self.system_log_level or SystemLogLevel.INFO
        object.__setattr__(self, "system_log_level", checked_enum("system_log_level", SystemLogLevel, system_level))

    def group(self, function_name: str) -> str:
        return self.log_group or f"/aws/lambda/{function_name}"

    @property
    def system_level(self) -> SystemLogLevel:
        return self.system_log_level or SystemLogLevel.INFO


class TracingMode(enum.StrEnum):
    """TracingConfig.Mode. Active: every invocation gets a trace id (a new, sampled one unless
    the caller sent one); PassThrough: only a caller's trace id is handed on."""

    ACTIVE = "Active"
    PASS_THROUGH = "PassThrough"
