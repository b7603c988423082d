"""Reading a request: its body under a size cap, its JSON, and its parameters, with Lambda's
errors for each way they can be wrong.

Route handlers call these first; nothing past them sees unchecked input. A body is never read
beyond its operation's limit: a declared length over the limit is refused before reading, and a
chunked body is counted as it arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from .. import arn, validation
from ..config import Bound
from ..engine.status import FunctionStatus
from ..errors import (
    InvalidParameterValue,
    InvalidRequestContent,
    RequestTooLarge,
    SchedulerError,
    constraint_violation,
)
from .keys import SCHEDULER

# After a chunked body passes its limit, read on only this far to report its size.
_COUNT_CAP = 64 * 1024 * 1024
_decode = msgspec.json.decode
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")


async def read_body(request: web.Request, limit: int, too_large: Callable[[int], SchedulerError]) -> bytes:
    """The whole body, or ``too_large(size)`` raised once it is known to pass ``limit``."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise too_large(length)
        return await request.read()
    chunks = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(await _count_rest(request, size))
        chunks.append(chunk)
    return b"".join(chunks)


async def _count_rest(request: web.Request, size: int) -> int:
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > _COUNT_CAP:
            break
    return size


def parse_error(exc: Exception | str) -> InvalidRequestContent:
    return InvalidRequestContent(f"Could not parse request body into json: Could not parse payload into json: {exc}")


# msgspec (like json) recurses once per nesting level under Python's recursion limit, so JSON
# nested about 950 levels deep or more cannot be parsed here: that is a bad request, not a 500.
TOO_DEEP = "JSON is nested too deeply (maximum recursion depth exceeded)"


def decode_json(body: bytes | bytearray | memoryview) -> Any:
    """The parsed JSON, or Lambda's InvalidRequestContentException."""
    try:
        return _decode(body)
    except msgspec.DecodeError as exc:
        raise parse_error(exc) from None
    except RecursionError:
        raise parse_error(TOO_DEEP) from None


def check_json(body: bytes) -> None:
    """An invoke payload must be JSON (an empty body counts as ``{}``, as on Lambda)."""
    if body:
        decode_json(body)


async def read_json_object(request: web.Request, limit: int, operation: str) -> dict[str, Any]:
    """The JSON object body of a management operation (empty: ``{}``)."""
    body = await read_body(request, limit, lambda size: request_too_large(limit, operation))
    return json_object(body)


def has_content(body: bytes | bytearray | memoryview) -> bool:
    """Anything but blanks (an empty management body counts as ``{}``)."""
    return _NOT_BLANK.search(body) is not None  # no copy, unlike body.strip() on a 64 MB body


def json_object(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """A management body's JSON object; an empty (or all-blank) body is ``{}``."""
    if not has_content(body):
        return {}
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidRequestContent("Could not parse request body into json: expected a JSON object")
    return data


def request_too_large(limit: int, operation: str) -> SchedulerError:
    return RequestTooLarge(f"Request must be smaller than {limit} bytes for the {operation} operation")


# --- the function a path names ----------------------------------------------------------------


def function(request: web.Request) -> FunctionStatus:
    """The function named in the path (a name, ARN or partial ARN) and ``?Qualifier=``."""
    return request.app[SCHEDULER].describe(
        request.match_info["name"], request.query.get("Qualifier"), action=_action(request)
    )


def describe_unqualified(request: web.Request) -> FunctionStatus:
    """``$LATEST`` of the function named in the path, for operations on the function as a
    whole (publishing, listing versions, aliases); a qualifier in the name must still exist."""
    scheduler = request.app[SCHEDULER]
    return scheduler.resolve(request.match_info["name"], None, action=_action(request)).status()


# IAM actions whose name is not the route handler's name in CamelCase.
_ACTIONS = {
    "invoke": "InvokeFunction",
    "put_provisioned_concurrency": "PutProvisionedConcurrencyConfig",
    "get_provisioned_concurrency": "GetProvisionedConcurrencyConfig",
    "delete_provisioned_concurrency": "DeleteProvisionedConcurrencyConfig",
    "put_event_invoke_config": "PutFunctionEventInvokeConfig",
    "update_event_invoke_config": "UpdateFunctionEventInvokeConfig",
    "get_event_invoke_config": "GetFunctionEventInvokeConfig",
    "delete_event_invoke_config": "DeleteFunctionEventInvokeConfig",
    "list_event_invoke_configs": "ListFunctionEventInvokeConfigs",
}


def _action(request: web.Request) -> str:
    """The IAM action of the request's operation, as an AccessDeniedException names it."""
    handler = getattr(request.match_info.route.handler, "__name__", "invoke")
    return "lambda:" + _ACTIONS.get(handler, "".join(part.capitalize() for part in handler.split("_")))


def qualifier(request: web.Request) -> str | None:
    return arn.parse_function_name(request.match_info["name"], request.query.get("Qualifier"))[1]


def function_name(request: web.Request, value: Any) -> str:
    """A FunctionName given in a body (CreateFunction): a name or an unqualified ARN of this
    region and account."""
    if not isinstance(value, str) or not value:
        raise constraint_violation(None, "functionName", "Member must not be null")
    ref = arn.parse(validation.function_name(value))
    settings = request.app[SCHEDULER].settings
    arn.check_reachable(ref, settings.region, settings.account_id, "lambda:CreateFunction")
    if ref.qualifier is not None:
        raise InvalidParameterValue(f"A function name cannot have a qualifier here: {value}")
    return ref.name


# --- typed fields, with Lambda's validation messages ------------------------------------------


def _member(key: str) -> str:
    return key[0].lower() + key[1:]


def integer(body: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    """``body[key]`` as an int within bounds; None when absent."""
    value = body.get(key)
    if value is None:
        return None
    return check_integer(value, _member(key), low, high)


def bounded(body: dict[str, Any], key: str, bound: Bound) -> int | None:
    """``body[key]`` within one of config.py's bounds, named as Lambda names it; None when absent."""
    value = body.get(key)
    return None if value is None else check_integer(value, bound.member, bound.low, bound.high)


def check_integer(value: Any, member: str, low: int, high: int | None = None) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise constraint_violation(value, member, "Member must be a whole number")
    if value < low:
        raise constraint_violation(value, member, f"Member must have value greater than or equal to {low}")
    if high is not None and value > high:
        raise constraint_violation(value, member, f"Member must have value less than or equal to {high}")
    return value


def string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise constraint_violation(value, _member(key), "Member must be a string")
    return value


def mapping(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise constraint_violation(value, _member(key), "Member must be a structure")
    return value
