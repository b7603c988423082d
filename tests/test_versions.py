"""Versions and aliases over HTTP with boto3 and the AWS CLI: publishing (and its
preconditions), listing, qualified invocations on their own environments, deleting a version,
aliases with weighted routing, provisioned concurrency and event-invoke configs per qualifier."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from scheduler.api.keys import DISPATCHER, EVENT_QUEUE
from scheduler.config import ServerConfig
from scheduler.engine.versions import Alias
from scheduler.template import load_template

from .conftest import FAST_EVENTS, MakeScheduler, MakeServer, aws, fn, until
from .procs import wait_gone, zygote_family
from .serving import Server
from .test_api_functions import create_args, make_zip, revisions, sha256_b64

HANDLER = """
import os
CODE = {code!r}
def handler(event, context):
    return {{
        "code": CODE,
        "pid": os.getpid(),
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "env_version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "log_stream": context.log_stream_name,
    }}
"""
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


def code(tag: str) -> bytes:
    return make_zip({"app.py": HANDLER.format(code=tag)})


async def invoke(client: Any, name: str, qualifier: str | None = None) -> tuple[dict[str, Any], str]:
    """The handler's answer and the ExecutedVersion header."""
    extra = {} if qualifier is None else {"Qualifier": qualifier}
    response = await aws(client.invoke, FunctionName=name, Payload=b"{}", **extra)
    assert "FunctionError" not in response, response["Payload"]
    return json.loads(response["Payload"]), response["ExecutedVersion"]


