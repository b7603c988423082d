"""The management API over HTTP with boto3: create from a zip, read, list with paging, update
configuration and code, delete, account settings, health."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from scheduler.codezip import unpack_zip
from scheduler.errors import InvalidParameterValue, RequestTooLarge

from .conftest import MakeServer, aws, fn, until

ROLE = "arn:aws:iam::123456789012:role/tests"
LAST_MODIFIED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")

HANDLER_V1 = """
import os
def handler(event, context):
    return {"version": 1, "greeting": os.environ.get("GREETING"), "pid": os.getpid(), "event": event}
"""
HANDLER_V2 = """
def handler(event, context):
    return {"version": 2}
"""


def make_zip(files: dict[str, str], mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def create_args(name: str, code: bytes, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": code},
    }
    return {**args, **extra}


def revisions(root: Path) -> list[Path]:
    return [p for p in root.glob("lambda-scheduler-code-*/*/*") if p.is_dir()]


async def test_create_get_invoke_and_waiters(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client()
    code = make_zip({"app.py": HANDLER_V1, "lib/data.txt": "x"})
    created = await aws(
        client.create_function,
        **create_args(
            "greeter",
            code,
            Timeout=7,
            MemorySize=256,
            Description="says hi",
            Environment={"Variables": {"GREETING": "hi"}},
            EphemeralStorage={"Size": 1024},
            Architectures=["arm64"],
            Tags={"team": "tests"},
        ),
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionName"] == "greeter"
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:greeter"
    assert (created["Runtime"], created["Handler"], created["Role"]) == ("python3.11", "app.handler", ROLE)
    assert (created["Timeout"], created["MemorySize"], created["Description"]) == (7, 256, "says hi")
    assert created["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert created["EphemeralStorage"] == {"Size": 1024} and created["Architectures"] == ["arm64"]
    assert created["CodeSize"] == len(code) and created["CodeSha256"] == sha256_b64(code)
    assert (created["State"], created["StateReasonCode"]) == ("Pending", "Creating")
    assert created["Version"] == "$LATEST" and created["PackageType"] == "Zip"
    assert LAST_MODIFIED.match(created["LastModified"])
    await aws(client.get_waiter("function_active_v2").wait, FunctionName="greeter")
    await aws(client.get_waiter("function_updated_v2").wait, FunctionName="greeter")
    active = await aws(client.get_function_configuration, FunctionName="greeter")
    assert (active["State"], active["LastUpdateStatus"]) == ("Active", "Successful") and "StateReason" not in active
    result = await aws(client.invoke, FunctionName="greeter", Payload=b'{"a": 1}')
    assert json.loads(result["Payload"])["greeting"] == "hi"
    got = await aws(client.get_function, FunctionName="greeter")
    assert got["Configuration"]["RevisionId"] == created["RevisionId"]
    assert got["Code"]["RepositoryType"] == "S3" and got["Code"]["Location"].startswith("file://")
    assert Path(got["Code"]["Location"].removeprefix("file://"), "lib", "data.txt").read_text() == "x"
    assert got["Tags"] == {"team": "tests"} and "Concurrency" not in got
    configuration = await aws(client.get_function_configuration, FunctionName="greeter")
    assert configuration["CodeSha256"] == created["CodeSha256"]
    with pytest.raises(client.exceptions.ResourceConflictException, match="already exist"):
        await aws(client.create_function, **create_args("greeter", code))


async def test_create_refuses_bad_input_and_leaves_nothing(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client(validate=False)
    code = make_zip({"app.py": HANDLER_V1})

    async def refused(error: str, message: str, **args: Any) -> None:
        with pytest.raises(ClientError) as exc:
            await aws(client.create_function, **{**create_args("bad", code), **args})
        assert exc.value.response["Error"]["Code"] == error
        assert message in exc.value.response["Error"]["Message"], exc.value.response["Error"]["Message"]

    validation = "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member must have value"
    await refused("ValidationException", validation.format(901, "timeout") + " less than or equal to 900", Timeout=901)
    await refused("ValidationException", validation.format(0, "timeout") + " greater than or equal to 1", Timeout=0)
    await refused("ValidationException", validation.format(64, "memorySize"), MemorySize=64)
    await refused("ValidationException", "at 'timeout'", Timeout=2.5)
    await refused("InvalidParameterValueException", "Runtime and Handler are mandatory", Runtime=None)
    await refused("InvalidParameterValueException", "python3.N runtime", Runtime="nodejs20.x")
    await refused(
        "InvalidParameterValueException",
        "Reserved keys used in this request: AWS_REGION",
        Environment={"Variables": {"AWS_REGION": "x"}},
    )
    await refused("InvalidParameterValueException", "S3", Code={"S3Bucket": "b", "S3Key": "k"})
    await refused("InvalidParameterValueException", "Container image", Code={"ImageUri": "repo:tag"})
    await refused(
        "InvalidParameterValueException", "Layers", Layers=["arn:aws:lambda:us-east-1:123456789012:layer:x:1"]
    )
    await refused("InvalidParameterValueException", "Could not unzip uploaded file", Code={"ZipFile": b"not a zip"})
    await refused(
        "InvalidParameterValueException",
        "outside the function's folder",
        Code={"ZipFile": make_zip({"../evil.py": "x"})},
    )
    await refused(
        "InvalidParameterValueException",
        "outside the function's folder",
        Code={"ZipFile": make_zip({"/etc/evil": "x"})},
    )
    await refused(
        "InvalidParameterValueException",
        "symbolic link",
        Code={"ZipFile": make_zip({"link": "/etc/passwd"}, stat.S_IFLNK | 0o777)},
    )
    await refused("ValidationException", "Value 'has spaces' at 'functionName'", FunctionName="has spaces")
    assert not served.scheduler.functions
    assert revisions(tmp_path / "code-store") == []


async def test_oversized_archives_are_refused(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client()
    # Declares (and holds) just over 250 MB unzipped, in a small archive: refused before writing.
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("zeros.bin", "w", force_zip64=True) as out,
    ):
        block = bytes(1 << 20)
        for _ in range(250):
            out.write(block)
        out.write(b"\0")
    bomb = buffer.getvalue()
    assert len(bomb) < 2 << 20
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        await aws(client.create_function, **create_args("bomb", bomb))
    assert exc.value.response["Error"]["Message"] == "Unzipped size must be smaller than 262144000 bytes"
    assert revisions(tmp_path / "code-store") == []
    # Over 50 MB zipped is over the request limit Lambda states for the operation.
    body = b'{"FunctionName": "big", "Code": {"ZipFile": "' + b"A" * 70_167_212 + b'"}}'
    url = f"{served.url}/2015-03-31/functions"
    async with aiohttp.ClientSession() as http, http.post(url, data=io.BytesIO(body)) as response:
        assert response.status == 413
        assert response.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
        assert (await response.json())["message"] == (
            "Request must be smaller than 70167211 bytes for the CreateFunction operation"
        )


def test_unpack_counts_the_bytes_it_writes(tmp_path: Path) -> None:
    data = make_zip({"a.txt": "a" * 600, "b.txt": "b" * 600})
    with pytest.raises(InvalidParameterValue, match="Unzipped size must be smaller than 1000 bytes"):
        unpack_zip(data, tmp_path / "declared", max_unzipped=1000)
    assert not (tmp_path / "declared").exists()
    # An archive that understates its sizes is refused (its CRC fails), and nothing is left.
    lying = bytearray(data)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        start = 0
        while (start := lying.find(header, start)) != -1:
            offset = 22 if header == b"PK\x03\x04" else 24  # the uncompressed-size field
            lying[start + offset : start + offset + 4] = (100).to_bytes(4, "little")
            start += 4
    with pytest.raises(InvalidParameterValue):
        unpack_zip(bytes(lying), tmp_path / "lying", max_unzipped=1000)
    assert not (tmp_path / "lying").exists()
    with pytest.raises(RequestTooLarge, match="Zipped size must be smaller than 10 bytes"):
        unpack_zip(data, tmp_path / "zipped", max_zipped=10)
    info = unpack_zip(make_zip({"run.sh": "#!/bin/sh\n"}, 0o755), tmp_path / "ok")
    assert (tmp_path / "ok" / "run.sh").stat().st_mode & 0o111
    assert info.size > 0


async def test_list_functions_pages(make_server: MakeServer) -> None:
    served = await make_server(*(fn(f"f{i:02d}", "basic.echo") for i in range(60)))
    client = served.client()
    first = await aws(client.list_functions)
    assert len(first["Functions"]) == 50 and "NextMarker" in first
    second = await aws(client.list_functions, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in second["Functions"]] == [f"f{i:02d}" for i in range(50, 60)]
    assert "NextMarker" not in second
    pages = client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 25})
    sizes = await asyncio.to_thread(lambda: [len(page["Functions"]) for page in pages])
    assert sizes == [25, 25, 10]
    names = [f["FunctionName"] for f in (await aws(client.list_functions, MaxItems=3))["Functions"]]
    assert names == ["f00", "f01", "f02"]
    unchecked = served.client(validate=False)
    with pytest.raises(ClientError, match="maxItems"):
        await aws(unchecked.list_functions, MaxItems=0)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="Marker"):
        await aws(client.list_functions, Marker="%%%")


async def test_update_configuration_applies_to_new_environments(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server(
        fn("env", "basic.environ", environment={"SETTING": "old"}), fn("hold", "basic.wait_for_file")
    )
    client = served.client()
    before = json.loads((await aws(client.invoke, FunctionName="env"))["Payload"])["environ"]
    old_revision = (await aws(client.get_function_configuration, FunctionName="env"))["RevisionId"]
    updated = await aws(
        client.update_function_configuration,
        FunctionName="env",
        Environment={"Variables": {"SETTING": "new"}},
        Timeout=5,
        MemorySize=512,
        Role=ROLE,
    )
    assert updated["Environment"] == {"Variables": {"SETTING": "new"}}
    assert (updated["Timeout"], updated["MemorySize"], updated["Role"]) == (5, 512, ROLE)
    assert updated["RevisionId"] != old_revision and updated["LastUpdateStatus"] == "InProgress"
    after = json.loads((await aws(client.invoke, FunctionName="env"))["Payload"])["environ"]
    assert before["SETTING"] == "old" and after["SETTING"] == "new"
    assert after["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    # An invocation in flight during an update finishes on its old environment.
    release = tmp_path / "release"
    held = asyncio.ensure_future(aws(client.invoke, FunctionName="hold", Payload=json.dumps({"path": str(release)})))
    await until(lambda: served.scheduler.admission.in_flight == 1)
    await aws(client.update_function_configuration, FunctionName="hold", Description="changed")
    release.touch()
    assert "FunctionError" not in await held
    with pytest.raises(client.exceptions.PreconditionFailedException):
        await aws(client.update_function_configuration, FunctionName="env", Timeout=6, RevisionId=old_revision)
    with pytest.raises(ClientError) as too_long:
        await aws(client.update_function_configuration, FunctionName="env", Timeout=1200)
    assert too_long.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value '1200' at 'timeout' failed to satisfy constraint: "
        "Member must have value less than or equal to 900",
    }
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.update_function_configuration, FunctionName="nope", Timeout=6)


async def test_update_code_and_delete(make_server: MakeServer, tmp_path: Path) -> None:
    served = await make_server()
    client = served.client()
    store = tmp_path / "code-store"
    v1 = make_zip({"app.py": HANDLER_V1})
    await aws(client.create_function, **create_args("code", v1))
    assert json.loads((await aws(client.invoke, FunctionName="code"))["Payload"])["version"] == 1
    [first_revision] = revisions(store)
    v2 = make_zip({"app.py": HANDLER_V2})
    updated = await aws(client.update_function_code, FunctionName="code", ZipFile=v2)
    assert updated["CodeSha256"] == sha256_b64(v2) and updated["CodeSize"] == len(v2)
    assert json.loads((await aws(client.invoke, FunctionName="code"))["Payload"]) == {"version": 2}
    # The replaced revision goes once its environment has shut down.
    await until(lambda: not first_revision.exists())
    dry = await aws(client.update_function_code, FunctionName="code", ZipFile=v1, DryRun=True)
    assert dry["CodeSha256"] == sha256_b64(v2)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        await aws(client.update_function_code, FunctionName="code", ZipFile=b"garbage")
    assert len(revisions(store)) == 1
    deleted = await aws(client.delete_function, FunctionName="code")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.get_function, FunctionName="code")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.invoke, FunctionName="code")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.delete_function, FunctionName="code")
    await until(lambda: revisions(store) == [])


async def test_functions_from_the_python_api_are_described(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo", timeout_s=0.5, reserved_concurrency=3))
    client = served.client()
    got = await aws(client.get_function, FunctionName="arn:aws:lambda:us-east-1:123456789012:function:echo")
    configuration = got["Configuration"]
    assert configuration["Timeout"] == 1  # whole seconds over the API
    assert configuration["CodeSize"] > 0 and len(base64.b64decode(configuration["CodeSha256"])) == 32
    assert got["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await aws(client.get_function, FunctionName="echo", Qualifier="3")


async def test_account_settings_and_health(make_server: MakeServer) -> None:
    served = await make_server(fn("echo", "basic.echo", reserved_concurrency=10), account_concurrency=500)
    client = served.client()
    settings = await aws(client.get_account_settings)
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 500
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 490
    assert settings["AccountLimit"]["CodeSizeZipped"] == 52_428_800
    assert settings["AccountLimit"]["CodeSizeUnzipped"] == 262_144_000
    assert settings["AccountUsage"]["FunctionCount"] == 1 and settings["AccountUsage"]["TotalCodeSize"] > 0
    await aws(client.invoke, FunctionName="echo")
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/health") as response:
        assert response.status == 200
        health = await response.json()
    assert health["status"] == "ok" and health["functions"] == 1 and health["in_flight"] == 0
    assert health["environments"]["idle"] + health["environments"]["frozen"] == 1
    assert health["events"]["depth"] == 0
