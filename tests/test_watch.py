"""``serve --watch``: editing a function's code folder or layer reloads only that function (the
next invocation runs the new code, the other function keeps its warm environment); a syntax
error is the invocation's Runtime.UserCodeSyntaxError and fixing it recovers; bytecode and
editor temp files reload nothing; a changed template moves whole functions, or asks for a
restart. And the engine's side: a reload retires a busy environment only after its invocation."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scheduler import template_reload
from scheduler.engine.environment import EnvState
from scheduler.inotify import IN_CLOSE_WRITE, Change
from scheduler.template import Template
from scheduler.watch import CodeWatcher, drop_stale_bytecode, ignored

from . import interpreters
from .conftest import MakeScheduler, aws, fn, lambda_client, until
from .serving import Server

OWN_RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
HANDLER = 'import os\nimport shared\n\ndef handler(event, context):\n    return {{"v": "{v}", "layer": shared.V, "pid": os.getpid()}}\n'
OTHER = (
    'import os, sys\n\ndef handler(event, context):\n'
    '    return {{"v": "{v}", "py": list(sys.version_info[:2]), "pid": os.getpid(), "greeting": os.environ.get("GREETING")}}\n'
)


def _template_text(other_runtime: str, b_extra: str = "", more: str = "") -> str:
    return (
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Shared:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: layer}\n"
        f"  A:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: a, Handler: app.handler, Runtime: {OWN_RUNTIME}, Layers: [!Ref Shared]}}\n"
        f"  B:\n    Type: AWS::Serverless::Function\n    Properties: {{CodeUri: b, Handler: app.handler, Runtime: {other_runtime}{b_extra}}}\n"
        + more
    )


def _tree(folder: Path, other_runtime: str) -> Path:
    """A template: function A (the server's runtime, with a layer) and B (another runtime)."""
    for sub in ("a", "b", "layer/python"):
        (folder / sub).mkdir(parents=True)
    (folder / "a" / "app.py").write_text(HANDLER.format(v="a1"))
    (folder / "b" / "app.py").write_text(OTHER.format(v="b1"))
    (folder / "layer" / "python" / "shared.py").write_text('V = "l1"\n')
    template = folder / "template.yaml"
    template.write_text(_template_text(other_runtime))
    return template


class Watched:
    """A ``serve --watch`` subprocess on ``_tree``, and its log."""

    def __init__(self, folder: Path) -> None:
        python = interpreters.find("python3.12")
        self.runtime = "python3.12" if python else OWN_RUNTIME  # B on another zygote where the host allows
        self.folder = folder
        self.template = _tree(folder / "app", self.runtime)
        flags = ["--runtime", f"python3.12={python}"] if python else []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
        self.log = folder / "stderr"
        self.server = Server([str(self.template), "--port", "0", "--watch", *flags], env, self.log)
        self.client = lambda_client(self.server.url)

    async def invoke(self, name: str) -> tuple[dict[str, Any], str | None]:
        response = await aws(self.client.invoke, FunctionName=name, Payload=b"{}")
        return json.loads(response["Payload"]), response.get("FunctionError")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log.read_text()))

    async def logged(self, pattern: str, times: int) -> None:
        """Until the server has logged ``pattern`` ``times`` times (the reload is done then)."""
        await until(lambda: self.count(pattern) >= times, timeout=20)

    def write(self, relative: str, text: str) -> None:
        """Replace a file in one step (a rename from outside the watched folders), as editors
        that save atomically do: one event, so exactly one reload however loaded the host is."""
        staged = self.folder / "staged"
        staged.write_text(text)
        os.replace(staged, self.template.parent / relative)


@pytest.fixture
def watched(tmp_path: Path) -> Any:
    served = Watched(tmp_path)
    yield served
    assert served.server.stop() == 0


