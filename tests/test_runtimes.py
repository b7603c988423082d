"""``Runtime: python3.N`` runs on a python3.N interpreter: a zygote per interpreter, the worker
under it (msgspec installed for it once), the sandbox binding its files read-only; a runtime
with no interpreter here runs on the server's with a warning, or is refused (--strict-runtime);
a runtime Lambda does not accept is refused with Lambda's text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scheduler import FunctionConfig
from scheduler.cli import build_parser, configs, main
from scheduler.config import SchedulerConfig
from scheduler.engine import runtimes, workersite
from scheduler.errors import RuntimeUnavailable, UnsupportedRuntime

from . import interpreters
from .conftest import FUNCTIONS, MakeScheduler, MakeServer, aws, fn
from .marked import ROLE, marking_zip
from .serving import COMMAND, Server

OWN = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
MISSING = "/nonexistent/bin/python3.12"


def _body(result: Any) -> dict[str, Any]:
    return json.loads(result.payload)  # type: ignore[no-any-return]


def _interpreters(*runtimes_: str) -> dict[str, str]:
    return {runtime: interpreters.require(runtime) for runtime in runtimes_}


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


@pytest.mark.timeout(180)  # the first use of an interpreter may install msgspec for it
@pytest.mark.parametrize("runtime", ["python3.9", "python3.10", "python3.12", "python3.13"])
async def test_the_worker_runs_on_the_runtimes_interpreter(make_scheduler: MakeScheduler, runtime: str) -> None:
    found = _interpreters(runtime)
    s = await make_scheduler(
        fn("v", "versions.report", runtime=runtime),
        fn("raises", "faults.raise_error", runtime=runtime),
        fn("syntax", "syntaxerror.handler", runtime=runtime),
        runtime_interpreters=found,
    )
    cold, warm = await s.invoke("v", {}), await s.invoke("v", {})
    first = _body(cold)
    assert ".".join(map(str, first["version"][:2])) == runtime.removeprefix("python")
    assert first["execution_env"] == f"AWS_Lambda_{runtime}"
    # Through a folder holding only a link to the package, not the server's site-packages.
    assert re.search(r"/package-[0-9a-f]{12}/scheduler/__init__\.py$", first["worker"]), first["worker"]
    assert (cold.start, warm.start, _body(warm)["pid"]) == ("cold", "warm", first["pid"])
    assert re.search(r"\[WARNING\]\t\S+\t\S+\trunning on " + runtime.removeprefix("python"), cold.log)
    assert "Init Duration:" in cold.log and "REPORT RequestId:" in warm.log and "Init Duration" not in warm.log
    raised = await s.invoke("raises", {})
    assert raised.error_type == "KeyError"
    assert _body(raised)["errorMessage"] == "'action'" and _body(raised)["stackTrace"]
    broken = await s.invoke("syntax", {})
    assert broken.error_type == "Runtime.UserCodeSyntaxError"
    assert re.fullmatch(r"Syntax error in module 'syntaxerror': .+ \(syntaxerror\.py, line 1\)", _body(broken)["errorMessage"])


@pytest.mark.timeout(180)
async def test_two_runtimes_warm_at_once_on_a_zygote_each(make_scheduler: MakeScheduler) -> None:
    found = _interpreters("python3.12", "python3.13")
    s = await make_scheduler(
        fn("own", "versions.report"),  # python3.11: the server's own interpreter here
        fn("a12", "versions.report", runtime="python3.12"),
        fn("b12", "versions.report", runtime="python3.12"),
        fn("c13", "versions.report", runtime="python3.13"),
        runtime_interpreters=found,
    )
    names = ("own", "a12", "b12", "c13")
    cold = [_body(r) for r in await asyncio.gather(*(s.invoke(n, {}) for n in names))]
    warm = await asyncio.gather(*(s.invoke(n, {}) for n in names))
    assert [r.start for r in warm] == ["warm"] * 4
    assert [_body(r)["pid"] for r in warm] == [c["pid"] for c in cold]
    assert [tuple(c["version"][:2]) for c in cold] == [sys.version_info[:2], (3, 12), (3, 12), (3, 13)]
    zygotes = {z.python: z.pid for z in s.zygotes if z.alive}
    assert len(zygotes) == 3  # the server's, one for 3.12 (shared by a12 and b12), one for 3.13
    assert {c["parent"] for c in cold} == set(zygotes.values())
    assert cold[1]["parent"] == cold[2]["parent"] == zygotes[cold[1]["executable"]]
    assert all(_parent(c["pid"]) == c["parent"] for c in cold)


@pytest.mark.timeout(180)
async def test_losing_one_interpreters_zygote_leaves_the_others_warm(make_scheduler: MakeScheduler) -> None:
    found = _interpreters("python3.12")
    s = await make_scheduler(fn("own", "versions.report"), fn("other", "versions.report", runtime="python3.12"), runtime_interpreters=found)
    own, other = _body(await s.invoke("own", {})), _body(await s.invoke("other", {}))
    [env] = s.environments("other")
    os.kill(other["parent"], signal.SIGKILL)  # the 3.12 zygote: its environments die with it
    await asyncio.wait_for(env.wait_exited(), 5)
    again = await s.invoke("other", {})
    assert again.start == "cold" and _body(again)["version"][:2] == [3, 12] and _body(again)["parent"] != other["parent"]
    warm = await s.invoke("own", {})
    assert warm.start == "warm" and _body(warm)["pid"] == own["pid"] and s.zygote.pid == own["parent"]


async def test_a_runtime_without_interpreter_runs_on_the_servers_with_a_warning(
    make_scheduler: MakeScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lambda_scheduler"):
        s = await make_scheduler(fn("f", "versions.report", runtime="python3.12"), runtime_interpreters={"python3.12": MISSING})
    warning = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("function f:"))
    assert f"runtime python3.12 runs on Python {OWN} ({sys.executable}) instead" in warning
    assert f"{MISSING} does not start" in warning and "--runtime python3.12=PATH" in warning
    body = _body(await s.invoke("f", {}))
    assert tuple(body["version"]) == sys.version_info[:3] and body["execution_env"] == "AWS_Lambda_python3.12"


async def test_strict_runtime_refuses_the_function(
    make_scheduler: MakeScheduler, make_server: MakeServer, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeUnavailable, match=r"^Runtime python3.12 cannot run here: /nonexistent/bin/python3.12 does not start"):
        await make_scheduler(
            fn("f", "versions.report", runtime="python3.12"), runtime_interpreters={"python3.12": MISSING}, strict_runtime=True
        )
    served = await make_server(runtime_interpreters={"python3.12": MISSING}, strict_runtime=True)
    client = served.client()
    args = {"Role": ROLE, "Handler": "app.handler", "Code": {"ZipFile": marking_zip()}}
    with pytest.raises(ClientError) as refused:
        await aws(client.create_function, FunctionName="f", Runtime="python3.12", **args)
    error = refused.value.response["Error"]
    assert (refused.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"]) == (400, "InvalidParameterValueException")
    assert error["Message"].startswith("Runtime python3.12 cannot run here: ")
    assert "serve without --strict-runtime to run it on Python" in error["Message"]
    assert "f" not in served.scheduler.functions
    # The AWS CLI shows the same: its process runs beside this test's loop, which serves it.
    (tmp_path / "f.zip").write_bytes(marking_zip())
    cli = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("aws")), "lambda", "create-function", "--endpoint-url", served.url,
        "--function-name", "cli", "--runtime", "python3.12", "--role", ROLE, "--handler", "app.handler",
        "--zip-file", f"fileb://{tmp_path / 'f.zip'}",
        env={**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode != 0
    assert "(InvalidParameterValueException) when calling the CreateFunction operation: Runtime python3.12 cannot run here" in err.decode()
    await aws(client.create_function, FunctionName="g", Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}", **args)
    with pytest.raises(ClientError) as moved:
        await aws(client.update_function_configuration, FunctionName="g", Runtime="python3.12")
    assert moved.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert served.scheduler.functions["g"].config.runtime != "python3.12"


async def test_runtimes_lambda_does_not_accept_are_refused_with_its_text(make_server: MakeServer) -> None:
    text = (
        "The runtime parameter of python3.8 is no longer supported for creating or updating AWS Lambda functions. "
        "We recommend you use a supported runtime while creating or updating functions."
    )
    with pytest.raises(UnsupportedRuntime) as refused:
        FunctionConfig(name="f", handler="app.handler", code_dir=FUNCTIONS, runtime="python3.8")
    assert refused.value.message == text
    client = (await make_server()).client()
    with pytest.raises(ClientError) as api:
        await aws(
            client.create_function, FunctionName="f", Runtime="python3.8", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": marking_zip()},
        )  # fmt: skip
    assert (api.value.response["Error"]["Code"], api.value.response["Error"]["Message"]) == ("InvalidParameterValueException", text)


@pytest.mark.timeout(180)
async def test_the_sandbox_binds_the_interpreter_back_read_only(make_scheduler: MakeScheduler) -> None:
    python = _interpreters("python3.12")["python3.12"]
    prefix = str(Path(python).resolve().parent.parent)
    s = await make_scheduler(
        fn("p", "sandbox.probe", runtime="python3.12"),
        fn("ro", "versions.read_only", runtime="python3.12"),
        runtime_interpreters={"python3.12": python},
    )
    if os.geteuid() != 0 or s.isolation.describe()["tmp"] != "tmpfs-namespace":
        pytest.skip("needs root and a mount namespace: no private view otherwise")
    event = {"read": [f"{prefix}/lib/python3.12/os.py"], "write": [f"{prefix}/planted", f"{prefix}/bin/python3.12"]}
    closed = next((str(p) for p in Path(prefix).parents if p != Path("/") and not p.stat().st_mode & 0o001), None)
    if closed is not None:
        event["list"] = [closed]
    out = _body(await s.invoke("p", event))
    assert out["read"][f"{prefix}/lib/python3.12/os.py"].startswith("read:")
    assert set(out["write"].values()) <= {"EROFS", "EACCES"}, out["write"]
    assert not os.path.exists(f"{prefix}/planted")
    site = s.runtimes.choose("python3.12").interpreter.site
    paths = [prefix, *([site] if site else [])]
    assert not any(os.statvfs(p).f_flag & os.ST_RDONLY for p in paths)  # writable on the host...
    assert _body(await s.invoke("ro", {"paths": paths})) == dict.fromkeys(paths, True)  # ...bound read-only
    if closed is not None:  # /root: only what environments need of it is in their view
        visible = set(out["list"][closed])
        assert visible and visible <= {Path(prefix).relative_to(closed).parts[0], ".cache"}, visible


@pytest.mark.timeout(300)
def test_msgspec_is_installed_once_into_a_folder_of_its_own(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    python = _interpreters("python3.13")["python3.13"]
    if runtimes.probe(python).has_msgspec:
        pytest.skip(f"{python} has msgspec of its own")
    settings = SchedulerConfig(runtime_interpreters={"python3.13": python}, runtime_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lambda_scheduler.runtimes"):
        choice = runtimes.Runtimes(settings).choose("python3.13")
        again = runtimes.Runtimes(settings).choose("python3.13")  # another server: nothing to install
    assert choice.match is runtimes.Match.EXACT and choice.interpreter.site == again.interpreter.site
    installs = [r.getMessage() for r in caplog.records if "installing" in r.getMessage()]
    assert len(installs) == 1 and "cannot import msgspec" in installs[0] and "with pip" in installs[0]
    site = Path(choice.interpreter.site or "")
    assert site.parent == tmp_path and (site / "msgspec").is_dir() and site.stat().st_mode & 0o005 == 0o005
    imported = subprocess.run(
        [python, "-E", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); import msgspec; print(msgspec.__file__)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert imported.stdout.startswith(str(site))
    assert workersite.folder_for(python, choice.interpreter.release, tmp_path) == site


def test_runtime_flags_and_variables(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["serve", "--runtime", "python3.12=/opt/py312/bin/python", "--runtime", "python3.13=/opt/py313/bin/python", "--strict-runtime"]
    )
    scheduler, _server = configs(args)
    assert scheduler.runtime_interpreters == (("python3.12", "/opt/py312/bin/python"), ("python3.13", "/opt/py313/bin/python"))
    assert scheduler.strict_runtime is True
    monkeypatch.setenv("LAMBDA_SCHEDULER_RUNTIME", "python3.10=/opt/py310/bin/python")
    monkeypatch.setenv("LAMBDA_SCHEDULER_STRICT_RUNTIME", "off")
    scheduler, _server = configs(build_parser().parse_args(["serve"]))
    assert (scheduler.runtime_interpreters, scheduler.strict_runtime) == ((("python3.10", "/opt/py310/bin/python"),), False)
    monkeypatch.delenv("LAMBDA_SCHEDULER_RUNTIME")
    assert main(["serve", "--runtime", "python3.12"]) == 2
    assert "--runtime: cannot read 'python3.12'" in capsys.readouterr().err
    assert main(["serve", "--runtime", "python3.7=/usr/bin/python3"]) == 2
    assert "--runtime: python3.7 is not one of python3.9" in capsys.readouterr().err


@pytest.mark.timeout(180)
def test_the_runtimes_command_prepares_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    python = _interpreters("python3.12")["python3.12"]
    assert main(["runtimes", "python3.12", "--runtime", f"python3.12={python}"]) == 0
    out = capsys.readouterr().out
    assert re.match(rf"python3\.12\s+Python 3\.12\.\d+\s+{re.escape(python)}", out), out
    assert main(["runtimes", "python3.12", "--runtime", f"python3.12={MISSING}"]) == 1
    assert f"python3.12  none here: {MISSING} does not start" in capsys.readouterr().out


def _template(folder: Path) -> Path:
    (folder / "code").mkdir()
    (folder / "code" / "app.py").write_text("import sys\n\ndef handler(event, context):\n    return list(sys.version_info)\n")
    template = folder / "template.yaml"
    template.write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: code, Handler: app.handler, Runtime: python3.12}\n"
    )
    return template


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}


@pytest.mark.timeout(90)
def test_serve_warns_of_or_refuses_a_runtime_it_cannot_run(tmp_path: Path) -> None:
    template = _template(tmp_path)
    flags = [str(template), "--port", "0", "--runtime", f"python3.12={MISSING}"]
    done = subprocess.run(
        [COMMAND, "serve", *flags, "--strict-runtime"], env=_clean_env(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "error: template: function Fn: Runtime python3.12 cannot run here: " in done.stderr.decode()
    server = Server(flags, _clean_env(), tmp_path / "stderr")
    try:
        log = (tmp_path / "stderr").read_text()
        assert f"function Fn: runtime python3.12 runs on Python {OWN}" in log
    finally:
        server.stop()


def test_an_interpreter_that_cannot_be_prepared_is_substituted(tmp_path: Path) -> None:
    python = _interpreters("python3.13")["python3.13"]
    if runtimes.probe(python).has_msgspec:
        pytest.skip(f"{python} has msgspec of its own: nothing to prepare")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings = SchedulerConfig(runtime_interpreters={"python3.13": python}, runtime_dir=str(blocked))
    choice = runtimes.Runtimes(settings).choose("python3.13")
    assert choice.match is runtimes.Match.SUBSTITUTE and choice.interpreter.executable == sys.executable
    assert choice.reason.startswith(f"cannot prepare {blocked} for {python}")


@pytest.mark.timeout(180)
async def test_create_and_update_over_the_api_choose_the_interpreter(make_server: MakeServer) -> None:
    found = _interpreters("python3.12", "python3.13")
    served = await make_server(runtime_interpreters=found)
    client = served.client()
    code = {"ZipFile": _zip("import sys\n\ndef handler(event, context):\n    return list(sys.version_info[:2])\n")}
    await aws(client.create_function, FunctionName="f", Runtime="python3.12", Role=ROLE, Handler="app.handler", Code=code)
    assert json.loads((await aws(client.invoke, FunctionName="f"))["Payload"]) == [3, 12]
    updated = await aws(client.update_function_configuration, FunctionName="f", Runtime="python3.13")
    assert updated["Runtime"] == "python3.13"
    assert json.loads((await aws(client.invoke, FunctionName="f"))["Payload"]) == [3, 13]


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()
