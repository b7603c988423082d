"""Cluster mode with a real ``nats-server -js``: ``serve --cluster`` nodes as subprocesses that
share accepted Event invocations (a JetStream stream) and see each other (GET /cluster). Events
accepted anywhere run once somewhere; a node killed with ``kill -9`` loses none of them; a NATS
restart under load loses no event that was answered 202."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from .conftest import FUNCTIONS
from .natsd import NatsServer
from .test_events_durable import Serve

TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    CodeUri: {code}
    Timeout: 3
Resources:
  Work:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: work, Handler: api.record_then_sleep}}
  Narrow:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: narrow, Handler: api.record_then_sleep, ReservedConcurrentExecutions: 1}}
  Pair:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: pair, Handler: basic.wait_for_file, Timeout: 60, ReservedConcurrentExecutions: 2}}
  Hold:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: hold, Handler: basic.wait_for_file, Timeout: 60}}
"""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def shared_file(path: Path) -> Path:
    path.touch(mode=0o666)
    path.chmod(0o666)
    return path


def wait_for(condition: Any, what: Any, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what()`` after a generous deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def wait_all_ran(accepted: list[str], trace: Path) -> None:
    """Until every accepted event's request id is in the trace its handler appends to."""
    wait_for(
        lambda: set(accepted) <= set(lines(trace)),
        lambda: f"{len(set(accepted) - set(lines(trace)))} accepted events never ran",
        timeout=120,
    )


class EventStream:
    """Threads sending Event invocations of ``work`` to nodes until the block ends: the
    request ids accepted (202) and the statuses refused. A node that goes away under a
    request ends its sender: that event was never accepted."""

    def __init__(self, nodes: list[Node], trace: Path, per_node: int = 1) -> None:
        self.trace = trace
        self.accepted: list[str] = []
        self.refused: list[int] = []
        self._stop = threading.Event()
        self._senders = [threading.Thread(target=self._send, args=(n,)) for n in nodes for _ in range(per_node)]

    def _send(self, node: Node) -> None:
        while not self._stop.is_set():
            try:
                status, rid = node.invoke("work", {"path": str(self.trace), "sleep": 0.01}, "Event")
            except OSError:
                return
            if status == 202:
                self.accepted.append(rid)
            else:
                self.refused.append(status)  # NATS away: not accepted, so the client knows to send again

    def wait_more(self, count: int = 10) -> None:
        """Until ``count`` more events than now were accepted."""
        before = len(self.accepted)
        wait_for(
            lambda: len(self.accepted) >= before + count,
            lambda: f"only {len(self.accepted) - before} more accepted: {self.refused[-3:]}",
        )

    def __enter__(self) -> Self:
        for sender in self._senders:
            sender.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for sender in self._senders:
            sender.join(timeout=60)


class Node(Serve):
    """One ``serve --cluster`` node on the test's template, with a data dir of its own."""

    def __init__(self, folder: Path, nats_url: str, name: str, shared: Path, *extra: str) -> None:
        self.name = name
        data = folder / f"data-{name}"
        super().__init__(folder, data, shared, "--cluster", nats_url, "--node-name", name, *extra)

    def invoke(self, function: str, body: dict[str, Any], kind: str = "RequestResponse") -> tuple[int, str]:  # type: ignore[override]
        status, rid, _ = self.call(function, body, kind)
        return status, rid

    def call(self, function: str, body: dict[str, Any], kind: str = "RequestResponse") -> tuple[int, str, bytes]:
        return super().invoke(function, body, kind)

    def cluster(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/cluster", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def me(self) -> dict[str, Any]:
        return self.cluster()["self"]  # type: ignore[no-any-return]

    def peers(self) -> set[str]:
        return {n["node"] for n in self.cluster()["nodes"]}



@pytest.fixture
def nats() -> Iterator[NatsServer]:
    server = NatsServer()
    yield server
    server.close()


@pytest.fixture
def cluster_folder() -> Iterator[tuple[Path, list[Node]]]:
    # The template's folder is hidden from environments: it must not be the shared one.
    folder = Path(tempfile.mkdtemp(prefix="cluster-", dir=os.environ["TMPDIR"]))
    (folder / "template.yaml").write_text(TEMPLATE.format(code=FUNCTIONS))
    started: list[Node] = []
    yield folder, started
    for node in started:
        node.close()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def start_nodes(
    folder: Path, started: list[Node], nats: NatsServer, shared: Path, *names: str, extra: tuple[str, ...] = ()
) -> list[Node]:
    nodes = []
    for name in names:
        node = Node(folder, nats.url, name, shared, *extra)
        started.append(node)
        nodes.append(node)
    return nodes


@pytest.mark.timeout(120)
def test_nodes_see_each_other_and_notice_one_killed(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b, c = start_nodes(folder, started, nats, tmp_path, "a", "b", "c")
    wait_for(lambda: a.peers() == {"a", "b", "c"}, lambda: f"a sees {a.peers()}")
    with urllib.request.urlopen(f"{b.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'lambda_async_events_received_total{node="b"}' in metrics
    assert all('node="b"' in line for line in metrics.splitlines() if line.startswith("lambda_"))
    listed = {n["node"]: n for n in a.cluster()["nodes"]}
    assert listed["b"]["url"] == b.url and "work" in listed["b"]["functions"]
    assert b.cluster()["node"] == "b"
    c.process.send_signal(signal.SIGKILL)
    c.process.wait(timeout=10)
    wait_for(lambda: a.peers() == {"a", "b"} and b.peers() == {"a", "b"}, lambda: f"a sees {a.peers()}")
    b.stop()  # a node that leaves deletes its heartbeat
    wait_for(lambda: a.peers() == {"a"}, lambda: f"a sees {a.peers()}")


@pytest.mark.timeout(120)
def test_events_accepted_on_any_node_run_once(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    nodes = start_nodes(folder, started, nats, tmp_path, "a", "b", "c")
    trace = shared_file(tmp_path / "trace")
    accepted = []
    for i in range(30):
        status, rid = nodes[i % 3].invoke("work", {"path": str(trace)}, "Event")
        assert status == 202
        accepted.append(rid)
    wait_for(lambda: set(accepted) <= set(lines(trace)), lambda: f"{len(set(accepted) - set(lines(trace)))} never ran")
    # Each ran once: nothing was killed, so no message waited out its ack.
    assert sorted(lines(trace)) == sorted(accepted)


@pytest.mark.timeout(120)
def test_reserved_concurrency_holds_across_nodes(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    """2 reserved, 6 concurrent calls, 3 through each of 2 nodes: 2 run, 4 are throttled. The
    two that run hold their slots until the test releases them, after the 4 refusals."""
    folder, started = cluster_folder
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b")
    wait_for(lambda: a.peers() == {"a", "b"} == b.peers(), lambda: f"a sees {a.peers()}, b {b.peers()}")
    release = tmp_path / "release"
    statuses: list[int] = []

    def call(node: Node) -> None:
        statuses.append(node.invoke("pair", {"path": str(release)})[0])

    callers = [threading.Thread(target=call, args=(node,)) for node in (a, b) for _ in range(3)]
    for caller in callers:
        caller.start()
    try:
        wait_for(lambda: statuses.count(429) >= 4, lambda: f"statuses so far: {statuses}")
    finally:
        release.touch()
        for caller in callers:
            caller.join(timeout=60)
    assert sorted(statuses) == [200, 200, 429, 429, 429, 429]
    # The slots come back (given back in the background once each call has its answer): calls
    # through either node are admitted again, none is leaked.
    wait_for(
        lambda: all(node.invoke("pair", {"path": str(release)})[0] == 200 for node in (a, b)),
        lambda: "the reserved slots never came back",
    )


def lambda_client(node: Node, key: str = "x", secret: str = "x") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "lambda", endpoint_url=node.url, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def warm_on(node: Node, release: Path, function: str = "hold") -> int:
    """Start one environment of ``hold`` on ``node`` and wait until the node offers it to the
    others; the environment's pid."""
    release.touch()
    status, _, body = node.call(function, {"path": str(release)})
    assert status == 200, body
    wait_for(lambda: function in node.me()["warm"], lambda: f"{node.name} never offered {function}: {node.me()}")
    return int(json.loads(body)["pid"])


@pytest.mark.timeout(120)
def test_a_node_without_an_idle_environment_forwards_to_one_with_it(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b")
    release = tmp_path / "release"
    pid = warm_on(b, release)
    for _ in range(20):  # one after another: b's offer stands between them
        status, _, body = a.call("hold", {"path": str(release)})
        assert status == 200, body
        assert json.loads(body)["pid"] == pid  # b's warm environment ran it: no cold start on a
    assert a.me()["forwarded"] == 20 and b.me()["served"] == 20

    # A version goes where that version is warm; the alias's ARN goes with the call.
    lambda_client(a).publish_version(FunctionName="hold")
    lambda_client(a).create_alias(FunctionName="hold", Name="live", FunctionVersion="1")
    wait_for(lambda: b.call("hold:live", {"path": str(release)})[0] == 200, lambda: "b never got version 1")
    wait_for(lambda: "hold:1" in b.me()["warm"], lambda: f"b never offered version 1: {b.me()}")
    version_pid = json.loads(b.call("hold:1", {"path": str(release)})[2])["pid"]
    status, _, body = a.call("hold:live", {"path": str(release), "arn": True})
    assert status == 200, body
    ran = json.loads(body)
    assert ran["pid"] == version_pid and ran["arn"].endswith(":function:hold:live"), ran
    assert a.me()["forwarded"] == 21


@pytest.mark.timeout(120)
def test_a_forwarded_call_fails_clearly_when_the_node_running_it_dies(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b")
    wait_for(lambda: a.peers() == {"a", "b"}, lambda: f"a sees {a.peers()}")
    release = tmp_path / "release"
    warm_on(b, release)
    release.unlink()  # the next call holds b's environment until the test ends
    answers: list[tuple[int, str, bytes]] = []
    caller = threading.Thread(target=lambda: answers.append(a.call("hold", {"path": str(release)})))
    caller.start()
    wait_for(lambda: b.me()["served"] == 1, lambda: f"b never got the call: {b.me()}")
    b.process.send_signal(signal.SIGKILL)
    b.process.wait(timeout=10)
    caller.join(timeout=60)
    release.touch()
    [(status, _, body)] = answers
    assert status == 502, body
    error = json.loads(body)
    assert "Node b" in error["message"] and "stopped" in error["message"], error


@pytest.mark.timeout(180)
def test_kill_9_of_a_node_with_events_queued_runs_them_on_the_others(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, *_others = start_nodes(folder, started, nats, tmp_path, "a", "b", "c")
    trace = shared_file(tmp_path / "trace")
    # One at a time per node, each a while: most events wait in the stream, and each node
    # holds the one it runs when a is killed.
    accepted = []
    for _ in range(12):
        status, rid = a.invoke("narrow", {"path": str(trace), "sleep": 0.3}, "Event")
        assert status == 202
        accepted.append(rid)
    wait_for(lambda: len(lines(trace)) >= 3, lambda: f"only {len(lines(trace))} ran")
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(timeout=10)
    wait_all_ran(accepted, trace)
    ran = lines(trace)
    print(f"{len(accepted)} accepted, {len(set(ran))} ran, {len(ran) - len(set(ran))} twice (cut short by the kill)")
    assert len(ran) - len(set(ran)) <= 1  # at most the one a was running


@pytest.mark.timeout(180)
def test_nats_restart_under_load_loses_no_accepted_event(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    nodes = start_nodes(folder, started, nats, tmp_path, "a", "b")
    trace = shared_file(tmp_path / "trace")
    with EventStream(nodes, trace, per_node=2) as stream:
        stream.wait_more()
        nats.restart()
        stream.wait_more()
    accepted, refused = stream.accepted, stream.refused
    wait_all_ran(accepted, trace)
    print(f"{len(accepted)} accepted, {len(refused)} refused while NATS restarted")
    assert all(node.process.poll() is None for node in nodes)
    # The heartbeats and their watches came back with NATS.
    wait_for(lambda: all(node.peers() == {"a", "b"} for node in nodes), lambda: f"{[n.peers() for n in nodes]}")


@pytest.mark.timeout(180)
def test_a_node_joining_and_one_leaving_under_load_lose_no_event(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b")
    trace = shared_file(tmp_path / "trace")
    with EventStream([a, b], trace) as stream:
        stream.wait_more()
        (c,) = start_nodes(folder, started, nats, tmp_path, "c")  # joins while events arrive
        stream.wait_more()
        assert b.stop() == 0  # leaves while events arrive: what it held goes back to the stream
        stream.wait_more()
    wait_all_ran(stream.accepted, trace)
    wait_for(lambda: a.peers() == {"a", "c"} == c.peers(), lambda: f"a sees {a.peers()}, c {c.peers()}")


class _Everyone:
    """Every node of the ledger test is alive (the liveness source, not the transport, is set)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def live(self) -> set[str]:
        return self.names

    async def alive(self, names: set[str]) -> set[str]:
        return names & self.names


@pytest.mark.timeout(120)
async def test_the_ledger_never_admits_over_the_limit_under_contention(nats: NatsServer) -> None:
    """Three nodes' ledgers, 10 callers each, on a limit of 4: at no moment do more than 4 hold
    a slot, however the compare-and-set races fall; every slot is given back."""
    import asyncio

    from scheduler.cluster.limits import ClusterLimits, Ticket
    from scheduler.cluster.link import ClusterLink
    from scheduler.errors import Throttled

    names = {"a", "b", "c"}
    links = [await ClusterLink.connect(nats.url, name) for name in sorted(names)]
    ledgers = [ClusterLimits(link, _Everyone(names)) for link in links]
    for ledger in ledgers:
        await ledger.start()
    holding, most, admitted, throttled = 0, 0, 0, 0

    async def caller(ledger: ClusterLimits) -> None:
        nonlocal holding, most, admitted, throttled
        for _ in range(5):
            try:
                ticket = await ledger.enter("f", 4, 1000)
            except Throttled:
                throttled += 1
                continue
            assert isinstance(ticket, Ticket)
            holding += 1
            most = max(most, holding)
            admitted += 1
            await asyncio.sleep(0.01)  # hold the slot while others try to take one
            holding -= 1
            ledger.leave(ticket)

    try:
        await asyncio.gather(*(caller(ledger) for ledger in ledgers for _ in range(10)))
        for ledger in ledgers:
            await ledger.stop()
        print(f"admitted {admitted}, throttled {throttled}, most at once {most}, "
              f"CAS conflicts {sum(lg.conflicts for lg in ledgers)}")  # fmt: skip
        assert most <= 4 and admitted > 0 and throttled > 0
        kv = await links[0].js.key_value("lambda_limits")
        assert json.loads((await kv.get("fn.f")).value or b"{}") == {}  # every slot given back
    finally:
        for link in links:
            await link.close()
