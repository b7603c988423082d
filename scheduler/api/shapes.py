"""The JSON shapes the management API answers with, field names as botocore reads them:
FunctionConfiguration, GetFunction, provisioned-concurrency
configs, FunctionEventInvokeConfig, AliasConfiguration and the account settings."""

from __future__ import annotations

import math
from typing import Any

from ..codezip import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, CodeInfo
from ..config import FunctionConfig
from ..engine.platform_log import runtime_version_arn
from ..engine.scheduler import Scheduler
from ..engine.snapshot import SnapshotState, SnapshotView
from ..engine.status import FunctionStatus, ProvisionedStatus
from ..engine.versions import Alias
from ..events import EventInvokeConfig
from ..logconfig import LogFormat
from ..snapstart import OptimizationStatus
from .catalog import FunctionRecord, Lifecycle, UpdateStatus

# Lambda's default code storage per region (75 GB).
TOTAL_CODE_SIZE = 80_530_636_800


def function_configuration(
    fn: FunctionStatus,
    record: FunctionRecord,
    code: CodeInfo,
    dead_letter: str | None = None,
    qualifier: str | None = None,
) -> dict[str, Any]:
    """``qualifier``: the one the request named. Named ``$LATEST``, Lambda's FunctionArn ends
    with it; unqualified requests get the unqualified ARN, and a version's or an alias's status
    carries its own qualified ARN already."""
    config = fn.config
    out: dict[str, Any] = {
        "FunctionName": fn.name,
        "FunctionArn": f"{fn.arn}:$LATEST" if qualifier == "$LATEST" else fn.arn,
        "Runtime": config.runtime,
        "Role": record.role,
        "Handler": config.handler,
        "CodeSize": code.size,
        "Description": config.description,
        # Whole seconds, as the API counts them (the Python API allows fractions).
        "Timeout": max(1, math.ceil(config.timeout_s)),
        "MemorySize": config.memory_mb,
        "LastModified": record.last_modified,
        "CodeSha256": code.sha256,
        "Version": fn.version,
        "TracingConfig": {"Mode": config.tracing.value},
        "RevisionId": record.revision_id,
        **_states(record, fn.snapshot),
        "PackageType": "Zip",
        "Architectures": list(record.architectures),
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "SnapStart": {
            "ApplyOn": config.snapstart.value,
            "OptimizationStatus": (OptimizationStatus.ON if fn.snapshot is not None else OptimizationStatus.OFF).value,
        },
        "RuntimeVersionConfig": {"RuntimeVersionArn": runtime_version_arn(_region(fn), config.runtime)},
        "LoggingConfig": logging_config(config),
    }
    if config.environment:
        out["Environment"] = {"Variables": dict(config.environment)}
    if dead_letter is not None:
        out["DeadLetterConfig"] = {"TargetArn": dead_letter}
    if config.layers:
        out["Layers"] = [{"Arn": _layer_arn(fn, str(layer))} for layer in config.layers]
    return out


# Lambda's words for a change still being applied (it says "created" for updates too).
_CHANGING = {"Reason": "The function is being created.", "ReasonCode": "Creating"}


def _states(record: FunctionRecord, snapshot: SnapshotView | None = None) -> dict[str, str]:
    """State (with its reason while Pending) and LastUpdateStatus (with its reason while
    InProgress); a new function's answer carries no LastUpdateStatus, as Lambda's does not.
    A version published with SnapStart is Pending until its snapshot is taken, then Active or
    Failed (with the reason)."""
    if snapshot is not None and snapshot.state is not SnapshotState.ACTIVE:
        if snapshot.state is SnapshotState.PENDING:
            return {"State": "Pending", **{f"State{key}": text for key, text in _CHANGING.items()}}
        return {"State": "Failed", "StateReason": snapshot.reason or "", "StateReasonCode": snapshot.reason_code or ""}
    out = {"State": record.lifecycle.value}
    if record.lifecycle is Lifecycle.PENDING:
        out.update({f"State{key}": text for key, text in _CHANGING.items()})
        return out
    out["LastUpdateStatus"] = record.update_status.value
    if record.update_status is UpdateStatus.IN_PROGRESS:
        out.update({f"LastUpdateStatus{key}": text for key, text in _CHANGING.items()})
    return out


