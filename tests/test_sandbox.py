"""What a function can touch: no capability at all, a filesystem view holding only what it
needs (the interpreter, its import path, its own code and layers), nothing of the scheduler's
or of other functions' — for code from a template in a private folder and for uploaded zips —
and the fallback, which keeps the server's user."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from scheduler import FunctionConfig, Scheduler

from .conftest import FUNCTIONS, MakeScheduler, MakeServer, aws, fn

ROOT = os.geteuid() == 0
ZERO = "0000000000000000"
CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def _json(result: Any) -> dict[str, Any]:
    return json.loads(result.payload)  # type: ignore[no-any-return]


def _sandboxed(s: Scheduler) -> None:
    """Skip unless this host gives environments their own uid and mount namespace."""
    if not ROOT:
        pytest.skip("needs root: environments keep the server's user otherwise")
    if s.isolation.describe()["tmp"] != "tmpfs-namespace":
        pytest.skip("this host allows no mount namespace, so no private view")


def _no_capabilities(status: dict[str, str]) -> None:
    assert {k: status[k] for k in CAP_SETS} == dict.fromkeys(CAP_SETS, ZERO), status
    assert status["NoNewPrivs"] == "1"


def _private_tree(tmp_path: Path) -> Path:
    """A template-like layout in a folder closed to others (0700): the template, two
    functions' code (a: with a dotted handler package, b), and a layer."""
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    (private / "template.yaml").write_text("secret: the scheduler's template\n")
    for name in ("a", "b"):
        code = private / name
        (code / "pkg").mkdir(parents=True)
        shutil.copy(FUNCTIONS / "sandbox.py", code / "sandbox.py")
        (code / "pkg" / "__init__.py").write_text("")
        (code / "pkg" / "handlers.py").write_text("from sandbox import probe\n")
        (code / "secret.txt").write_text(f"code of {name}\n")
    layer = private / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "layermod.py").write_text("VALUE = 'from the layer'\n")
    for path in [private / "a", private / "b", private / "layer", layer, *private.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return private


def _interpreter_under_root() -> list[str]:
    """What ``/root`` must show: the path to the interpreter if it lives there, else nothing."""
    base = os.path.realpath(sys.base_prefix)
    return [base.split("/")[2]] if base.startswith("/root/") else []


@pytest.mark.timeout(60)
async def test_template_code_in_a_private_folder_runs_with_no_capability(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    private = _private_tree(tmp_path)
    s = await make_scheduler(
        FunctionConfig(name="a", handler="pkg.handlers.probe", code_dir=private / "a", layers=(str(private / "layer"),))
    )
    _sandboxed(s)
    out = _json(await s.invoke("a", {"child": True, "imports": ["layermod", "msgspec", "xml.dom.minidom", "sqlite3"]}))
    assert out["uid"] >= 50_000
    _no_capabilities(out["status"])
    _no_capabilities(json.loads(out["child"]))  # a Python the handler starts gets none either
    imports = out["imports"]
    assert imports["layermod"] == str(private / "layer" / "python" / "layermod.py")
    assert imports["msgspec"].startswith(sys.prefix), imports  # the venv
    assert imports["xml.dom.minidom"].startswith(os.path.realpath(sys.base_prefix)), imports  # the stdlib
    assert imports["sqlite3"].startswith(os.path.realpath(sys.base_prefix)), imports


@pytest.mark.timeout(60)
async def test_a_function_sees_nothing_but_what_it_needs(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    private = _private_tree(tmp_path)
    s = await make_scheduler(
        FunctionConfig(name="a", handler="sandbox.probe", code_dir=private / "a", layers=(str(private / "layer"),)),
        FunctionConfig(name="b", handler="sandbox.probe", code_dir=private / "b"),
    )
    _sandboxed(s)
    b = _json(await s.invoke("b"))
    event = {
        "read": [
            "/etc/shadow",
            str(private / "template.yaml"),
            str(private / "b" / "secret.txt"),
            str(private / "a" / "secret.txt"),
            f"/proc/{os.getpid()}/root/etc/hostname",  # the scheduler's view, through /proc
            f"/proc/{s.zygote.pid}/root/etc/hostname",
            f"/proc/{b['pid']}/root/etc/hostname",  # another function's environment
            "/proc/1/root/etc/hostname",
        ],
        "list": [
            "/root",
            str(private),
            f"/proc/{os.getpid()}/root/",
            f"/proc/{os.getpid()}/fd",
            f"/proc/{s.zygote.pid}/cwd/",
        ],
        "signal": [os.getpid(), s.zygote.pid, b["pid"]],
        "fds": True,
    }
    out = _json(await s.invoke("a", event))
    assert out["uid"] != b["uid"]
    read = out["read"]
    assert read["/etc/shadow"] == "EACCES"  # its mode forbids others, and no capability overrides it
    assert read[str(private / "template.yaml")] == "ENOENT"  # not in the view at all
    assert read[str(private / "b" / "secret.txt")] == "ENOENT"
    assert read[str(private / "a" / "secret.txt")] == "read:code of a\n"
    for path in event["read"][4:]:
        assert read[path] in ("EACCES", "EPERM"), (path, read[path])
    listed = out["list"]
    assert listed["/root"] == (_interpreter_under_root() or "EACCES")
    assert listed[str(private)] == ["a", "layer"]  # a tmpfs holding only its own code and layer
    for path in event["list"][2:]:
        assert listed[path] in ("EACCES", "EPERM"), (path, listed[path])
    assert set(out["signal"].values()) == {"EPERM"}
    # Descriptors: the standard three, the control pipes, runtime's /dev/null stdin, and the
    # one listing /proc/self/fd — none open on a directory outside the view.
    targets = [t for t in out["fds"].values() if not t.startswith(("pipe:", "/dev/null")) and t != "ENOENT"]
    assert targets == [], out["fds"]


@pytest.mark.timeout(60)
async def test_an_uploaded_function_sees_only_its_own_revision(make_server: MakeServer) -> None:
    served = await make_server()
    _sandboxed(served.scheduler)
    client = served.client()
    code = _zip({"sandbox.py": (FUNCTIONS / "sandbox.py").read_text(), "lib/helper.py": "X = 1\n"})
    for name in ("up1", "up2"):
        await aws(
            client.create_function,
            FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/any",
            Handler="sandbox.probe", Code={"ZipFile": code},
        )  # fmt: skip
    up1 = Path(str(served.scheduler.functions["up1"].config.code_dir))
    up2 = Path(str(served.scheduler.functions["up2"].config.code_dir))
    store_root = up1.parent.parent
    assert stat.S_IMODE(store_root.stat().st_mode) == 0o700
    event = {
        "read": [str(up2 / "sandbox.py"), str(up1 / "lib" / "helper.py")],
        "list": [str(store_root), str(up1.parent)],
    }
    response = await aws(client.invoke, FunctionName="up1", Payload=json.dumps(event))
    out = json.loads(response["Payload"])
    assert "FunctionError" not in response, out
    _no_capabilities(out["status"])
    assert out["read"][str(up2 / "sandbox.py")] == "ENOENT"
    assert out["read"][str(up1 / "lib" / "helper.py")] == "read:X = 1\n"
    assert out["list"][str(store_root)] == ["up1"] and out["list"][str(up1.parent)] == [up1.name]


@pytest.mark.timeout(60)
async def test_root_without_sandbox_uids_still_holds_no_capability(make_scheduler: MakeScheduler) -> None:
    s = await make_scheduler(fn("p", "sandbox.probe"), sandbox_uid_base=None)
    _sandboxed(s)
    assert s.isolation.describe()["user"] == "root-without-capabilities"
    out = _json(await s.invoke("p", {"list": ["/root"], "signal": [s.zygote.pid]}))
    assert out["uid"] == 0
    _no_capabilities(out["status"])
    assert out["list"]["/root"] == (_interpreter_under_root() or [])  # root owns /root, but the view hides it
    # The limits: still uid 0, so it may signal root's processes and read root's files.
    assert out["signal"][str(s.zygote.pid)] == "allowed"


@pytest.mark.timeout(60)
async def test_code_closed_to_others_is_reported(
    make_scheduler: MakeScheduler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    shutil.copy(FUNCTIONS / "sandbox.py", closed / "sandbox.py")
    closed.chmod(0o700)  # the folder itself, not only a parent: no view can make it readable
    s = await make_scheduler(FunctionConfig(name="c", handler="sandbox.probe", code_dir=closed))
    _sandboxed(s)
    result = await s.invoke("c")
    assert result.error_type == "Runtime.ExitError"  # it cannot even enter its task root
    assert any(f"{closed} is not readable by other users" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(60)
async def test_the_fallback_keeps_the_servers_user(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    private = _private_tree(tmp_path)
    s = await make_scheduler(
        FunctionConfig(
            name="a", handler="pkg.handlers.probe", code_dir=private / "a", layers=(str(private / "layer"),)
        ),
        isolation="fallback",
    )
    assert s.isolation.describe()["user"] == "unchanged"
    out = _json(await s.invoke("a", {"imports": ["layermod", "msgspec"], "read": [str(private / "template.yaml")]}))
    assert out["uid"] == os.getuid()
    assert out["imports"]["layermod"].endswith("layermod.py")
    # The documented limit: the fallback reads whatever the server can.
    assert out["read"][str(private / "template.yaml")].startswith("read:")


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o600) << 16  # 0600 in the zip: made readable on unpack
            archive.writestr(info, text)
    return buffer.getvalue()
