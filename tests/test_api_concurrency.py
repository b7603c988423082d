"""Reserved and provisioned concurrency over HTTP with boto3."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from .conftest import MakeServer, aws, fn, wait_provisioned


async def test_reserved_concurrency_put_get_delete(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"), account_concurrency=200)
    client = served.client()
    assert "ReservedConcurrentExecutions" not in await aws(client.get_function_concurrency, FunctionName="echo")
    put = await aws(client.put_function_concurrency, FunctionName="echo", ReservedConcurrentExecutions=5)
    assert put["ReservedConcurrentExecutions"] == 5
    got = await aws(client.get_function_concurrency, FunctionName="echo")
    assert got["ReservedConcurrentExecutions"] == 5
    assert served.scheduler.functions["echo"].reserved == 5
    settings = await aws(client.get_account_settings)
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 195
    await aws(client.put_function_concurrency, FunctionName="echo", ReservedConcurrentExecutions=0)
    with pytest.raises(client.exceptions.TooManyRequestsException) as throttled:
        await aws(client.invoke, FunctionName="echo", Payload=b"{}")
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    deleted = await aws(client.delete_function_concurrency, FunctionName="echo")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in await aws(client.get_function_concurrency, FunctionName="echo")
    assert (await aws(client.invoke, FunctionName="echo", Payload=b"{}"))["StatusCode"] == 200


async def test_reserved_concurrency_limits(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"), account_concurrency=200)
    client = served.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="below its minimum value of \\[100\\]"):
        await aws(client.put_function_concurrency, FunctionName="echo", ReservedConcurrentExecutions=101)
    unchecked = served.client(validate=False)
    with pytest.raises(ClientError) as negative:
        await aws(unchecked.put_function_concurrency, FunctionName="echo", ReservedConcurrentExecutions=-1)
    assert negative.value.response["Error"]["Code"] == "ValidationException"
    assert "reservedConcurrentExecutions" in negative.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.put_function_concurrency, FunctionName="nope", ReservedConcurrentExecutions=1)
    assert served.scheduler.functions["echo"].reserved is None


async def test_provisioned_concurrency_on_latest(make_server: MakeServer) -> None:
    served = await make_server(fn("env", "basic.environ"))
    client = served.client()
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    put = await aws(
        client.put_provisioned_concurrency_config,
        FunctionName="env",
        Qualifier="$LATEST",
        ProvisionedConcurrentExecutions=2,
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS" and put["RequestedProvisionedConcurrentExecutions"] == 2
    await wait_provisioned(served.scheduler, "env")
    ready = await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    assert ready["Status"] == "READY"
    assert ready["AllocatedProvisionedConcurrentExecutions"] == ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert ready["LastModified"] == put["LastModified"]
    listed = await aws(client.list_provisioned_concurrency_configs, FunctionName="env")
    [item] = listed["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"].endswith(":function:env:$LATEST") and item["Status"] == "READY"
    # An invocation lands on a pre-initialised environment.
    environ = json.loads((await aws(client.invoke, FunctionName="env"))["Payload"])["environ"]
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    deleted = await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert served.scheduler.functions["env"].config.provisioned_concurrency == 0
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    assert (await aws(client.list_provisioned_concurrency_configs, FunctionName="env"))[
        "ProvisionedConcurrencyConfigs"
    ] == []


async def test_provisioned_concurrency_errors(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo", reserved_concurrency=1))
    client = served.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="must not exceed reserved_concurrency"):
        await aws(
            client.put_provisioned_concurrency_config,
            FunctionName="echo",
            Qualifier="$LATEST",
            ProvisionedConcurrentExecutions=2,
        )
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:echo:live"):
        await aws(
            client.put_provisioned_concurrency_config,
            FunctionName="echo",
            Qualifier="live",
            ProvisionedConcurrentExecutions=1,
        )
    unchecked = served.client(validate=False)
    with pytest.raises(ClientError) as zero:
        await aws(
            unchecked.put_provisioned_concurrency_config,
            FunctionName="echo",
            Qualifier="$LATEST",
            ProvisionedConcurrentExecutions=0,
        )
    assert zero.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="Qualifier"):
        await aws(unchecked.get_provisioned_concurrency_config, FunctionName="echo")
    assert served.scheduler.functions["echo"].config.provisioned_concurrency == 0
