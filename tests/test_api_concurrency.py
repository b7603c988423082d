"""Reserved and provisioned concurrency over HTTP with boto3."""

from __future__ import annotations

import asyncio
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


async def test_provisioned_concurrency_on_a_version(make_server: MakeServer) -> None:
    served = await make_server(fn("env", "basic.environ"))
    client = served.client()
    assert (await aws(client.publish_version, FunctionName="env"))["Version"] == "1"
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    put = await aws(
        client.put_provisioned_concurrency_config,
        FunctionName="env",
        Qualifier="1",
        ProvisionedConcurrentExecutions=2,
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS" and put["RequestedProvisionedConcurrentExecutions"] == 2
    await asyncio.wait_for(asyncio.shield(served.scheduler.describe("env", "1").provisioned_settled), 30)
    ready = await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    assert ready["Status"] == "READY"
    assert ready["AllocatedProvisionedConcurrentExecutions"] == ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert ready["LastModified"] == put["LastModified"]
    listed = await aws(client.list_provisioned_concurrency_configs, FunctionName="env")
    [item] = listed["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"].endswith(":function:env:1") and item["Status"] == "READY"
    # An invocation of the version lands on a pre-initialised environment.
    environ = json.loads((await aws(client.invoke, FunctionName="env", Qualifier="1"))["Payload"])["environ"]
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    deleted = await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert served.scheduler.describe("env", "1").provisioned.requested == 0
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    assert (await aws(client.list_provisioned_concurrency_configs, FunctionName="env"))[
        "ProvisionedConcurrencyConfigs"
    ] == []


async def test_provisioned_concurrency_of_latest_from_a_template(make_server: MakeServer) -> None:
    """Set without an alias (a template's or the Python API's), $LATEST's is shown and removed
    through the API, though Lambda would refuse to set it there."""
    served = await make_server(fn("env", "basic.environ", provisioned_concurrency=1))
    client = served.client()
    await wait_provisioned(served.scheduler, "env")
    got = await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    assert got["Status"] == "READY" and got["RequestedProvisionedConcurrentExecutions"] == 1
    [item] = (await aws(client.list_provisioned_concurrency_configs, FunctionName="env"))["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"].endswith(":function:env:$LATEST")
    await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="$LATEST")
    assert served.scheduler.functions["env"].config.provisioned_concurrency == 0


async def test_provisioned_concurrency_errors(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo", reserved_concurrency=1))
    client = served.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="unpublished function versions"):
        await aws(
            client.put_provisioned_concurrency_config,
            FunctionName="echo",
            Qualifier="$LATEST",
            ProvisionedConcurrentExecutions=1,
        )
    await aws(client.publish_version, FunctionName="echo")
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="should not be greater than"):
        await aws(
            client.put_provisioned_concurrency_config,
            FunctionName="echo",
            Qualifier="1",
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
            Qualifier="1",
            ProvisionedConcurrentExecutions=0,
        )
    assert zero.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="Qualifier"):
        await aws(unchecked.get_provisioned_concurrency_config, FunctionName="echo")
    assert served.scheduler.describe("echo", "1").provisioned.requested == 0