async def test_publish_list_and_invoke_a_version(make_server: MakeServer) -> None:
    served = await make_server()
    client = served.client()
    v1 = code("one")
    created = await aws(client.create_function, **create_args("pub", v1, Publish=True, Description="first"))
    assert created["Version"] == "1" and created["FunctionArn"] == ARN + "pub:1"
    assert created["CodeSha256"] == sha256_b64(v1)
    v2 = code("two")
    updated = await aws(client.update_function_code, FunctionName="pub", ZipFile=v2)
    assert updated["Version"] == "$LATEST" and updated["FunctionArn"] == ARN + "pub"
    # Preconditions, refused with Lambda's errors.
    with pytest.raises(client.exceptions.InvalidParameterValueException) as digest:
        await aws(client.publish_version, FunctionName="pub", CodeSha256=sha256_b64(v1))
    assert digest.value.response["Error"]["Message"] == (
        f"CodeSHA256 ({sha256_b64(v1)}) is different from current CodeSHA256 in $LATEST ({sha256_b64(v2)}). "
        "Please try again with the CodeSHA256 in $LATEST."
    )
    with pytest.raises(client.exceptions.PreconditionFailedException, match="does not match the latest Revision Id"):
        await aws(client.publish_version, FunctionName="pub", RevisionId="stale")
    published = await aws(
        client.publish_version,
        FunctionName="pub",
        CodeSha256=sha256_b64(v2),
        RevisionId=updated["RevisionId"],
        Description="second",
    )
    assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (published["Version"], published["FunctionArn"], published["Description"]) == ("2", ARN + "pub:2", "second")
    # Nothing changed since: Lambda gives back the last version; the same zip again is no change.
    again = await aws(client.publish_version, FunctionName="pub")
    assert (again["Version"], again["RevisionId"]) == ("2", published["RevisionId"])
    await aws(client.update_function_code, FunctionName="pub", ZipFile=v2)
    assert (await aws(client.publish_version, FunctionName="pub"))["Version"] == "2"

    listed = await aws(client.list_versions_by_function, FunctionName="pub")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1", "2"]
    assert [v["FunctionArn"] for v in listed["Versions"]] == [ARN + "pub:$LATEST", ARN + "pub:1", ARN + "pub:2"]
    first = await aws(client.list_versions_by_function, FunctionName="pub", MaxItems=2)
    assert [v["Version"] for v in first["Versions"]] == ["$LATEST", "1"]
    rest = await aws(client.list_versions_by_function, FunctionName="pub", Marker=first["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"] and "NextMarker" not in rest

    # ListFunctions lists $LATEST only, unless asked for every version.
    await aws(client.create_function, **create_args("pub-b", code("b")))
    plain = await aws(client.list_functions)
    assert [(f["FunctionName"], f["Version"]) for f in plain["Functions"]] == [("pub", "$LATEST"), ("pub-b", "$LATEST")]
    assert plain["Functions"][0]["FunctionArn"] == ARN + "pub"
    every = await aws(client.list_functions, FunctionVersion="ALL")
    listed_all = [(f["FunctionName"], f["Version"]) for f in every["Functions"]]
    assert listed_all == [("pub", "$LATEST"), ("pub", "1"), ("pub", "2"), ("pub-b", "$LATEST")]
    assert [f["FunctionArn"] for f in every["Functions"][:2]] == [ARN + "pub:$LATEST", ARN + "pub:1"]
    paged = client.get_paginator("list_functions").paginate(FunctionVersion="ALL", PaginationConfig={"PageSize": 3})
    pages = [[f["Version"] for f in p["Functions"]] for p in await asyncio.to_thread(list, paged)]
    assert pages == [["$LATEST", "1", "2"], ["$LATEST"]]
    with pytest.raises(ClientError, match="Member must satisfy enum value set: \\[ALL\\]"):
        await aws(client.list_functions, FunctionVersion="SOME")

    config = await aws(client.get_function_configuration, FunctionName="pub", Qualifier="1")
    assert (config["Version"], config["CodeSha256"], config["Description"]) == ("1", sha256_b64(v1), "first")
    got = await aws(client.get_function, FunctionName=ARN + "pub:2")
    assert got["Configuration"]["Version"] == "2" and got["Configuration"]["CodeSha256"] == sha256_b64(v2)

    # Version 1's code survived the update of $LATEST, and runs in environments of its own.
    one, executed = await invoke(client, "pub", "1")
    assert (one["code"], executed, one["function_version"], one["env_version"]) == ("one", "1", "1", "1")
    assert one["invoked_function_arn"] == ARN + "pub:1" and "/[1]" in one["log_stream"]
    latest, executed = await invoke(client, "pub")
    assert (latest["code"], executed, latest["function_version"]) == ("two", "$LATEST", "$LATEST")
    assert latest["invoked_function_arn"] == ARN + "pub"
    two, executed = await invoke(client, "pub:2")
    assert (two["code"], executed, two["invoked_function_arn"]) == ("two", "2", ARN + "pub:2")
    assert len({one["pid"], latest["pid"], two["pid"]}) == 3
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:pub:9"):
        await aws(client.invoke, FunctionName="pub", Qualifier="9", Payload=b"{}")


async def test_delete_a_version(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client()
    await aws(client.create_function, **create_args("gone", code("one"), Publish=True))
    await aws(client.update_function_code, FunctionName="gone", ZipFile=code("two"), Publish=True)
    store = tmp_path / "code-store"
    assert len(revisions(store)) == 2  # $LATEST's and version 1's
    with pytest.raises(client.exceptions.InvalidParameterValueException) as latest:
        await aws(client.delete_function, FunctionName="gone", Qualifier="$LATEST")
    assert latest.value.response["Error"]["Message"] == "$LATEST version cannot be deleted without deleting the function."
    await aws(client.create_alias, FunctionName="gone", Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException) as referenced:
        await aws(client.delete_function, FunctionName="gone", Qualifier="1")
    assert referenced.value.response["Error"]["Message"] == (
        "Unable to delete version because the following aliases reference it: [live]"
    )
    await invoke(client, "gone", "1")  # an environment of version 1, to be shut down
    await aws(client.delete_alias, FunctionName="gone", Name="live")
    deleted = await aws(client.delete_function, FunctionName="gone", Qualifier="1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:gone:1"):
        await aws(client.get_function, FunctionName="gone", Qualifier="1")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:gone:1"):
        await aws(client.delete_function, FunctionName="gone", Qualifier="1")
    listed = await aws(client.list_versions_by_function, FunctionName="gone")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "2"]
    # Its folder goes once its environment has exited; $LATEST's (version 2's too) stays.
    await until(lambda: len(revisions(store)) == 1)
    assert (await invoke(client, "gone", "2"))[0]["code"] == "two"
    # A number is never given again.
    await aws(client.update_function_code, FunctionName="gone", ZipFile=code("three"))
    assert (await aws(client.publish_version, FunctionName="gone"))["Version"] == "3"
    await aws(client.delete_function, FunctionName="gone")
    await until(lambda: not revisions(store))


async def test_aliases_and_weighted_routing(make_server: MakeServer) -> None:
    served = await make_server(routing_rng=random.Random(20261202))
    client = served.client()
    await aws(client.create_function, **create_args("site", code("one"), Publish=True))
    await aws(client.update_function_code, FunctionName="site", ZipFile=code("two"), Publish=True)
    created = await aws(
        client.create_alias,
        FunctionName="site",
        Name="live",
        FunctionVersion="1",
        Description="production",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == ARN + "site:live" and created["FunctionVersion"] == "1"
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    got = await aws(client.get_alias, FunctionName="site", Name="live")
    assert (got["Description"], got["RevisionId"]) == ("production", created["RevisionId"])

    executed: Counter[str] = Counter()
    for _ in range(200):
        answer, version = await invoke(client, "site", "live")
        assert answer["invoked_function_arn"] == ARN + "site:live"  # as the caller named it
        assert answer["function_version"] == version and answer["code"] == {"1": "one", "2": "two"}[version]
        executed[version] += 1
    assert set(executed) == {"1", "2"}
    assert 20 <= executed["2"] <= 90, executed  # 25 % of 200 is 50

    with pytest.raises(client.exceptions.PreconditionFailedException):
        await aws(client.update_alias, FunctionName="site", Name="live", FunctionVersion="2", RevisionId="stale")
    moved = await aws(
        client.update_alias, FunctionName="site", Name="live", FunctionVersion="2", RoutingConfig={}
    )
    assert moved["FunctionVersion"] == "2" and "RoutingConfig" not in moved
    assert moved["RevisionId"] != created["RevisionId"] and moved["Description"] == "production"
    assert (await invoke(client, ARN + "site:live"))[1] == "2"
    await aws(client.create_alias, FunctionName="site", Name="edge", FunctionVersion="$LATEST")
    assert (await invoke(client, "site", "edge"))[1] == "$LATEST"
    listed = await aws(client.list_aliases, FunctionName="site")
    assert [a["Name"] for a in listed["Aliases"]] == ["edge", "live"]
    pinned = await aws(client.list_aliases, FunctionName="site", FunctionVersion="2")
    assert [a["Name"] for a in pinned["Aliases"]] == ["live"]
    page = await aws(client.list_aliases, FunctionName="site", MaxItems=1)
    assert [a["Name"] for a in page["Aliases"]] == ["edge"] and page["NextMarker"]
    config = await aws(client.get_function_configuration, FunctionName="site", Qualifier="live")
    assert (config["Version"], config["FunctionArn"]) == ("2", ARN + "site:live")

    deleted = await aws(client.delete_alias, FunctionName="site", Name="edge")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        await aws(client.get_alias, FunctionName="site", Name="edge")
    assert missing.value.response["Error"]["Message"] == f"Cannot find alias arn: {ARN}site:edge"
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:site:edge"):
        await aws(client.invoke, FunctionName="site", Qualifier="edge", Payload=b"{}")


async def test_alias_refusals(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    await aws(client.publish_version, FunctionName="echo")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="function:echo:7"):
        await aws(client.create_alias, FunctionName="echo", Name="live", FunctionVersion="7")
    with pytest.raises(client.exceptions.InvalidParameterValueException) as itself:
        await aws(
            client.create_alias,
            FunctionName="echo",
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
        )
    assert itself.value.response["Error"]["Message"] == (
        "Invalid function version 1. Function version 1 is already included in routing configuration."
    )
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="cannot be greater than 1"):
        await aws(
            client.create_alias,
            FunctionName="echo",
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.1, "3": 0.1}},
        )
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="\\$LATEST is not supported"):
        await aws(
            client.create_alias,
            FunctionName="echo",
            Name="live",
            FunctionVersion="$LATEST",
            RoutingConfig={"AdditionalVersionWeights": {"1": 0.1}},
        )
    unchecked = served.client(validate=False)
    with pytest.raises(ClientError) as numeric:
        await aws(unchecked.create_alias, FunctionName="echo", Name="12", FunctionVersion="1")
    assert numeric.value.response["Error"]["Code"] == "ValidationException"
    await aws(client.create_alias, FunctionName="echo", Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException) as exists:
        await aws(client.create_alias, FunctionName="echo", Name="live", FunctionVersion="1")
    assert exists.value.response["Error"]["Message"] == f"Alias already exists: {ARN}echo:live"
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Cannot find alias arn"):
        await aws(client.update_alias, FunctionName="echo", Name="nope", FunctionVersion="1")