@pytest.mark.timeout(120)
async def test_an_edit_reloads_only_that_function(watched: Watched) -> None:
    a, _ = await watched.invoke("A")
    b, _ = await watched.invoke("B")
    assert (a["v"], a["layer"], b["v"]) == ("a1", "l1", "b1")
    before = await aws(watched.client.get_function_configuration, FunctionName="A")
    watched.write("a/app.py", HANDLER.format(v="a2"))  # same size, likely the same second: no stale bytecode
    await watched.logged(r"reloaded A: \S+/a/app\.py changed", 1)
    a2, _ = await watched.invoke("A")
    assert (a2["v"], a2["layer"]) == ("a2", "l1") and a2["pid"] != a["pid"]
    after = await aws(watched.client.get_function_configuration, FunctionName="A")
    assert after["CodeSha256"] != before["CodeSha256"] and after["RevisionId"] != before["RevisionId"]
    assert (await watched.invoke("B"))[0]["pid"] == b["pid"]  # still warm
    watched.write("layer/python/shared.py", 'V = "l2"\n')
    await watched.logged(r"reloaded A: \S+/layer/python/shared\.py changed", 1)
    assert (await watched.invoke("A"))[0]["layer"] == "l2"
    # Files no import reads: nothing reloads. Then a change to B, reloaded alone.
    watched.write("a/.app.py.swp", "vim swap")
    watched.write("a/app.py~", "backup")
    (watched.template.parent / "a" / "__pycache__").mkdir(exist_ok=True)
    watched.write("a/__pycache__/app.cpython-311.pyc", "bytecode")
    watched.write("b/app.py", OTHER.format(v="b2"))
    await watched.logged(r"reloaded B:", 1)
    assert watched.count(r"reloaded A:") == 2, watched.log.read_text()
    b2, _ = await watched.invoke("B")
    assert b2["v"] == "b2" and b2["pid"] != b["pid"]
    watched.write("template.yaml", watched.template.read_text() + "# a comment\n")
    await watched.logged(r"template reloaded: its functions are unchanged", 1)
    assert (await watched.invoke("B"))[0]["pid"] == b2["pid"]  # nothing restarted


@pytest.mark.timeout(120)
async def test_a_syntax_error_is_the_invocations_error_until_it_is_fixed(watched: Watched) -> None:
    assert (await watched.invoke("A"))[0]["v"] == "a1"
    watched.write("a/app.py", "import shared\n\ndef handler(event, context)\n    return 1\n")
    await watched.logged(r"reloaded A:", 1)
    body, error = await watched.invoke("A")
    assert error == "Unhandled" and body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert re.fullmatch(r"Syntax error in module 'app': .+ \(app\.py, line 3\)", body["errorMessage"]), body
    assert body["requestId"] == "" and "def handler(event, context)" in body["stackTrace"][0]
    assert (await watched.invoke("B"))[0]["v"] == "b1"  # the server is up, the others unaffected
    watched.write("a/app.py", HANDLER.format(v="fixed"))
    await watched.logged(r"reloaded A:", 2)
    assert (await watched.invoke("A"))[0]["v"] == "fixed"
    # The folder replaced whole (a branch switch): reloaded, and its new files watched too.
    app = watched.template.parent
    (watched.folder / "next").mkdir()
    (watched.folder / "next" / "app.py").write_text(HANDLER.format(v="swapped"))
    os.rename(app / "a", watched.folder / "previous")
    os.rename(watched.folder / "next", app / "a")
    await watched.logged(r"reloaded A:", 3)
    assert (await watched.invoke("A"))[0]["v"] == "swapped"
    watched.write("a/app.py", HANDLER.format(v="after"))
    await watched.logged(r"reloaded A: \S+/a/app\.py changed", 3)
    assert (await watched.invoke("A"))[0]["v"] == "after"


