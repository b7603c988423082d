"""Refusals answered with Lambda's status, code and message word for word, and the function
states boto3's waiters poll (Pending then Active, InProgress then Successful)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scheduler.validation import CREATE_NAME_PATTERN, LOOKUP_NAME_PATTERN, SUPPORTED_RUNTIMES

from .conftest import MakeServer, aws
from .test_api_functions import HANDLER_V1, HANDLER_V2, create_args, make_zip


async def test_refusals_in_lambdas_words(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client(validate=False)
    code = make_zip({"app.py": HANDLER_V1})

    async def refused(status: int, **args: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as exc:
            await aws(client.create_function, **{**create_args("bad", code), **args})
        error = exc.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == status
        assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == error["Error"]["Code"]
        return error["Error"]["Code"], error["Error"]["Message"]

    assert await refused(400, Runtime="python2.7") == (
        "InvalidParameterValueException",
        (
            f"Value python2.7 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{SUPPORTED_RUNTIMES}] or be a valid ARN"
        ),
    )
    assert await refused(400, Runtime="python3.7") == (
        "InvalidParameterValueException",
        (
            "The runtime parameter of python3.7 is no longer supported for creating or updating AWS Lambda functions. "
            "We recommend you use a supported runtime while creating or updating functions."
        ),
    )
    assert await refused(400, FunctionName="f" * 65) == (
        "ValidationException",
        (
            f"1 validation error detected: Value '{'f' * 65}' at 'functionName' failed to satisfy constraint: "
            "Member must have length less than or equal to 64"
        ),
    )
    assert await refused(400, FunctionName="no/slash") == (
        "ValidationException",
        (
            "1 validation error detected: Value 'no/slash' at 'functionName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {CREATE_NAME_PATTERN}"
        ),
    )
    assert await refused(400, Handler="app handler") == (
        "ValidationException",
        (
            "1 validation error detected: Value 'app handler' at 'handler' failed to satisfy constraint: "
            r"Member must satisfy regular expression pattern: [^\s]+"
        ),
    )
    assert await refused(400, MemorySize=10_241) == (
        "ValidationException",
        (
            "1 validation error detected: Value '10241' at 'memorySize' failed to satisfy constraint: "
            "Member must have value less than or equal to 10240"
        ),
    )
    assert await refused(400, EphemeralStorage={"Size": 100}) == (
        "ValidationException",
        (
            "1 validation error detected: Value '100' at 'ephemeralStorage.size' failed to satisfy constraint: "
            "Member must have value greater than or equal to 512"
        ),
    )
    assert await refused(400, TracingConfig={"Mode": "Sometimes"}) == (
        "ValidationException",
        (
            "1 validation error detected: Value 'Sometimes' at 'tracingConfig.mode' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Active, PassThrough]"
        ),
    )
    assert await refused(400, Role="admin") == (
        "ValidationException",
        (
            "1 validation error detected: Value 'admin' at 'role' failed to satisfy constraint: Member must satisfy "
            r"regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
        ),
    )
    assert await refused(400, Architectures=["X86_64"]) == (
        "ValidationException",
        (
            "1 validation error detected: Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member must "
            "satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]"
        ),
    )
    assert await refused(400, Architectures=["x86_64", "arm64"]) == (
        "ValidationException",
        (
            "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: "
            "Member must have length less than or equal to 1"
        ),
    )
    assert await refused(400, Code=None) == (
        "ValidationException",
        "1 validation error detected: Value null at 'code' failed to satisfy constraint: Member must not be null",
    )
    variables = {"BIG": "x" * 4090}  # 4,090 bytes of value, over 4 KB as {"BIG":"x…"}
    assert await refused(400, Environment={"Variables": variables}) == (
        "InvalidParameterValueException",
        (
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {json.dumps(variables, separators=(',', ':'))}"
        ),
    )
    assert not served.scheduler.functions
    # Just under the limit as Lambda measures it (the JSON punctuation counts) is accepted.
    fits = {"BIG": "x" * (4096 - len('{"BIG":""}'))}
    created = await aws(client.create_function, **create_args("fits", code, Environment={"Variables": fits}))
    assert created["Environment"] == {"Variables": fits}


async def test_states_for_boto3_waiters(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    created = await aws(client.create_function, **create_args("stately", make_zip({"app.py": HANDLER_V1})))
    assert (created["State"], created["StateReason"], created["StateReasonCode"]) == (
        "Pending",
        "The function is being created.",
        "Creating",
    )
    assert "LastUpdateStatus" not in created
    await aws(client.get_waiter("function_active_v2").wait, FunctionName="stately", WaiterConfig={"Delay": 1})
    updated = await aws(client.update_function_code, FunctionName="stately", ZipFile=make_zip({"app.py": HANDLER_V2}))
    assert (updated["State"], updated["LastUpdateStatus"], updated["LastUpdateStatusReasonCode"]) == (
        "Active",
        "InProgress",
        "Creating",
    )
    await aws(client.get_waiter("function_updated_v2").wait, FunctionName="stately", WaiterConfig={"Delay": 1})
    got = await aws(client.get_function, FunctionName="stately")
    configuration = got["Configuration"]
    assert (configuration["State"], configuration["LastUpdateStatus"]) == ("Active", "Successful")
    assert "LastUpdateStatusReason" not in configuration
    assert configuration["RuntimeVersionConfig"]["RuntimeVersionArn"].startswith("arn:aws:lambda:us-east-1::runtime:")
    assert json.loads((await aws(client.invoke, FunctionName="stately"))["Payload"]) == {"version": 2}
    (listed,) = (await aws(client.list_functions))["Functions"]
    assert "State" not in listed and "LastUpdateStatus" not in listed  # ListFunctions leaves them out
    arn = "arn:aws:lambda:us-east-1:123456789012:function:stately"
    assert configuration["FunctionArn"] == arn  # unqualified when asked without a qualifier
    latest = await aws(client.get_function_configuration, FunctionName="stately", Qualifier="$LATEST")
    assert latest["FunctionArn"] == f"{arn}:$LATEST"
    by_name = await aws(client.get_function, FunctionName="stately:$LATEST")
    assert by_name["Configuration"]["FunctionArn"] == f"{arn}:$LATEST"


async def test_lookups_refuse_malformed_names(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client(validate=False)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        await aws(client.get_function, FunctionName="a" * 65)  # longer than any name: not found, not malformed
    assert missing.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{'a' * 65}"
    )
    for call in (client.get_function, client.get_function_configuration, client.invoke):
        with pytest.raises(ClientError) as exc:
            await aws(call, FunctionName="no!such")
        assert exc.value.response["Error"] == {
            "Code": "ValidationException",
            "Message": "1 validation error detected: Value 'no!such' at 'functionName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {LOOKUP_NAME_PATTERN}",
        }


async def test_concurrency_and_event_config_refusals(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    await aws(client.create_function, **create_args("plain", make_zip({"app.py": HANDLER_V1})))
    arn = "arn:aws:lambda:us-east-1:123456789012:function:plain"
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException) as provisioned:
        await aws(client.get_provisioned_concurrency_config, FunctionName="plain", Qualifier="$LATEST")
    assert provisioned.value.response["Error"]["Message"] == "No Provisioned Concurrency Config found for this function"
    with pytest.raises(client.exceptions.ResourceNotFoundException) as event_config:
        await aws(client.get_function_event_invoke_config, FunctionName="plain")
    assert event_config.value.response["Error"]["Message"] == (
        f"The function {arn}:$LATEST doesn't have an EventInvokeConfig"
    )
    with pytest.raises(client.exceptions.InvalidParameterValueException) as empty:
        await aws(client.put_function_event_invoke_config, FunctionName="plain")
    assert empty.value.response["Error"]["Message"] == (
        "You must specify at least one of error handling or destination setting."
    )