async def test_provisioned_concurrency_per_alias(make_server: MakeServer) -> None:
    served = await make_server(fn("env", "basic.environ"))
    client = served.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException) as latest:
        await aws(
            client.put_provisioned_concurrency_config,
            FunctionName="env",
            Qualifier="$LATEST",
            ProvisionedConcurrentExecutions=1,
        )
    assert latest.value.response["Error"]["Message"] == (
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    )
    await aws(client.publish_version, FunctionName="env")
    await aws(client.create_alias, FunctionName="env", Name="live", FunctionVersion="1")
    put = await aws(
        client.put_provisioned_concurrency_config, FunctionName="env", Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202 and put["RequestedProvisionedConcurrentExecutions"] == 2
    version = served.scheduler.describe("env", "1")
    assert version.provisioned.requested == 2
    await asyncio.wait_for(asyncio.shield(version.provisioned_settled), 30)
    ready = await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="live")
    assert ready["Status"] == "READY" and ready["AllocatedProvisionedConcurrentExecutions"] == 2
    [item] = (await aws(client.list_provisioned_concurrency_configs, FunctionName="env"))["ProvisionedConcurrencyConfigs"]
    assert item["FunctionArn"] == ARN + "env:live"
    # It counts against the function's reserved concurrency, across versions.
    await aws(client.put_function_concurrency, FunctionName="env", ReservedConcurrentExecutions=2)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="should not be greater than"):
        await aws(client.put_provisioned_concurrency_config, FunctionName="env", Qualifier="1", ProvisionedConcurrentExecutions=1)
    # Through the alias, a pre-initialised environment of version 1; $LATEST has none.
    answer = await aws(client.invoke, FunctionName="env", Qualifier="live")
    environ = json.loads(answer["Payload"])["environ"]
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency" and answer["ExecutedVersion"] == "1"
    environ = json.loads((await aws(client.invoke, FunctionName="env"))["Payload"])["environ"]
    assert environ["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert served.scheduler.status("env").provisioned.requested == 0
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException, match="No Provisioned Concurrency Config found for this function$"):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="1")
    deleted = await aws(client.delete_provisioned_concurrency_config, FunctionName="env", Qualifier="live")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert served.scheduler.describe("env", "1").provisioned.requested == 0
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException, match="No Provisioned Concurrency Config found for this function$"):
        await aws(client.get_provisioned_concurrency_config, FunctionName="env", Qualifier="live")


