"""SnapStart: a version published with ``ApplyOn: PublishedVersions`` runs Init once, in a
snapshot process, and every environment of it is a fork of that process; runtime hooks run in
Lambda's order; the REPORT line says Restore Duration; Lambda's refusal of older runtimes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import FunctionConfig
from scheduler.engine.snapshot import SnapshotState
from scheduler.errors import ConfigError, ZygoteError
from scheduler.logconfig import LogFormat, LoggingConfig
from scheduler.snapstart import SnapStartApplyOn
from scheduler.template import TemplateError, load_template

from . import interpreters
from .conftest import MakeScheduler, MakeServer, aws, fn
from .procs import wait_gone, zygote_family
from .test_api_functions import create_args, make_zip
from .test_template import write

RUNTIME = "python3.12"
SAM = "Transform: AWS::Serverless-2016-10-31\n"


def _body(result: Any) -> dict[str, Any]:
    return json.loads(result.payload)  # type: ignore[no-any-return]


def _snap(tmp_path: Path, **environment: str) -> FunctionConfig:
    return fn(
        "snap",
        "snapstart_fn.handler",
        runtime=RUNTIME,
        snapstart=SnapStartApplyOn.PUBLISHED_VERSIONS,
        environment={"INIT_LOG": str(tmp_path / "inits"), **environment},
        timeout_s=30,
    )


async def _published(s: Any, name: str) -> Any:
    published = s.get_function(name).versions.versions[s.publish_version(name).version]
    assert published.snapshot is not None and published.snapshot.state is SnapshotState.PENDING
    await asyncio.wait_for(asyncio.shield(published.snapshot.client.ready), 60)
    return published


@pytest.mark.timeout(180)
async def test_environments_are_forks_of_the_snapshot(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    python = interpreters.require(RUNTIME)
    s = await make_scheduler(_snap(tmp_path), runtime_interpreters={RUNTIME: python})
    published = await _published(s, "snap")
    assert published.snapshot.state is SnapshotState.ACTIVE
    inits = (tmp_path / "inits").read_text().splitlines()
    assert len(inits) == 1  # Init ran once, in the snapshot
    # Two at once: two environments, both forked from the snapshot, neither running Init.
    one, two = await asyncio.gather(
        s.invoke("snap", {"sleep": 0.5}, qualifier="1"), s.invoke("snap", {"sleep": 0.5}, qualifier="1")
    )
    bodies = [_body(one), _body(two)]
    assert bodies[0]["pid"] != bodies[1]["pid"]
    for body in bodies:
        assert body["inits"] == inits
        assert body["init_pid"] == int(inits[0].split()[1]) != body["pid"]
        # Before-snapshot hooks in the reverse order of registration, after-restore in order.
        assert body["events"] == ["before-2", "before-1", "after-1", "after-2"]
        assert body["initialization_type"] == "snap-start"
        assert body["version"] == "1"
    assert bodies[0]["random"] != bodies[1]["random"]  # reseeded after the restore
    if s.isolation.cgroups is not None:  # each in a cgroup of its own, moved there before Restore
        assert bodies[0]["cgroup"] != bodies[1]["cgroup"]
    for result in (one, two):
        assert result.start == "cold"
        assert re.search(r"\tRestore Duration: \d+\.\d\d ms\tBilled Restore Duration: \d+ ms\t", result.log), result.log
        assert "Init Duration" not in result.log
    warm = await s.invoke("snap", {}, qualifier="1")
    assert warm.start == "warm" and "Restore Duration" not in warm.log
    # $LATEST is never snapshotted: it runs Init as usual.
    latest = await s.invoke("snap", {})
    assert _body(latest)["initialization_type"] == "on-demand" and "Init Duration" in latest.log
    assert len((tmp_path / "inits").read_text().splitlines()) == 2


@pytest.mark.timeout(180)
async def test_a_failed_init_fails_the_version(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    python = interpreters.require(RUNTIME)
    s = await make_scheduler(_snap(tmp_path, FAIL_INIT="1"), runtime_interpreters={RUNTIME: python})
    published = s.get_function("snap").versions.versions[s.publish_version("snap").version]
    snapshot = published.snapshot
    with pytest.raises(Exception, match="snapshot failed"):
        await asyncio.wait_for(asyncio.shield(snapshot.client.ready), 60)
    assert snapshot.state is SnapshotState.FAILED
    assert snapshot.reason_code == "FunctionError" and "RuntimeError" in (snapshot.reason or "")
    with pytest.raises(ZygoteError, match="snapshot failed"):
        await s.invoke("snap", {}, qualifier="1")
    assert len((tmp_path / "inits").read_text().splitlines() if (tmp_path / "inits").exists() else []) == 0


@pytest.mark.timeout(180)
async def test_a_failing_after_restore_hook_fails_the_start(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    python = interpreters.require(RUNTIME)
    s = await make_scheduler(_snap(tmp_path, FAIL_RESTORE="1"), runtime_interpreters={RUNTIME: python})
    published = await _published(s, "snap")
    assert published.snapshot.state is SnapshotState.ACTIVE  # Init itself succeeded
    result = await s.invoke("snap", {}, qualifier="1")
    assert result.error_type == "RuntimeError"
    assert _body(result)["errorMessage"] == "the after-restore hook fails on purpose"
    assert len((tmp_path / "inits").read_text().splitlines()) == 1  # a failed restore runs no Init


def test_runtimes_before_3_12_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        fn("old", "snapstart_fn.handler", runtime="python3.11", snapstart="PublishedVersions")
    assert caught.value.api_message == "python3.11 is not supported for SnapStart enabled functions."
    assert fn("old", "snapstart_fn.handler", runtime="python3.11", snapstart="None").snapstart is SnapStartApplyOn.NONE


SNAP_HANDLER = """
import os
from snapshot_restore_py import register_after_restore

