"""Lambda's function-error payloads and the ``[ERROR]`` log record, as the Python runtime
writes them."""

from __future__ import annotations

import json
import traceback
from types import TracebackType

IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
MALFORMED_HANDLER = "Runtime.MalformedHandlerName"
BUILT_IN_CONFLICT = "Runtime.BuiltInModuleConflict"
SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
MARSHAL_ERROR = "Runtime.MarshalError"
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"

# U+00A0 keeps traceback indentation visible in CloudWatch, which strips leading spaces.
_INDENT = "\u00a0"


class Fault(Exception):
    """An error the runtime itself diagnoses (bad handler, marshalling), not the user's."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def error_body(message: str, error_type: str, stack: list[str], request_id: str = "") -> dict[str, object]:
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack}


def user_stack(tb: TracebackType | None, runtime_file: str) -> list[str]:
    """The traceback entries from the first frame that is not the runtime's own, formatted
    from plain (file, line, function, text) tuples as the Lambda runtime does — so without
    the column carets Python 3.11 would add."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for index, (filename, *_rest) in enumerate(frames):
        if filename != runtime_file:
            frames = frames[index:]
            break
    return traceback.format_list(frames)  # type: ignore[arg-type]


def exception_body(exc: BaseException, runtime_file: str, request_id: str = "") -> dict[str, object]:
    return error_body(str(exc), type(exc).__name__, user_stack(exc.__traceback__, runtime_file), request_id)


def fault_body(fault: Fault, request_id: str = "") -> dict[str, object]:
    return error_body(fault.message, fault.error_type, fault.stack, request_id)


def encode_error(body: dict[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def error_log_record(body: dict[str, object]) -> str:
    """``[ERROR] Type: message`` then the traceback, lines joined with CR, one LF at the end."""
    head = "[ERROR]"
    if body.get("errorType"):
        head += f" {body['errorType']}"
    if body.get("errorMessage"):
        head += (":" if body.get("errorType") else "") + f" {body['errorMessage']}"
    lines = [head]
    stack = body.get("stackTrace")
    if isinstance(stack, list):
        lines.append("Traceback (most recent call last):")
        for entry in stack:
            for line in str(entry).splitlines() or [""]:
                stripped = line.lstrip(" ")
                lines.append(_INDENT * (len(line) - len(stripped)) + stripped)
    return "\r".join(lines) + "\n"
