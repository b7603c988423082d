"""The JSON shapes the management API answers with, field names as botocore reads them:
FunctionConfiguration, GetFunction, provisioned-concurrency
configs, FunctionEventInvokeConfig and the account settings."""

from __future__ import annotations

import math
from typing import Any

from ..codezip import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, CodeInfo
from ..events import EventInvokeConfig
from ..scheduler import FunctionState, Scheduler
from .catalog import FunctionRecord

# Lambda's default code storage per region (75 GB).
TOTAL_CODE_SIZE = 80_530_636_800


def function_configuration(
    fn: FunctionState, record: FunctionRecord, code: CodeInfo, dead_letter: str | None = None
) -> dict[str, Any]:
    config = fn.config
    out: dict[str, Any] = {
        "FunctionName": fn.name,
        "FunctionArn": fn.arn,
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
        "Version": "$LATEST",
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": record.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": list(record.architectures),
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fn.name}"},
    }
    if config.environment:
        out["Environment"] = {"Variables": dict(config.environment)}
    if dead_letter is not None:
        out["DeadLetterConfig"] = {"TargetArn": dead_letter}
    if config.layers:
        out["Layers"] = [{"Arn": _layer_arn(fn, str(layer))} for layer in config.layers]
    return out


def _layer_arn(fn: FunctionState, path: str) -> str:
    # Template layers have no ARN locally; name them by folder so they can be told apart.
    region_account = fn.arn.split(":function:")[0].removeprefix("arn:aws:lambda:")
    return f"arn:aws:lambda:{region_account}:layer:{path.rstrip('/').rsplit('/', 1)[-1]}:1"


def get_function(
    fn: FunctionState, record: FunctionRecord, code: CodeInfo, dead_letter: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Configuration": function_configuration(fn, record, code, dead_letter),
        # Lambda hands out a pre-signed S3 URL; locally the code is a folder on this machine.
        "Code": {"RepositoryType": "S3", "Location": f"file://{fn.config.code_dir}"},
    }
    if record.tags:
        out["Tags"] = dict(record.tags)
    if fn.reserved is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": fn.reserved}
    return out


def provisioned_status(fn: FunctionState) -> tuple[int, int, str]:
    """(requested, ready, status) for the function's provisioned concurrency."""
    requested = fn.config.provisioned_concurrency
    pool = fn.pool
    ready = min(pool.provisioned_alive, requested)
    if ready >= requested and pool.provisioning == 0:
        status = "READY"
    elif pool.provision_error is not None:
        status = "FAILED"
    else:
        status = "IN_PROGRESS"
    return requested, ready, status


def provisioned_config(fn: FunctionState, record: FunctionRecord, status: str | None = None) -> dict[str, Any]:
    requested, ready, current = provisioned_status(fn)
    return {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": ready,
        "AllocatedProvisionedConcurrentExecutions": ready,
        "Status": status or current,
        "LastModified": record.provisioned_modified or record.last_modified,
        **({"StatusReason": fn.pool.provision_error} if (status or current) == "FAILED" and fn.pool.provision_error else {}),
    }


def event_invoke_config(fn: FunctionState, config: EventInvokeConfig) -> dict[str, Any]:
    return {
        "LastModified": config.last_modified,
        "FunctionArn": f"{fn.arn}:$LATEST",
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
