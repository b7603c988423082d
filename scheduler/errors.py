"""The scheduler's error hierarchy, and the one place that maps it to Lambda's service errors.

Function errors (a handler raising, timing out, crashing) are *not* exceptions here: they are
results, returned with ``error_type`` set, exactly as Lambda returns them with status 200.
Exceptions are for service errors — the request never reached a handler — and each one knows
the Lambda error code, HTTP status and JSON body that botocore turns into its modeled exception.
"""

from __future__ import annotations

from typing import Any


class SchedulerError(Exception):
    """Base class: a service error that Lambda would answer without running the function."""

    code = "ServiceException"
    status = 500
    kind = "Service"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Lambda sends; botocore reads ``Type`` and ``message``/``Message``."""
        return {"Type": self.kind, "message": self.message}

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code}


class ConfigError(SchedulerError, ValueError):
    """A setting is out of Lambda's bounds; the message names the field and the bound.
    ``api_message``, when given, is the text Lambda's API answers the same refusal with: an API
    client gets that, word for word, while the Python API and templates name the field."""

    code = "InvalidParameterValueException"
    status = 400
    kind = "User"

    def __init__(self, field: str, message: str, *, api_message: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.api_message = api_message

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "message": self.api_message or self.message}


class UnsupportedRuntime(ConfigError):
    """A python3.N that Lambda does not accept (any more); the message is Lambda's own."""

    def __init__(self, runtime: str) -> None:
        SchedulerError.__init__(
            self,
            f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions.",
        )
        self.field = "runtime"
        self.api_message = None  # the message is Lambda's API text already


class InvalidParameterValue(SchedulerError, ValueError):
    code = "InvalidParameterValueException"
    status = 400
    kind = "User"


class RuntimeUnavailable(InvalidParameterValue):
    """strict_runtime, and no interpreter here runs the function's runtime (engine/runtimes.py)."""

    def __init__(self, runtime: str, message: str) -> None:
        super().__init__(message)
        self.runtime = runtime


class RequestTooLarge(SchedulerError, ValueError):
    """413: Lambda's (unmodeled) RequestEntityTooLargeException for an oversized payload."""

    code = "RequestEntityTooLargeException"
    status = 413
    kind = "User"


class ValidationError(SchedulerError, ValueError):
    """Lambda's unmodeled constraint violation (``ValidationException``)."""

    code = "ValidationException"
    status = 400
    kind = "User"


class FunctionNotFound(SchedulerError, LookupError):
    code = "ResourceNotFoundException"
    status = 404
    kind = "User"

    def __init__(self, arn: str) -> None:
        super().__init__(f"Function not found: {arn}")
        self.arn = arn

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


class ResourceConflict(SchedulerError):
    code = "ResourceConflictException"
    status = 409
    kind = "User"


class Throttled(SchedulerError):
    """429: the invocation was refused at admission, before any environment was touched."""

    code = "TooManyRequestsException"
    status = 429
    kind = "User"

    def __init__(self, reason: str, message: str = "Rate Exceeded.") -> None:
        super().__init__(message)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"Reason": self.reason, "Type": self.kind, "message": self.message}


class SchedulerClosed(SchedulerError):
    """The scheduler is stopping (or never started) and admits no new invocations."""

    code = "ServiceException"
    status = 503

    def __init__(self, message: str = "The scheduler is shutting down.") -> None:
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}  # ServiceException's casing


class SpawnError(SchedulerError):
    """The zygote could not fork an environment (a host limit, not the function's fault)."""

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


class ZygoteError(SchedulerError):
    """503: the fork server is not running (it did not start, or exited during start-up);
    the service cannot start environments until it is back."""

    status = 503

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


# Throttle reasons, with Lambda's spelling.
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
RATE_LIMIT = "FunctionInvocationRateLimitExceeded"
RESERVED_RATE_LIMIT = "ReservedFunctionInvocationRateLimitExceeded"


