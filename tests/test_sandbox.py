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
from scheduler.config import SchedulerConfig
from scheduler.engine.isolation import view
from scheduler.engine.isolation.manager import Isolation
from scheduler.server import settings_for
from scheduler.template import load_template

from .conftest import FUNCTIONS, SHARED_PATHS, MakeScheduler, MakeServer, aws, fn

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


# --- private roots: world-readable folders hidden all the same ------------------------------

_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
Resources:
  A:
    Type: AWS::Serverless::Function
    Properties: {FunctionName: a, CodeUri: a/, Handler: pkg.handlers.probe, Layers: [!Ref Layer]}
  B:
    Type: AWS::Serverless::Function
    Properties: {FunctionName: b, CodeUri: b/, Handler: sandbox.probe}
  Whole:
    Type: AWS::Serverless::Function
    Properties: {FunctionName: whole, CodeUri: ., Handler: sandbox.probe}
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layer/}
"""


def _open_project(tmp_path: Path) -> Path:
    """The private tree's layout, but world-readable throughout (a project checkout), with a
    real template and a third function whose code is the template's folder (CodeUri: .)."""
    project = _private_tree(tmp_path)
    project.chmod(0o755)
    (project / "template.yaml").write_text(_TEMPLATE)
    shutil.copy(FUNCTIONS / "sandbox.py", project / "sandbox.py")
    for path in (project / "template.yaml", project / "sandbox.py"):
        path.chmod(0o644)
    return project