async def test_event_invoke_config_per_qualifier(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    await aws(client.publish_version, FunctionName="echo")
    await aws(client.create_alias, FunctionName="echo", Name="live", FunctionVersion="1")
    put = await aws(
        client.put_function_event_invoke_config, FunctionName="echo", Qualifier="live", MaximumRetryAttempts=0
    )
    assert put["FunctionArn"] == ARN + "echo:live" and put["MaximumRetryAttempts"] == 0
    got = await aws(client.get_function_event_invoke_config, FunctionName=ARN + "echo:live")
    assert got["MaximumRetryAttempts"] == 0
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="doesn't have an EventInvokeConfig"):
        await aws(client.get_function_event_invoke_config, FunctionName="echo")
    await aws(client.put_function_event_invoke_config, FunctionName="echo", MaximumRetryAttempts=1)
    listed = await aws(client.list_function_event_invoke_configs, FunctionName="echo")
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [ARN + "echo:$LATEST", ARN + "echo:live"]
    assert served.app[DISPATCHER].config_for("echo", "live").maximum_retry_attempts == 0
    assert served.app[DISPATCHER].config_for("echo").maximum_retry_attempts == 1
    await aws(client.delete_function_event_invoke_config, FunctionName="echo", Qualifier="live")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.get_function_event_invoke_config, FunctionName="echo", Qualifier="live")


# --- the AWS CLI ---------------------------------------------------------------------------------