# --- inside the engine: never a caller's answer on their own -------------------------------
# An environment that breaks its protocol or cannot isolate itself is killed and replaced; the
# invocation that met it gets Lambda's error for a dead environment, not these.


class ProtocolError(Exception):
    """The peer broke the framing or sent a message that makes no sense in its state."""


class IsolationFailed(RuntimeError):
    """A new environment could not apply its isolation to itself (it exits before any user
    code runs)."""


# --- errors of the HTTP API -----------------------------------------------------------------


class InvalidRequestContent(SchedulerError, ValueError):
    """400: the request body (or the client context) is not the JSON Lambda expects."""

    code = "InvalidRequestContentException"
    status = 400
    kind = "User"


class ResourceNotFound(SchedulerError, LookupError):
    """404 for a resource that is not a function, such as an event-invoke config."""

    code = "ResourceNotFoundException"
    status = 404
    kind = "User"

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


class FunctionInOtherRegion(FunctionNotFound):
    """404: an ARN names another region; Lambda answers ResourceNotFoundException "Functions
    from 'eu-west-1' are not reachable in this region ('us-east-1')"."""

    def __init__(self, region: str, local_region: str) -> None:
        SchedulerError.__init__(self, f"Functions from '{region}' are not reachable in this region ('{local_region}')")
        self.arn = ""
        self.region = region


class AccessDenied(SchedulerError, PermissionError):
    """403 (unmodeled AccessDeniedException): e.g. an ARN naming another account's function,
    which no resource-based policy here can let this account use."""

    code = "AccessDeniedException"
    status = 403
    kind = "User"

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


class RequestTimeout(SchedulerError):
    """408: the client stopped sending a request body part-way (no data for too long)."""

    code = "RequestTimeoutException"
    status = 408
    kind = "User"


class ProvisionedConcurrencyConfigNotFound(SchedulerError, LookupError):
    code = "ProvisionedConcurrencyConfigNotFoundException"
    status = 404
    kind = "User"


class PreconditionFailed(SchedulerError):
    """412: the RevisionId given with an update is not the function's current one."""

    code = "PreconditionFailedException"
    status = 412
    kind = "User"


class UnknownOperation(SchedulerError):
    """No Lambda operation lives at this method and path."""

    code = "UnknownOperationException"
    status = 404
    kind = "User"

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class InternalError(SchedulerError):
    """500: an unexpected failure inside the server (its details go to the server's log)."""

    def body(self) -> dict[str, Any]:
        return {"Type": self.kind, "Message": self.message}


# --- refusals before any handler: api/guard.py (browsers), api/auth.py (SigV4) -------------


class BrowserRequestRefused(SchedulerError):
    """403: what a browser page sends (a foreign Host or Origin), refused by api/guard.py."""

    code = "AccessDeniedException"
    status = 403
    kind = "User"


class AuthError(SchedulerError):
    """403: a request without a valid AWS Signature Version 4 (``--auth sigv4``), with the
    codes and wording AWS answers with, so SDKs raise the exception they raise against AWS."""

    status = 403
    kind = "User"


class MissingAuthenticationToken(AuthError):
    code = "MissingAuthenticationTokenException"

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class IncompleteSignature(AuthError):
    """The Authorization header is there but cannot be read as SigV4."""

    code = "IncompleteSignatureException"


class UnrecognizedClient(AuthError):
    code = "UnrecognizedClientException"

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class InvalidSignature(AuthError):
    code = "InvalidSignatureException"

    MISMATCH = (
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details."
    )


class LengthRequired(AuthError):
    """411: a signed request must say its length (its body is read whole to check its hash)."""

    code = "LengthRequiredException"
    status = 411


def constraint_violation(value: object, member: str, constraint: str) -> ValidationError:
    """Lambda's wording for a value outside the API model's bounds (a missing one is ``null``,
    unquoted)."""
    shown = "null" if value is None else f"'{value}'"
    return ValidationError(
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy constraint: {constraint}"
    )
