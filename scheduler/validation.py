"""Lambda's refusals of bad request values, in its own words.

Two kinds, as Lambda answers them:

- a value outside the API model (a pattern, an enum, a length, a number's bounds) is a 400
  ``ValidationException`` "1 validation error detected: Value 'x' at 'member' failed to satisfy
  constraint: ..." (:func:`scheduler.errors.constraint_violation`), the member named in camel
  case with its path (``loggingConfig.logFormat``);
- a value the model allows but the service does not (a runtime no longer supported) is a 400
  ``InvalidParameterValueException`` with the service's sentence.

The numeric bounds are config.py's table (:class:`scheduler.config.Bound`); the patterns and
enum sets below are the ones Lambda prints in these messages.
"""

from __future__ import annotations

import re
from typing import Any

from .config import MAX_FUNCTION_NAME, MAX_HANDLER
from .errors import InvalidParameterValue, ValidationError, constraint_violation
from .logconfig import (
    LOG_GROUP,
    LOG_GROUP_PATTERN,
    MAX_LOG_GROUP,
    ApplicationLogLevel,
    LogFormat,
    LoggingConfig,
    SystemLogLevel,
    TracingMode,
)
from .snapstart import SnapStartApplyOn

# The runtimes Lambda accepts for a new or updated function, in the order its refusal lists them.
SUPPORTED_RUNTIMES = (
    "nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, "
    "python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, nodejs16.x, "
    "dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2"
)
_SUPPORTED = frozenset(SUPPORTED_RUNTIMES.split(", "))
# Runtimes deprecated recently enough that Lambda still names them in a sentence of their own.
_RECENTLY_DEPRECATED = frozenset(
    {"python3.7", "java8", "go1.x", "provided", "ruby2.7", "nodejs14.x", "nodejs12.x", "dotnetcore3.1"}
)
ARCHITECTURES = ("x86_64", "arm64")

# What CreateFunction accepts as FunctionName (a name, or a full or partial ARN), as Lambda
# prints it, and the lengths: 64 for a name, 140 for an ARN.
CREATE_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_CREATE_NAME = re.compile(CREATE_NAME_PATTERN)  # Lambda's patterns read the same in Python's re
# What every other operation accepts as a function name (a qualifier may follow), as printed.
LOOKUP_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
MAX_NAME_ARN = 140
MAX_DESCRIPTION = 256
HANDLER_PATTERN = r"[^\s]+"
_HANDLER = re.compile(HANDLER_PATTERN)


def _enum_text(values: Any) -> str:
    return "Member must satisfy enum value set: [" + ", ".join(v.value for v in values) + "]"


def runtime(value: str) -> str:
    """A Runtime Lambda accepts today (InvalidParameterValueException otherwise)."""
    if value in _RECENTLY_DEPRECATED:
        raise InvalidParameterValue(
            f"The runtime parameter of {value} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions."
        )
    if value not in _SUPPORTED:
        raise InvalidParameterValue(
            f"Value {value} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{SUPPORTED_RUNTIMES}] or be a valid ARN"
        )
    return value


def function_name(value: str) -> str:
    """CreateFunction's FunctionName: the pattern first, then the length (a name or an ARN)."""
    if not _CREATE_NAME.fullmatch(value):
        raise constraint_violation(
            value, "functionName", f"Member must satisfy regular expression pattern: {CREATE_NAME_PATTERN}"
        )
    limit = MAX_NAME_ARN if ":" in value else MAX_FUNCTION_NAME
    if len(value) > limit:
        raise constraint_violation(value, "functionName", f"Member must have length less than or equal to {limit}")
    return value


ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
_ROLE = re.compile(ROLE_PATTERN)


def role(value: str) -> str:
    """An execution role's ARN (stored and reported: there is no IAM here to assume it in)."""
    if not _ROLE.fullmatch(value):
        raise constraint_violation(value, "role", f"Member must satisfy regular expression pattern: {ROLE_PATTERN}")
    return value


def architectures(value: Any) -> list[str]:
    """Architectures: a list of exactly one of Lambda's two."""
    shown = "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else value
    if isinstance(value, list) and len(value) > 1:
        raise constraint_violation(shown, "architectures", "Member must have length less than or equal to 1")
    if not (isinstance(value, list) and len(value) == 1 and value[0] in ARCHITECTURES):
        raise constraint_violation(
            shown,
            "architectures",
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], "
            "Member must not be null]",
        )
    return list(value)


def malformed_name(value: str) -> ValidationError:
    """The refusal of a function name that no operation accepts (in a path or an ARN)."""
    return constraint_violation(
        value, "functionName", f"Member must satisfy regular expression pattern: {LOOKUP_NAME_PATTERN}"
    )


def handler(value: str) -> str:
    if len(value) > MAX_HANDLER:
        raise constraint_violation(value, "handler", f"Member must have length less than or equal to {MAX_HANDLER}")
    if not _HANDLER.fullmatch(value):
        raise constraint_violation(value, "handler", f"Member must satisfy regular expression pattern: {HANDLER_PATTERN}")
    return value


def description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION:
        raise constraint_violation(
            value, "description", f"Member must have length less than or equal to {MAX_DESCRIPTION}"
        )
    return value


def _member_enum(value: Any, member: str, kind: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise constraint_violation(value, member, _enum_text(kind)) from None


def snapstart(body: dict[str, Any]) -> SnapStartApplyOn:
    """SnapStart.ApplyOn from a request or a template (absent: None, as Lambda reads it)."""
    if body.get("ApplyOn") is None:
        return SnapStartApplyOn.NONE
    return _member_enum(body["ApplyOn"], "snapStart.applyOn", SnapStartApplyOn)  # type: ignore[no-any-return]


def logging_config(body: dict[str, Any], current: LoggingConfig | None = None) -> LoggingConfig:
    """LoggingConfig from a request, over the function's current one (UpdateFunctionConfiguration
    changes only what it names). Choosing Text drops the levels, as Lambda does; giving a level
    with Text is refused (config.LoggingConfig)."""
    base = current or LoggingConfig()
    log_format = base.log_format
    if "LogFormat" in body:
        log_format = _member_enum(body["LogFormat"], "loggingConfig.logFormat", LogFormat)
    app_level = base.application_log_level if log_format is LogFormat.JSON else None
    system_level = base.system_log_level if log_format is LogFormat.JSON else None
    if body.get("ApplicationLogLevel") is not None:
        app_level = _member_enum(body["ApplicationLogLevel"], "loggingConfig.applicationLogLevel", ApplicationLogLevel)
    if body.get("SystemLogLevel") is not None:
        system_level = _member_enum(body["SystemLogLevel"], "loggingConfig.systemLogLevel", SystemLogLevel)
    log_group = base.log_group
    if body.get("LogGroup") is not None:
        log_group = _log_group(body["LogGroup"])
    return LoggingConfig(
        log_format=log_format, application_log_level=app_level, system_log_level=system_level, log_group=log_group
    )


def _log_group(value: Any) -> str:
    if not isinstance(value, str) or not LOG_GROUP.fullmatch(value):
        raise constraint_violation(
            value, "loggingConfig.logGroup", f"Member must satisfy regular expression pattern: {LOG_GROUP_PATTERN}"
        )
    if len(value) > MAX_LOG_GROUP:
        raise constraint_violation(
            value, "loggingConfig.logGroup", f"Member must have length less than or equal to {MAX_LOG_GROUP}"
        )
    return value


def tracing_mode(body: dict[str, Any]) -> TracingMode:
    return _member_enum(body.get("Mode"), "tracingConfig.mode", TracingMode)  # type: ignore[no-any-return]