# ListFunctions reports a subset of each configuration: Lambda leaves the states out of it
# (GetFunction / GetFunctionConfiguration have them).
_NOT_LISTED = tuple(f"{state}{part}" for state in ("State", "LastUpdateStatus") for part in ("", "Reason", "ReasonCode"))


def listed_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    for key in _NOT_LISTED:
        configuration.pop(key, None)
    return configuration


def logging_config(config: FunctionConfig) -> dict[str, str]:
    """LoggingConfig as Lambda reports it: the levels only with JSON, the log group always."""
    logging = config.logging
    out = {"LogFormat": logging.log_format.value}
    if logging.log_format is LogFormat.JSON:
        assert logging.application_log_level is not None and logging.system_log_level is not None
        out["ApplicationLogLevel"] = logging.application_log_level.value
        out["SystemLogLevel"] = logging.system_log_level.value
    out["LogGroup"] = logging.group(config.name)
    return out


def _region(fn: FunctionStatus) -> str:
    return fn.arn.split(":")[3]


def _layer_arn(fn: FunctionStatus, path: str) -> str:
    # Template layers have no ARN locally; name them by folder so they can be told apart.
    region_account = fn.arn.split(":function:")[0].removeprefix("arn:aws:lambda:")
    return f"arn:aws:lambda:{region_account}:layer:{path.rstrip('/').rsplit('/', 1)[-1]}:1"


def get_function(
    fn: FunctionStatus,
    record: FunctionRecord,
    code: CodeInfo,
    dead_letter: str | None = None,
    qualifier: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Configuration": function_configuration(fn, record, code, dead_letter, qualifier),
        # Lambda hands out a pre-signed S3 URL; locally the code is a folder on this machine.
        "Code": {"RepositoryType": "S3", "Location": f"file://{fn.config.code_dir}"},
    }
    if record.tags:
        out["Tags"] = dict(record.tags)
    if fn.reserved is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved}
    return out


def provisioned_config(provisioned: ProvisionedStatus, last_modified: str, status: str | None = None) -> dict[str, Any]:
    shown = status or provisioned.status
    return {
        "RequestedProvisionedConcurrentExecutions": provisioned.requested,
        "AvailableProvisionedConcurrentExecutions": provisioned.ready,
        "AllocatedProvisionedConcurrentExecutions": provisioned.ready,
        "Status": shown,
        "LastModified": last_modified,
        **({"StatusReason": provisioned.reason} if shown == "FAILED" and provisioned.reason else {}),
    }


def alias_configuration(function_arn: str, alias: Alias, revision_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": f"{function_arn}:{alias.name}",
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": revision_id,
    }
    if alias.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return out


def event_invoke_config(function_arn: str, config: EventInvokeConfig) -> dict[str, Any]:
    """``function_arn``: qualified, as Lambda names the config ($LATEST when unqualified)."""
    return {
        "LastModified": config.last_modified,
        "FunctionArn": function_arn,
        "MaximumRetryAttempts": config.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": config.maximum_event_age_s,
        "DestinationConfig": config.destinations.shape(),
    }


def account_settings(scheduler: Scheduler, total_code_size: int) -> dict[str, Any]:
    settings = scheduler.settings
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": MAX_ZIPPED_BYTES,
            "ConcurrentExecutions": settings.account_concurrency,
            "UnreservedConcurrentExecutions": scheduler.admission.unreserved_capacity,
        },
        "AccountUsage": {"TotalCodeSize": total_code_size, "FunctionCount": len(scheduler.functions)},
    }