@pytest.mark.timeout(120)
async def test_a_changed_template_moves_whole_functions_or_asks_for_a_restart(watched: Watched) -> None:
    a, _ = await watched.invoke("A")
    b, _ = await watched.invoke("B")
    assert b["greeting"] is None
    added = "  C:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: a, Handler: app.handler, Layers: [!Ref Shared], Runtime: " + OWN_RUNTIME + "}\n"
    watched.write("template.yaml", _template_text(watched.runtime, ", Environment: {Variables: {GREETING: hi}}", added))
    await watched.logged(r"template reloaded: C: added", 1)
    assert watched.count(r"template reloaded: B: updated") == 1 and watched.count(r"template reloaded: A:") == 0
    b2, _ = await watched.invoke("B")
    assert b2["greeting"] == "hi" and b2["pid"] != b["pid"]
    assert (await watched.invoke("A"))[0]["pid"] == a["pid"]  # unchanged: still warm
    assert (await watched.invoke("C"))[0]["v"] == "a1"
    watched.write("a/app.py", HANDLER.format(v="a2"))  # C's folder is watched: both reload
    await watched.logged(r"reloaded C:", 1)
    assert (await watched.invoke("C"))[0]["v"] == "a2"
    # Beyond the functions (an event-invoke setting): nothing applied, a restart asked for.
    watched.write("template.yaml", _template_text(watched.runtime, ", EventInvokeConfig: {MaximumRetryAttempts: 0}"))
    await watched.logged(r"template\.yaml changed beyond its functions \(event_configs[^)]*\): restart", 1)
    assert (await watched.invoke("C"))[0]["v"] == "a2"  # not removed
    watched.write("template.yaml", "Resources: [unclosed\n")
    await watched.logged(r"template\.yaml changed but does not load \((?s:.+)\): still serving it as it was", 1)
    watched.write("template.yaml", _template_text(watched.runtime, ", Environment: {Variables: {GREETING: hi}}"))
    await watched.logged(r"template reloaded: C: removed", 1)
    body, _ = await watched.invoke("A")
    assert body["v"] == "a2"
    with pytest.raises(ClientError) as gone:
        await watched.invoke("C")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_a_reload_retires_a_busy_environment_after_its_invocation(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    s = await make_scheduler(fn("hold", "basic.wait_for_file"), fn("other", "basic.noop"))
    release = tmp_path / "release"
    first = asyncio.ensure_future(s.invoke("hold", {"path": str(release)}))
    await until(lambda: any(e.state is EnvState.BUSY for e in s.environments("hold")))
    await s.invoke("other", {})
    [busy] = s.environments("hold")
    [other] = s.environments("other")
    s.reload_code("hold")
    assert s.environments("hold") == () and busy.alive  # a new pool; the busy one runs on
    release.touch()
    assert json.loads((await first).payload)["pid"] == busy.pid  # finished on the old code
    await until(lambda: not busy.alive)
    second = await s.invoke("hold", {"path": str(release)})
    assert second.start == "cold" and json.loads(second.payload)["pid"] != busy.pid
    assert (await s.invoke("other", {})).start == "warm" and s.environments("other") == (other,)


def test_what_reloads_nothing() -> None:
    for path in ("__pycache__/app.cpython-312.pyc", ".app.py.swp", "app.py~", ".#app.py", "#app.py#",
                 "4913", ".git/index", "pkg/__pycache__", "x.pyc"):  # fmt: skip
        assert ignored(path), path
    for path in ("app.py", "pkg/__init__.py", "data.json", "lib/native.so", "git/x.py", "."):
        assert not ignored(path), path


def test_stale_bytecode_of_a_changed_file_is_dropped(tmp_path: Path) -> None:
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    for name in ("app.cpython-311.pyc", "app.cpython-312.opt-1.pyc", "apple.cpython-311.pyc"):
        (cache / name).write_bytes(b"")
    drop_stale_bytecode(str(tmp_path / "app.py"))
    assert sorted(p.name for p in cache.iterdir()) == ["apple.cpython-311.pyc"]


async def test_a_burst_of_changes_reloads_each_function_once(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    built = tmp_path / ".aws-sam" / "build" / "b"  # sam build's output: skipped folders count inside code only
    for folder in (tmp_path / "a", built, tmp_path / "shared"):
        folder.mkdir(parents=True)
    configs = [
        fn("a", "basic.noop", code_dir=tmp_path / "a", layers=(tmp_path / "shared",)),
        fn("b", "basic.noop", code_dir=built, layers=(tmp_path / "shared",)),
        fn("c", "basic.noop"),
    ]
    s = await make_scheduler(*configs)
    pools = {name: s.get_function(name).pool for name in "abc"}
    watcher = CodeWatcher(s, Template(tmp_path / "template.yaml", configs))
    burst = [f"{tmp_path}/a/app.py", f"{tmp_path}/a/pkg/mod.py", f"{tmp_path}/shared/python/lib.py", f"{tmp_path}/a/app.py"]
    assert all(watcher.note(Change(path, IN_CLOSE_WRITE)) for path in burst)
    assert not watcher.note(Change(f"{built}/__pycache__/app.cpython-311.pyc", IN_CLOSE_WRITE))
    assert watcher.note(Change(f"{built}/app.py", IN_CLOSE_WRITE))
    watcher.apply()
    assert {name: s.get_function(name).pool is not pools[name] for name in "abc"} == {"a": True, "b": True, "c": False}
    assert pools["a"].retired and s.retired_pool_count <= 2  # one new pool each, not one per event
    reloaded = s.get_function("a").pool
    watcher.apply()  # nothing pending: nothing reloads again
    assert s.get_function("a").pool is reloaded and s.get_function("c").pool is pools["c"]


async def test_a_template_change_leaves_what_the_api_changed(make_scheduler: MakeScheduler, tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    f, g = fn("f", "basic.noop"), fn("g", "basic.noop")
    s = await make_scheduler(f, g)
    s.update_function(f.replace(memory_mb=256))  # as UpdateFunctionConfiguration would
    s.add_function(fn("h", "basic.echo"))  # as CreateFunction would
    old = Template(path, [f, g])
    new = Template(path, [f.replace(timeout_s=5), g.replace(timeout_s=5), fn("h", "basic.noop")])
    outcome = template_reload.apply(s, old, new)
    assert outcome.changed == ["g: updated"] and not outcome.restart
    assert [line.split(":")[0] for line in outcome.left] == ["f", "h"]
    assert s.functions["f"].config.memory_mb == 256 and s.functions["f"].config.timeout_s == 3
    assert s.functions["g"].config.timeout_s == 5 and s.functions["h"].config.handler == "basic.echo"
    assert template_reload.apply(s, new, Template(path, new.functions, dead_letters={"g": "arn:aws:sqs:x"})).restart == [
        "dead_letters"
    ]