RESTORED = []
register_after_restore(RESTORED.append, "restored")


def handler(event, context):
    return {"restored": RESTORED, "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


@pytest.mark.timeout(180)
async def test_over_the_api(make_server: MakeServer) -> None:
    python = interpreters.require(RUNTIME)
    served = await make_server(runtime_interpreters={RUNTIME: python})
    client = served.client()
    snap = {"ApplyOn": "PublishedVersions"}
    with pytest.raises(client.exceptions.InvalidParameterValueException) as refused:
        await aws(client.create_function, **create_args("old", make_zip({"app.py": SNAP_HANDLER}), SnapStart=snap))
    assert refused.value.response["Error"]["Message"] == "python3.11 is not supported for SnapStart enabled functions."
    created = await aws(
        client.create_function,
        **create_args("snapi", make_zip({"app.py": SNAP_HANDLER}), Runtime=RUNTIME, SnapStart=snap),
    )
    assert created["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    published = await aws(client.publish_version, FunctionName="snapi")
    assert published["Version"] == "1" and published["State"] == "Pending"
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    # An invocation of a Pending version waits for its snapshot.
    response = await aws(client.invoke, FunctionName="snapi", Qualifier="1", Payload=b"{}", LogType="Tail")
    assert json.loads(response["Payload"]) == {"restored": ["restored"], "init_type": "snap-start"}
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "\tRestore Duration: " in tail and "Init Duration" not in tail, tail
    version = await aws(client.get_function_configuration, FunctionName="snapi", Qualifier="1")
    assert version["State"] == "Active"
    latest = await aws(client.invoke, FunctionName="snapi", Payload=b"{}")
    assert json.loads(latest["Payload"]) == {"restored": [], "init_type": "on-demand"}
    off = await aws(client.update_function_configuration, FunctionName="snapi", SnapStart={"ApplyOn": "None"})
    assert off["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}


@pytest.mark.timeout(180)
async def test_json_platform_records_of_a_restore(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    python = interpreters.require(RUNTIME)
    config = _snap(tmp_path).replace(logging=LoggingConfig(log_format=LogFormat.JSON))
    s = await make_scheduler(config, runtime_interpreters={RUNTIME: python})
    await _published(s, "snap")
    result = await s.invoke("snap", {}, qualifier="1")
    records = [json.loads(line) for line in result.log.splitlines() if line.startswith("{")]
    kinds = [r["type"] for r in records if r["type"].startswith("platform.")]
    assert kinds[:3] == ["platform.restoreStart", "platform.restoreReport", "platform.start"], kinds
    assert records[0]["record"]["functionVersion"] == "1"
    report = next(r for r in records if r["type"] == "platform.report")["record"]["metrics"]
    assert "initDurationMs" not in report and report["restoreDurationMs"] > 0
    assert report["billedRestoreDurationMs"] >= 1


SAM_FUNCTION = """
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: {runtime}
      AutoPublishAlias: live
      SnapStart:
        ApplyOn: PublishedVersions
"""


@pytest.mark.timeout(180)
async def test_a_sam_template_with_snapstart(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"python3\.11 is not supported for SnapStart enabled functions\."):
        load_template(write(tmp_path, SAM_FUNCTION.format(runtime="python3.11"), SAM))
    path = write(tmp_path, SAM_FUNCTION.format(runtime=RUNTIME), SAM)
    (tmp_path / "src" / "app.py").write_text(SNAP_HANDLER)
    template = load_template(path)
    [config] = template.functions
    assert config.snapstart is SnapStartApplyOn.PUBLISHED_VERSIONS
    s = await make_scheduler(*template.functions, runtime_interpreters={RUNTIME: interpreters.require(RUNTIME)})
    template.publish(s)
    result = await s.invoke(config.name, {}, qualifier="live")
    assert _body(result) == {"restored": ["restored"], "init_type": "snap-start"}
    assert "\tRestore Duration: " in result.log


@pytest.mark.timeout(180)
async def test_deleting_the_version_ends_its_snapshot(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(_snap(tmp_path), runtime_interpreters={RUNTIME: interpreters.require(RUNTIME)})
    published = await _published(s, "snap")
    result = await s.invoke("snap", {}, qualifier="1")
    assert published.snapshot.env is not None
    family = {published.snapshot.env.pid, _body(result)["pid"]}
    assert family <= zygote_family()
    s.delete_version("snap", "1")
    assert await asyncio.to_thread(wait_gone, family, 30.0) == set()
