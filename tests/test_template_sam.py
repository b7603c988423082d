"""The SAM transform: AWS::Serverless::* expanded by the official translator, then read as plain
CloudFormation — Globals, AutoPublishAlias (its Version and Alias records), Events, Layers,
Refs to named resources, and the message a template the translator refuses gives."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scheduler.cfn import TemplateError
from scheduler.template import load_template
from scheduler.template_versions import RoutingWeight

from .conftest import MakeServer, aws
from .serving import COMMAND
from .test_template import FUNCTION, write

TRANSFORM = Path(__file__).parent / "templates" / "transform" / "template.yaml"
LAYERS = TRANSFORM.parent / "layers"


def test_globals_merge_as_sam_merges_them() -> None:
    template = load_template(TRANSFORM)
    functions = {f.name: f for f in template.functions}
    assert sorted(functions) == ["Worker", "dev-orders-fn"]
    orders, worker = functions["dev-orders-fn"], functions["Worker"]
    # Scalars: the function's own value wins over Globals; CodeUri and Runtime come from Globals.
    assert (orders.timeout_s, worker.timeout_s) == (7, 3)
    assert orders.runtime == worker.runtime == "python3.12"
    assert orders.code_dir == worker.code_dir == TRANSFORM.parent / "src"
    # Lists add up, Globals' first; mappings merge.
    assert orders.layers == (LAYERS / "base", LAYERS / "extra")
    assert worker.layers == (LAYERS / "base",)
    assert orders.environment["X_STAGE"] == "dev" and dict(worker.environment) == {"X_STAGE": "dev"}


def test_auto_publish_alias_gives_version_and_alias_records() -> None:
    template = load_template(TRANSFORM)
    [generated] = [v for v in template.versions.values() if v.function_id == "Orders"]
    assert generated.logical_id.startswith("OrdersVersion") and generated.logical_id != "OrdersVersion"
    assert (generated.function_name, generated.description) == ("dev-orders-fn", "first cut")
    pinned = template.versions["WorkerVersion"]
    assert (pinned.function_id, pinned.function_name, pinned.description) == ("Worker", "Worker", "pinned")
    aliases = {a.name: a for a in template.aliases}
    assert sorted(aliases) == ["blue", "live"]
    live, blue = aliases["live"], aliases["blue"]
    assert (live.function_id, live.version, live.routing) == ("Orders", generated.logical_id, ())
    # SAM moves ProvisionedConcurrencyConfig onto the alias, and so does the server: $LATEST has none.
    assert live.provisioned_concurrency == 2
    assert {f.name: f.provisioned_concurrency for f in template.functions} == {"dev-orders-fn": 0, "Worker": 0}
    assert (blue.function_name, blue.version, blue.routing) == ("Worker", "WorkerVersion", ())
    # EventInvokeConfig of an AutoPublishAlias function is written for the alias.
    assert template.event_configs["dev-orders-fn"].maximum_retry_attempts == 1
    assert template.event_config_qualifiers["dev-orders-fn"] == "live"
    # The alias name is a parameter: the translator resolves it from the overrides.
    renamed = load_template(TRANSFORM, parameters={"AliasName": "green"})
    assert sorted(a.name for a in renamed.aliases) == ["blue", "green"]
    assert renamed.event_config_qualifiers["dev-orders-fn"] == "green"


def test_alias_routing_weights_name_versions_by_logical_id_or_number(tmp_path: Path) -> None:
    # Two versions of one function differ only once its code or configuration changed between
    # them (an unchanged function publishes the same version twice), so this is read, not served.
    body = FUNCTION + (
        "  V1:\n    Type: AWS::Lambda::Version\n    Properties:\n      FunctionName: !Ref Fn\n"
        "  Blue:\n    Type: AWS::Lambda::Alias\n    Properties:\n      Name: blue\n"
        "      FunctionName: !Ref Fn\n      FunctionVersion: \"2\"\n      RoutingConfig:\n"
        "        AdditionalVersionWeights:\n          - FunctionVersion: !GetAtt V1.Version\n"
        "            FunctionWeight: 0.25\n"
    )
    template = load_template(write(tmp_path, body, "Transform: AWS::Serverless-2016-10-31\n"))
    [blue] = template.aliases
    assert (blue.version, blue.routing) == ("2", (RoutingWeight("V1", 0.25),))


def test_events_and_deployment_preference_expand_to_resources_that_are_skipped() -> None:
    template = load_template(TRANSFORM)
    [generated] = [n for n in template.notes if n.startswith("skipped what the SAM transform made")]
    for made in [
        "OrdersJobs (AWS::Lambda::EventSourceMapping)",  # Events: SQS
        "OrdersNightly (AWS::Events::Rule)",  # Events: Schedule
        "ServerlessRestApi (AWS::ApiGateway::RestApi)",  # Events: Api
        "OrdersDeploymentGroup (AWS::CodeDeploy::DeploymentGroup)",  # DeploymentPreference
        "OrdersRole (AWS::IAM::Role)",
    ]:
        assert made in generated
    assert "skipped resource Sessions (AWS::Serverless::SimpleTable): only functions" in "\n".join(template.notes)


def test_refs_to_named_resources_resolve_to_their_names() -> None:
    env = {f.name: f for f in load_template(TRANSFORM).functions}["dev-orders-fn"].environment
    arn = "us-east-1:123456789012"
    assert dict(env) == {
        "X_STAGE": "dev",
        "X_TABLE": "dev-orders",  # TableName: !Sub "${Stage}-orders"
        "X_TABLE_ARN": f"arn:aws:dynamodb:{arn}:table/dev-orders",
        "X_SIMPLE_TABLE": "dev-sessions",  # AWS::Serverless::SimpleTable's TableName
        "X_QUEUE": "https://sqs.us-east-1.amazonaws.com/123456789012/dev-jobs",  # Ref of a queue: its URL
        "X_QUEUE_ARN": f"arn:aws:sqs:{arn}:dev-jobs",
        "X_TOPIC": f"arn:aws:sns:{arn}:alerts",  # Ref of a topic: its ARN
        "X_BUCKET": "dev-uploads",
        "X_BUCKET_ARN": "arn:aws:s3:::dev-uploads",
        "X_UNNAMED": "Unnamed",  # no TopicName: the logical ID, as before
        "X_FUNCTION": "Worker",
        "X_ALIAS": f"arn:aws:lambda:{arn}:function:dev-orders-fn:live",  # SAM's !Ref Orders.Alias
    }
    template = load_template(TRANSFORM)
    assert "!Ref Unnamed (AWS::SNS::Topic) stands for its logical ID locally" in template.notes
    # Where Event invocations go: SAM's DestinationConfig and DeadLetterQueue, by named resource.
    assert template.event_configs["dev-orders-fn"].destinations.on_failure == f"arn:aws:sqs:{arn}:dev-jobs"
    assert template.dead_letters == {"Worker": f"arn:aws:sns:{arn}:alerts"}
    prod = {f.name: f for f in load_template(TRANSFORM, parameters={"Stage": "prod"}).functions}
    assert (prod["prod-orders-fn"].environment["X_TABLE"], prod["prod-orders-fn"].environment["X_BUCKET"]) == (
        "prod-orders",
        "prod-uploads",
    )


@pytest.mark.parametrize(
    ("body", "head", "message"),
    [
        (
            FUNCTION + "      Bogus: 1\n",
            "",
            "Resource with id [Fn] is invalid. property Bogus not defined for resource of type AWS::Serverless::Function",
        ),
        (
            FUNCTION + "      Events: {E: {Type: Api, Properties: {Path: !Ref P, Method: get}}}\n",
            "Parameters: {P: {Type: String, Default: /x}}\n",
            "Resource with id [Fn] is invalid. Event with id [E] is invalid. Property 'Path' should be a string.",
        ),
        (
            FUNCTION,
            "Globals: {Function: {ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}}}\n",
            "Resource with id [Fn] is invalid. To set ProvisionedConcurrencyConfig AutoPublishALias must be defined",
        ),
        (
            FUNCTION + "      DeadLetterQueue: {Type: Kafka, TargetArn: arn:aws:sqs:us-east-1:123456789012:q}\n",
            "",
            "Resource with id [Fn] is invalid. 'DeadLetterQueue' requires Type of ['SQS', 'SNS']",
        ),
    ],
)
def test_a_template_the_translator_refuses_names_the_resource(
    tmp_path: Path, body: str, head: str, message: str
) -> None:
    with pytest.raises(TemplateError) as exc:
        load_template(write(tmp_path, body, head))
    text = str(exc.value)
    assert text.startswith("the SAM transform refused the template: Invalid Serverless Application Specification")
    assert message in text


def test_local_folders_are_named_as_the_template_wrote_them(tmp_path: Path) -> None:
    layer = "  Layer:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: missing-layer}\n"
    with pytest.raises(TemplateError, match="resource Layer, property ContentUri: 'missing-layer' is not a folder"):
        load_template(write(tmp_path, FUNCTION + "      Layers: [!Ref Layer]\n" + layer))
    with pytest.raises(
        TemplateError, match=r"Globals.Function, property CodeUri: !ImportValue code cannot be resolved"
    ):
        load_template(write(tmp_path, FUNCTION, "Globals: {Function: {CodeUri: !ImportValue code}}\n"))
    # Without CodeUri of its own or in Globals, a function's code is the template's folder, as sam has it.
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 1\n")
    [fn] = load_template(write(tmp_path, FUNCTION.replace("      CodeUri: src\n", ""))).functions
    assert fn.code_dir == tmp_path


def test_serve_refuses_a_broken_template_without_a_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, FUNCTION + "      Events: {E: {Type: NoSuchEvent}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_SCHEDULER_", "AWS_"))}
    done = subprocess.run(
        [COMMAND, "serve", str(bad), "--port", "0"], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 2
    stderr = done.stderr.decode()
    assert "template: the SAM transform refused the template:" in stderr and "Resource with id [Fn]" in stderr
    assert "Traceback" not in stderr


async def test_serve_the_expanded_template(make_server: MakeServer) -> None:
    template = load_template(TRANSFORM)
    served = await make_server(
        *template.functions, event_configs=template.event_configs_by_qualifier(), after_start=template.publish
    )
    client = served.client()
    response = await aws(client.invoke, FunctionName="dev-orders-fn", Payload=b"{}")
    body = json.loads(response["Payload"])
    assert body["layers"] == ["base", "extra"]  # Globals' layer and the function's, importable
    assert body["env"]["X_TABLE"] == "dev-orders" and body["env"]["X_QUEUE"].endswith("/dev-jobs")
    configuration = await aws(client.get_function_configuration, FunctionName="dev-orders-fn")
    assert (configuration["Timeout"], configuration["Runtime"]) == (7, "python3.12")
    provisioned = await aws(client.get_provisioned_concurrency_config, FunctionName="dev-orders-fn", Qualifier="live")
    assert provisioned["RequestedProvisionedConcurrentExecutions"] == 2
    live = await aws(client.invoke, FunctionName="dev-orders-fn", Qualifier="live", Payload=b"{}")
    assert live["ExecutedVersion"] == "1"
    event_config = await aws(client.get_function_event_invoke_config, FunctionName="dev-orders-fn", Qualifier="live")
    assert event_config["MaximumRetryAttempts"] == 1


def test_the_transform_needs_no_aws_configuration_nor_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real boto3 session would fail on a profile that does not exist; the translator never gets one.
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    app = (
        "  App:\n    Type: AWS::Serverless::Application\n    Properties:\n      Location:\n"
        "        ApplicationId: arn:aws:serverlessrepo:us-east-1:123456789012:applications/x\n"
        "        SemanticVersion: 1.0.0\n"
    )
    # A Serverless Application Repository app would be fetched from AWS by the translator.
    template = load_template(write(tmp_path, FUNCTION + "      Policies: AmazonS3ReadOnlyAccess\n" + app))
    assert [f.name for f in template.functions] == ["Fn"]
    assert "skipped resource App (AWS::Serverless::Application): only functions and their layers are served" in (
        template.notes
    )
