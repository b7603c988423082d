"""Where records of finished Event invocations go: ``DestinationConfig`` (OnSuccess /
OnFailure) and a function's dead-letter queue (``DeadLetterConfig.TargetArn``).

    success ───────────────► OnSuccess  ─┐  invocation record (Lambda's shape, below)
    retries exhausted / too old ► OnFailure ─┤      Lambda function here ─► an Event invocation of it
                           └► dead-letter queue ─┘      SQS · SNS · EventBridge · S3 ─► a local sink:
                              (the event's payload,      <data dir>/destinations/<ARN, sanitised>.jsonl
                               RequestID / ErrorCode / ErrorMessage attributes)

Services other than Lambda do not exist locally, so what would be sent to them is appended,
one JSON object a line, to a file per ARN: nothing is dropped in silence.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterValue


class DestinationKind(enum.StrEnum):
    """A destination's service, from its ARN (``arn:aws:<service>:...``); SAM's ``Type``."""

    LAMBDA = "Lambda"
    SQS = "SQS"
    SNS = "SNS"
    EVENTBRIDGE = "EventBridge"
    S3 = "S3"


_SERVICES = {
    "lambda": DestinationKind.LAMBDA,
    "sqs": DestinationKind.SQS,
    "sns": DestinationKind.SNS,
    "events": DestinationKind.EVENTBRIDGE,
    "s3": DestinationKind.S3,
}
_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:([a-z0-9-]+):[^\s]*$")


def kind_of(arn: str, member: str = "Destination") -> DestinationKind:
    """The service of a destination ARN; anything else is refused as Lambda refuses it."""
    found = _ARN.match(arn) if isinstance(arn, str) else None
    kind = _SERVICES.get(found.group(1)) if found else None
    if kind is None:
        raise InvalidParameterValue(
            f"The destination ARN {arn} is invalid for {member}: expected a Lambda function, SQS queue, SNS topic, "
            "EventBridge event bus or S3 bucket ARN."
        )
    return kind


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    """ARNs records are sent to; None: no destination for that outcome."""

    on_success: str | None = None
    on_failure: str | None = None

    def __post_init__(self) -> None:
        if self.on_success is not None and kind_of(self.on_success, "OnSuccess") is DestinationKind.S3:
            raise InvalidParameterValue("S3 buckets are supported only for on-failure destinations.")
        if self.on_failure is not None:
            kind_of(self.on_failure, "OnFailure")

    def shape(self) -> dict[str, dict[str, str]]:
        """As FunctionEventInvokeConfig.DestinationConfig."""

        def one(arn: str | None) -> dict[str, str]:
            return {} if arn is None else {"Destination": arn}

        return {"OnSuccess": one(self.on_success), "OnFailure": one(self.on_failure)}


def dead_letter_target(arn: str) -> str:
    """A DeadLetterConfig.TargetArn: an SQS queue or SNS topic."""
    if kind_of(arn, "DeadLetterConfig.TargetArn") not in (DestinationKind.SQS, DestinationKind.SNS):
        raise InvalidParameterValue("The dead-letter queue target must be an Amazon SQS queue or Amazon SNS topic ARN.")
    return arn


def timestamp(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as Lambda writes the record's timestamp."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json(data: bytes | None) -> Any:
    """A payload as JSON; one that is not JSON (or empty) as its text."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    response: bytes | None,
    function_error: bool,
    now: float,
    executed_version: str = "$LATEST",
) -> dict[str, Any]:
    """Lambda's invocation record. ``responseContext`` and ``responsePayload`` are there when
    the function ran at least once (the last attempt's); ``functionError`` only on an error."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": timestamp(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json(request_payload),
    }
    if invoke_count > 0:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": executed_version}
        if function_error:
            context["functionError"] = "Unhandled"
        record["responseContext"] = context
        record["responsePayload"] = _json(response)
    return record


def dead_letter_message(request_id: str, payload: bytes, error_code: int, error_message: str) -> dict[str, Any]:
    """What Lambda sends a dead-letter queue: the event itself, with three attributes."""
    return {
        "body": payload.decode(errors="replace"),
        "attributes": {
            "RequestID": request_id,
            "ErrorCode": error_code,
            "ErrorMessage": error_message.encode()[:1024].decode(errors="ignore"),
        },
    }


def sink_name(arn: str) -> str:
    """A file name for an ARN: what a path cannot hold becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", arn) + ".jsonl"


class LocalSinks:
    """A JSON-lines file per destination ARN, in ``<root>/destinations/`` (made 0700)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "destinations"

    def path(self, arn: str) -> Path:
        return self.folder / sink_name(arn)

    def write(self, arn: str, message: dict[str, Any]) -> Path:
        """Append one message. A line is one write to a file opened O_APPEND, so two lines never
        interleave; lines are small, so this stays on the event loop."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        path = self.path(arn)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return path
