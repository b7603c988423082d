"""The cluster's function registry with a real ``nats-server -js``: functions, their code,
published versions, aliases and settings changed through one ``serve --cluster`` node are
served by the others (and by a node that joins later), with the same RevisionIds and code
digests; under ``--auth sigv4`` too, where a replay must be signed like any request."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .natsd import NatsServer
from .test_cluster import Node, cluster_folder, lambda_client, nats, start_nodes, wait_for

__all__ = ["cluster_folder", "nats"]  # fixtures, used by name

ROLE = "arn:aws:iam::123456789012:role/r"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def _returning(value: str) -> bytes:
    return _zip(f"def handler(event, context):\n    return {value!r}\n")


def answer(node: Node, function: str) -> Any:
    status, _, body = node.call(function, {})
    return json.loads(body) if status == 200 else status


@pytest.mark.timeout(120)
def test_functions_created_updated_and_deleted_on_one_node_are_served_by_the_others(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b, c = start_nodes(folder, started, nats, tmp_path, "a", "b", "c")
    client = lambda_client

    client(a).create_function(
        FunctionName="made", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": _returning("v1")}, Timeout=7,
        Environment={"Variables": {"COLOUR": "blue"}},
    )  # fmt: skip
    wait_for(lambda: answer(b, "made") == "v1" and answer(c, "made") == "v1", lambda: f"b answers {answer(b, 'made')}, c {answer(c, 'made')}")
    found = client(c).get_function_configuration(FunctionName="made")
    assert found["Timeout"] == 7 and found["Environment"]["Variables"] == {"COLOUR": "blue"}

    client(b).update_function_code(FunctionName="made", ZipFile=_returning("v2"))
    wait_for(lambda: answer(a, "made") == "v2" and answer(c, "made") == "v2", lambda: f"a answers {answer(a, 'made')}, c {answer(c, 'made')}")
    client(c).update_function_configuration(FunctionName="made", Timeout=9)
    wait_for(
        lambda: client(a).get_function_configuration(FunctionName="made")["Timeout"] == 9,
        lambda: "a never saw the new timeout",
    )

    # Its settings travel too: the last change of each, on every node.
    client(b).put_function_concurrency(FunctionName="made", ReservedConcurrentExecutions=3)
    wait_for(
        lambda: client(c).get_function_concurrency(FunctionName="made").get("ReservedConcurrentExecutions") == 3,
        lambda: "c never saw the reserved concurrency",
    )
    client(c).put_function_event_invoke_config(FunctionName="made", MaximumRetryAttempts=0)
    client(c).update_function_event_invoke_config(FunctionName="made", MaximumEventAgeInSeconds=120)

    def events_on_a() -> tuple[Any, Any]:
        try:
            found = client(a).get_function_event_invoke_config(FunctionName="made")
        except client(a).exceptions.ResourceNotFoundException:
            return None, None
        return found.get("MaximumRetryAttempts"), found.get("MaximumEventAgeInSeconds")

    wait_for(lambda: events_on_a() == (0, 120), lambda: f"a has the event-invoke settings {events_on_a()}")
    client(a).delete_function_concurrency(FunctionName="made")
    wait_for(
        lambda: "ReservedConcurrentExecutions" not in client(b).get_function_concurrency(FunctionName="made"),
        lambda: "b kept the reserved concurrency",
    )

    client(a).delete_function(FunctionName="made")
    wait_for(lambda: answer(b, "made") == 404 and answer(c, "made") == 404, lambda: f"b answers {answer(b, 'made')}, c {answer(c, 'made')}")


def _versions(node: Node, name: str) -> list[str]:
    return [v["Version"] for v in lambda_client(node).list_versions_by_function(FunctionName=name)["Versions"]]


@pytest.mark.timeout(150)
def test_versions_aliases_and_their_settings_reach_every_node_and_a_late_one(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b")
    on_a, on_b = lambda_client(a), lambda_client(b)

    # Version 1 published with the function, version 2 after new code, an alias on 1.
    on_a.create_function(
        FunctionName="rel", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": _returning("one")}, Publish=True, Description="first",
    )  # fmt: skip
    on_a.update_function_code(FunctionName="rel", ZipFile=_returning("two"))
    on_a.publish_version(FunctionName="rel", Description="second")
    on_a.create_alias(FunctionName="rel", Name="live", FunctionVersion="1")
    on_a.put_provisioned_concurrency_config(FunctionName="rel", Qualifier="live", ProvisionedConcurrentExecutions=1)
    on_a.put_function_event_invoke_config(FunctionName="rel", Qualifier="2", MaximumRetryAttempts=0)

    wait_for(
        lambda: (answer(b, "rel:live"), answer(b, "rel:2"), answer(b, "rel")) == ("one", "two", "two"),
        lambda: f"b answers {answer(b, 'rel:live')}, {answer(b, 'rel:2')}, {answer(b, 'rel')}",
    )
    assert _versions(b, "rel") == ["$LATEST", "1", "2"]
    for qualifier in ("1", "2", "$LATEST"):
        mine = on_a.get_function_configuration(FunctionName="rel", Qualifier=qualifier)
        theirs = on_b.get_function_configuration(FunctionName="rel", Qualifier=qualifier)
        for member in ("CodeSha256", "CodeSize", "RevisionId", "Description", "Version"):
            assert theirs[member] == mine[member], (qualifier, member)
    assert on_b.get_alias(FunctionName="rel", Name="live")["RevisionId"] == on_a.get_alias(
        FunctionName="rel", Name="live"
    )["RevisionId"]
    wait_for(
        lambda: "RequestedProvisionedConcurrentExecutions"
        in on_b.get_provisioned_concurrency_config(FunctionName="rel", Qualifier="live"),
        lambda: "b has no provisioned concurrency on live",
    )

    def retries_on_b() -> Any:
        try:
            found = on_b.get_function_event_invoke_config(FunctionName="rel", Qualifier="2")
        except on_b.exceptions.ResourceNotFoundException:
            return None
        return found["MaximumRetryAttempts"]

    wait_for(lambda: retries_on_b() == 0, lambda: f"b has retries {retries_on_b()} for version 2")

    # A precondition read on one node holds on the other; b's next version follows a's.
    revision = on_a.get_alias(FunctionName="rel", Name="live")["RevisionId"]
    on_a.delete_provisioned_concurrency_config(FunctionName="rel", Qualifier="live")
    on_b.update_alias(FunctionName="rel", Name="live", FunctionVersion="2", RevisionId=revision)
    on_b.update_function_code(FunctionName="rel", ZipFile=_returning("three"))
    assert on_b.publish_version(FunctionName="rel")["Version"] == "3"
    wait_for(
        lambda: (answer(a, "rel:live"), answer(a, "rel:3")) == ("two", "three"),
        lambda: f"a answers {answer(a, 'rel:live')}, {answer(a, 'rel:3')}",
    )
    on_a.delete_function(FunctionName="rel", Qualifier="1")
    wait_for(lambda: _versions(b, "rel") == ["$LATEST", "2", "3"], lambda: f"b has {_versions(b, 'rel')}")

    # A node that joins now gets the state the changes left, not their history.
    (c,) = start_nodes(folder, started, nats, tmp_path, "c")
    wait_for(lambda: answer(c, "rel:live") == "two", lambda: f"c answers {answer(c, 'rel:live')}")
    on_c = lambda_client(c)
    assert _versions(c, "rel") == ["$LATEST", "2", "3"]
    assert answer(c, "rel") == "three"
    assert on_c.get_alias(FunctionName="rel", Name="live")["FunctionVersion"] == "2"
    with pytest.raises(on_c.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        on_c.get_provisioned_concurrency_config(FunctionName="rel", Qualifier="live")

    on_c.delete_alias(FunctionName="rel", Name="live")
    wait_for(
        lambda: [x["Name"] for x in on_a.list_aliases(FunctionName="rel")["Aliases"]] == [],
        lambda: "a kept the alias",
    )


@pytest.mark.timeout(120)
def test_under_sigv4_replays_are_signed_and_every_node_applies_them(
    nats: NatsServer, cluster_folder: tuple[Path, list[Node]], tmp_path: Path
) -> None:
    folder, started = cluster_folder
    auth = ("--auth", "sigv4", "--credentials", "CLUSTERKEY:cluster-secret")
    a, b = start_nodes(folder, started, nats, tmp_path, "a", "b", extra=auth)
    on_a, on_b = lambda_client(a, "CLUSTERKEY", "cluster-secret"), lambda_client(b, "CLUSTERKEY", "cluster-secret")
    on_a.create_function(
        FunctionName="signed", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": _returning("ok")}, Publish=True,
    )  # fmt: skip
    on_a.create_alias(FunctionName="signed", Name="live", FunctionVersion="1")

    def invoked() -> Any:
        try:
            return json.loads(on_b.invoke(FunctionName="signed", Qualifier="live")["Payload"].read())
        except on_b.exceptions.ResourceNotFoundException:
            return None

    wait_for(lambda: invoked() == "ok", lambda: f"b answers {invoked()}")
    assert a.call("signed", {})[0] == 403  # and the node still refuses what is not signed