@pytest.mark.timeout(60)
async def test_a_world_readable_template_folder_shows_a_function_only_its_own_code(
    make_scheduler: MakeScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _open_project(tmp_path)
    template = load_template(project / "template.yaml")
    settings = settings_for(template, SchedulerConfig())  # what ``serve`` runs with
    assert settings.private_paths == (str(project),)
    # Only the template's folder hides here: neither the checkout (the scheduler's source,
    # hidden on its own, tested below) nor the tests' shared folder (shown as it is).
    monkeypatch.setattr(view, "source_checkout", lambda: None)
    s = await make_scheduler(*template.functions, private_paths=settings.private_paths, shared_paths=())
    _sandboxed(s)
    secrets = [str(project / "template.yaml"), str(project / "a" / "secret.txt"), str(project / "b" / "secret.txt")]
    event = {"read": secrets, "list": [str(project), str(project / "b")], "imports": ["layermod"]}
    a = _json(await s.invoke("a", event))  # the dotted handler, from its package, with its layer
    _no_capabilities(a["status"])
    assert a["imports"]["layermod"] == str(project / "layer" / "python" / "layermod.py")
    assert [a["read"][p] for p in secrets] == ["ENOENT", "read:code of a\n", "ENOENT"]
    assert a["list"] == {str(project): ["a", "layer"], str(project / "b"): "ENOENT"}
    b = _json(await s.invoke("b", event))
    assert [b["read"][p] for p in secrets] == ["ENOENT", "ENOENT", "read:code of b\n"]
    assert b["list"][str(project)] == ["b"] and b["imports"]["layermod"].startswith("ModuleNotFoundError")
    # CodeUri: . — the template's folder is this function's code: all of it, template included.
    whole = _json(await s.invoke("whole", event))
    assert [whole["read"][p][:5] for p in secrets] == ["read:"] * 3
    assert whole["list"][str(project)] == sorted(p.name for p in project.iterdir())


@pytest.mark.timeout(60)
async def test_the_schedulers_checkout_shows_only_its_package_and_the_shared_folder(
    make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    checkout = view.source_checkout()
    if checkout is None:
        pytest.skip("the scheduler is installed, not run from a source checkout")
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(FUNCTIONS / "sandbox.py", code / "sandbox.py")
    s = await make_scheduler(FunctionConfig(name="c", handler="sandbox.probe", code_dir=code))  # shared: the tests'
    _sandboxed(s)
    root = Path(checkout)
    hidden = [root / "README.md", root / ".git" / "HEAD", root / "pyproject.toml", FUNCTIONS / "basic.py"]
    out_file = tmp_path / "out.txt"
    event = {
        "read": [*map(str, hidden), str(root / "scheduler" / "__init__.py")],
        "list": [str(root), str(root / "tests")],
        "write": [str(out_file), str(root / "scheduler" / "planted.py")],
        "imports": ["msgspec", "scheduler.arn"],  # the venv; a module of the package not yet loaded
    }
    out = _json(await s.invoke("c", event))
    assert [out["read"][str(p)] for p in hidden] == ["ENOENT"] * len(hidden)
    assert out["read"][str(root / "scheduler" / "__init__.py")].startswith("read:")
    # What is left of the checkout: the package, the shared folder's way, the venv if it is in it.
    kept = {"scheduler"}
    if Path(SHARED_PATHS[0]).is_relative_to(root):
        kept.add(Path(SHARED_PATHS[0]).relative_to(root).parts[0])
    if Path(sys.prefix).resolve().is_relative_to(root):
        kept.add(Path(sys.prefix).resolve().relative_to(root).parts[0])
    assert out["list"] == {str(root): sorted(kept), str(root / "tests"): "ENOENT"}
    assert out["imports"]["msgspec"].startswith(sys.prefix)
    assert out["imports"]["scheduler.arn"] == str(root / "scheduler" / "arn.py")
    # The shared folder is writable as on the host; the package is read-only.
    assert out["write"] == {str(out_file): "written", str(root / "scheduler" / "planted.py"): "EROFS"}
    assert out_file.read_text() == f"written by {out['uid']}\n"


def test_private_roots_keep_the_topmost_and_never_a_system_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule (no root needed): configured folders, every function's code and layers, the
    checkout — nested ones folded into the topmost, never / or a system folder."""
    project = _open_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(view, "source_checkout", lambda: str(tmp_path / "checkout"))
    iso = Isolation(SchedulerConfig(private_paths=("/", "/usr/share", str(project)), shared_paths=(str(tmp_path),)))
    layer = (str(project / "layer"),)
    iso.set_function("a", FunctionConfig(name="a", handler="x.y", code_dir=project / "a", layers=layer))
    iso.set_function("e", FunctionConfig(name="e", handler="x.y", code_dir=elsewhere))
    checkout = str(tmp_path / "checkout")
    assert iso._view_layout() == (sorted([checkout, str(elsewhere), str(project)]), [str(tmp_path)])
    iso.set_function("e", None)  # removed: its folder is nobody's code any more
    assert iso._view_layout()[0] == sorted([checkout, str(project)])


def test_the_view_plan_for_nested_code_and_shared_folders(tmp_path: Path) -> None:
    """How covers are chosen (no root needed: planning only looks)."""
    outer = tmp_path / "outer"  # one function's code, holding another's
    inner = outer / "inner"
    shared = outer / "exchange"
    for path in (inner, shared / "deep"):
        path.mkdir(parents=True)
    hidden = (str(outer), str(inner), str(shared / "deep"))

    def covers(own: list[Path], layout: view.Layout) -> dict[str, tuple[list[str], list[str]]]:
        planned = view.plan(map(str, own), layout)
        return {c.path: (c.binds, c.shared) for c in planned if not c.scratch}

    layout = view.Layout(hidden=hidden)
    # The inner function: the outer folder hides all but its code.
    assert covers([inner], layout)[str(outer)] == ([str(inner)], [])
    # The outer one needs the whole folder: no cover there, nor on what is inside it.
    assert not any(view._under(p, str(outer)) for p in covers([outer], layout))
    # A shared folder inside a private root is bound back as it is; no root inside it hides.
    with_shared = view.Layout(hidden=hidden, shared=(str(shared),))
    planned = covers([inner], with_shared)
    assert planned[str(outer)] == ([str(inner)], [str(shared)])
    assert str(shared / "deep") not in planned