async def aws_cli(url: str, *args: str) -> Any:
    """``aws lambda ARGS`` against the server; its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDA_SCHEDULER_"))}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    command = str(Path(sys.executable).with_name("aws"))
    proc = await asyncio.create_subprocess_exec(
        command, "lambda", *args, "--endpoint-url", url, "--output", "json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return json.loads(out) if out.strip() else None


@pytest.mark.timeout(120)
async def test_aws_cli(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    zipped = tmp_path / "one.zip"
    zipped.write_bytes(code("one"))
    url = served.url
    await aws_cli(
        url, "create-function", "--function-name", "cli", "--runtime", "python3.11", "--handler", "app.handler",
        "--role", "arn:aws:iam::123456789012:role/any", "--zip-file", f"fileb://{zipped}",
    )  # fmt: skip
    published = await aws_cli(url, "publish-version", "--function-name", "cli", "--description", "v1")
    assert published["Version"] == "1"
    listed = await aws_cli(url, "list-versions-by-function", "--function-name", "cli")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1"]
    alias = await aws_cli(url, "create-alias", "--function-name", "cli", "--name", "live", "--function-version", "1")
    assert alias["AliasArn"] == ARN + "cli:live"
    out = tmp_path / "out.json"
    result = await aws_cli(url, "invoke", "--function-name", "cli", "--qualifier", "live", str(out))
    assert result["ExecutedVersion"] == "1" and json.loads(out.read_text())["invoked_function_arn"] == ARN + "cli:live"
    aliases = await aws_cli(url, "list-aliases", "--function-name", "cli")
    assert [a["Name"] for a in aliases["Aliases"]] == ["live"]
    await aws_cli(url, "delete-alias", "--function-name", "cli", "--name", "live")
    await aws_cli(url, "delete-function", "--function-name", "cli", "--qualifier", "1")
    listed = await aws_cli(url, "list-versions-by-function", "--function-name", "cli")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST"]


# --- the engine ----------------------------------------------------------------------------------


async def test_engine_versions_have_their_own_pools(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("ctx", "basic.context_dump"), routing_rng=random.Random(1))
    one = s.publish_version("ctx", description="pinned")
    assert (one.version, one.arn, one.config.description) == ("1", ARN + "ctx:1", "pinned")
    assert s.publish_version("ctx").version == "1"  # unchanged $LATEST
    s.update_function(s.status("ctx").config.replace(memory_mb=256))
    two = s.publish_version("ctx")
    assert (two.version, two.config.memory_mb) == ("2", 256)
    assert s.describe("ctx", "1").config.memory_mb == 128
    result = await s.invoke("ctx", b"{}", qualifier="1")
    assert result.version == "1" and json.loads(result.payload)["memory_limit_in_mb"] == "128"
    assert f"START RequestId: {result.request_id} Version: 1\n" in result.log
    s.put_alias("ctx", Alias("live", "1", {"2": 1.0}), create=True)
    routed = await s.invoke("ctx:live", b"{}")
    assert routed.version == "2" and json.loads(routed.payload)["invoked_function_arn"] == ARN + "ctx:live"
    assert [v.version for v in s.versions("ctx")] == ["$LATEST", "1", "2"]
    assert s.describe("ctx", "1").count() == 1 and s.describe("ctx", "2").count() == 1
    assert s.status("ctx").count() == 0
    s.remove_function("ctx")
    assert "ctx" not in s.functions


# --- templates -----------------------------------------------------------------------------------

VERSIONS_TEMPLATE = Path(__file__).parent / "templates" / "versions" / "template.yaml"


def test_template_versions_and_aliases_are_read() -> None:
    template = load_template(VERSIONS_TEMPLATE)
    functions = {f.name: f for f in template.functions}
    # With AutoPublishAlias the provisioned concurrency is the alias's; without, $LATEST's.
    assert (functions["site"].provisioned_concurrency, functions["warm"].provisioned_concurrency) == (0, 1)
    assert any("warm" not in note and "Warm" in note and "AutoPublishAlias" in note for note in template.notes)
    versions = list(template.versions.values())
    # Each function numbers its own versions: the order across functions does not matter.
    assert sorted((v.function_name, v.description or "") for v in versions) == [("site", ""), ("worker", "first release")]
    aliases = {a.name: a for a in template.aliases}
    assert (aliases["live"].function_name, aliases["live"].provisioned_concurrency) == ("site", 1)
    assert (aliases["prod"].function_name, aliases["prod"].description) == ("worker", "production")
    assert aliases["edge"].version == "$LATEST"


async def test_template_versions_and_aliases_are_served(make_server: MakeServer) -> None:
    template = load_template(VERSIONS_TEMPLATE)
    served = await make_server(*template.functions, after_start=template.publish)
    client = served.client()
    await asyncio.wait_for(asyncio.shield(served.scheduler.describe("site", "live").provisioned_settled), 30)
    answer = await aws(client.invoke, FunctionName="site", Qualifier="live")
    assert answer["ExecutedVersion"] == "1"
    assert json.loads(answer["Payload"])["environ"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    ready = await aws(client.get_provisioned_concurrency_config, FunctionName="site", Qualifier="live")
    assert ready["RequestedProvisionedConcurrentExecutions"] == 1 and ready["Status"] == "READY"
    aliases = await aws(client.list_aliases, FunctionName="worker")
    assert [(a["Name"], a["FunctionVersion"]) for a in aliases["Aliases"]] == [("edge", "$LATEST"), ("prod", "1")]
    version = await aws(client.get_function_configuration, FunctionName="worker", Qualifier="prod")
    assert (version["Version"], version["Description"]) == ("1", "first release")
    dumped = json.loads((await aws(client.invoke, FunctionName="worker:prod"))["Payload"])
    assert (dumped["function_version"], dumped["invoked_function_arn"]) == ("1", ARN + "worker:prod")
    # A template's $LATEST keeps its provisioned concurrency.
    warm = await aws(client.get_provisioned_concurrency_config, FunctionName="warm", Qualifier="$LATEST")
    assert warm["RequestedProvisionedConcurrentExecutions"] == 1


async def test_metrics_tell_versions_apart(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo"))
    client = served.client()
    await aws(client.publish_version, FunctionName="echo")
    await aws(client.invoke, FunctionName="echo", Qualifier="1")
    await aws(client.invoke, FunctionName="echo")
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/metrics") as response:
        text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def environments(name: str, **labels: str) -> float:
        return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))

    assert environments("lambda_version_environments", function="echo", version="1") == 1
    assert environments("lambda_version_environments", function="echo", version="$LATEST") == 1
    assert environments("lambda_environments", function="echo") == 2  # the function, every version


async def test_event_through_an_alias_follows_its_config(make_server: MakeServer, tmp_path: Path) -> None:
    """An Event invocation through an alias runs on the alias's version, under the alias's
    event-invoke config; its destination record names the alias and the version that ran."""
    data = tmp_path / "data"
    config = ServerConfig(code_store_dir=tmp_path / "code-store", data_dir=data, **FAST_EVENTS)
    served = await make_server(fn("echo", "basic.echo"), server_config=config)
    client = served.client()
    await aws(client.publish_version, FunctionName="echo")
    await aws(client.create_alias, FunctionName="echo", Name="live", FunctionVersion="1")
    queue = "arn:aws:sqs:us-east-1:123456789012:live-successes"
    await aws(
        client.put_function_event_invoke_config,
        FunctionName="echo",
        Qualifier="live",
        DestinationConfig={"OnSuccess": {"Destination": queue}},
    )
    sent = await aws(client.invoke, FunctionName="echo", Qualifier="live", InvocationType="Event", Payload=b'{"n": 1}')
    await aws(client.invoke, FunctionName="echo", InvocationType="Event", Payload=b'{"n": 2}')  # no destination
    sink = data / "destinations" / "arn_aws_sqs_us-east-1_123456789012_live-successes.jsonl"
    await until(lambda: sink.exists() and sink.read_text().count("\n") == 1)
    await until(lambda: served.app[EVENT_QUEUE].succeeded == 2)
    [record] = [json.loads(line) for line in sink.read_text().splitlines()]
    assert record["requestContext"]["requestId"] == sent["ResponseMetadata"]["RequestId"]
    assert record["requestContext"]["functionArn"] == ARN + "echo:live"
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "1"}
    assert record["requestPayload"] == {"n": 1}


@pytest.mark.timeout(120)
async def test_serve_publishes_a_templates_versions(tmp_path: Path) -> None:
    """``lambda-scheduler serve`` on the template, driven by the AWS CLI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
    args = [str(VERSIONS_TEMPLATE), "--port", "0", "--data-dir", str(tmp_path / "data")]
    args += ["--code-store-dir", str(tmp_path / "store"), "--log-level", "warning"]
    server = await asyncio.to_thread(Server, args, env, tmp_path / "stderr")
    try:
        out = tmp_path / "out.json"
        result = await aws_cli(server.url, "invoke", "--function-name", "site", "--qualifier", "live", str(out))
        assert result["ExecutedVersion"] == "1"
        assert json.loads(out.read_text())["environ"]["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
        aliases = await aws_cli(server.url, "list-aliases", "--function-name", "worker")
        assert [a["Name"] for a in aliases["Aliases"]] == ["edge", "prod"]
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        await asyncio.to_thread(server.close)
    leftover = wait_gone(zygote_family(owner=server.process.pid), timeout=5.0)
    assert not leftover, f"processes left behind: {sorted(leftover)}"
