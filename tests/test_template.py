"""SAM / CloudFormation templates: reading functions, Globals, layers and intrinsics; reporting
what cannot be served; and serving a template's functions over the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scheduler.api.keys import DISPATCHER
from scheduler.cfn import TemplateError
from scheduler.config import SchedulerConfig
from scheduler.template import load_template

from .conftest import MakeServer, aws

TEMPLATES = Path(__file__).parent / "templates"
SAM = TEMPLATES / "sam" / "template.yaml"
INTRINSICS = TEMPLATES / "intrinsics" / "template.yaml"


def test_sam_template_functions_globals_and_layers() -> None:
    template = load_template(SAM)
    functions = {f.name: f for f in template.functions}
    assert sorted(functions) == ["HelloFunction", "nested-fn", "plain"]  # logical id unless FunctionName
    hello, nested, plain = functions["HelloFunction"], functions["nested-fn"], functions["plain"]
    assert hello.code_dir == SAM.parent / "src" / "hello"
    assert (hello.memory_mb, hello.timeout_s, hello.runtime) == (512, 5, "python3.11")  # own value beats Globals
    assert dict(hello.environment) == {"STAGE": "test", "GREETING": "from-function"}  # variables merged
    assert nested.handler == "pkg.mod.handler" and nested.memory_mb == 256
    assert nested.layers == (SAM.parent / "layers" / "shared",)
    assert (nested.reserved_concurrency, nested.provisioned_concurrency) == (4, 1)
    # AWS::Lambda::Function takes no Globals; Code is a local folder.
    assert (plain.runtime, plain.timeout_s, plain.memory_mb, plain.ephemeral_storage_mb) == ("python3.12", 9, 128, 1024)
    assert plain.handler == "index.lambda_handler" and dict(plain.environment) == {}
    configs = template.event_configs
    assert (configs["nested-fn"].maximum_retry_attempts, configs["nested-fn"].maximum_event_age_s) == (0, 120)
    assert configs["plain"].maximum_retry_attempts == 1  # from an AWS::Lambda::EventInvokeConfig resource
    assert "skipped function NodeFunction: runtime nodejs20.x is not Python" in template.notes
    assert "skipped resource Queue (AWS::SQS::Queue): only functions and their layers are served" in template.notes


def test_intrinsic_functions_resolve() -> None:
    template = load_template(INTRINSICS)
    functions = {f.name: f for f in template.functions}
    assert sorted(functions) == ["OtherFunction", "dev-tags"]  # ProdOnlyFunction's condition is false
    tags = functions["dev-tags"]
    assert (tags.memory_mb, tags.timeout_s) == (384, 7)  # !Ref to Number parameters (one a string)
    assert tags.code_dir == INTRINSICS.parent / "src"
    assert dict(tags.environment) == {
        "X_SUB": "us-east-1:123456789012:dev:${Literal}",
        "X_SUB_VARS": "b-dev",
        "X_JOIN": "dev,aws,local",
        "X_SPLIT": "c",
        "X_IF": "not-production",
        "X_AND": "yes",
        "X_OR": "true",
        "X_MAP": "DEBUG",
        "X_ARN": "arn:aws:lambda:us-east-1:123456789012:function:dev-tags",
        "X_OTHER": "OtherFunction",
        "X_BASE64": "aGVsbG8=",
        "X_BUCKET": "Bucket",
        "X_NUMBER": "42",
    }
    notes = "\n".join(template.notes)
    assert "resource TagsFunction, property Environment.Variables.X_IMPORTED: !ImportValue shared-vpc-id" in notes
    assert "resource TagsFunction, property Environment.Variables.X_TABLE: !GetAtt Table.Arn" in notes
    assert "skipped resource ProdOnlyFunction: its condition IsProd is false" in notes


def test_parameter_overrides_and_settings() -> None:
    template = load_template(
        INTRINSICS,
        parameters={"Stage": "prod"},
        settings=SchedulerConfig(region="eu-west-1", account_id="999999999999"),
    )
    functions = {f.name: f for f in template.functions}
    assert sorted(functions) == ["OtherFunction", "ProdOnlyFunction", "prod-tags"]
    env = functions["prod-tags"].environment
    assert env["X_SUB"] == "eu-west-1:999999999999:prod:${Literal}"
    assert (env["X_IF"], env["X_AND"], env["X_MAP"], env["X_NOVALUE"]) == ("production", "no", "WARN", "something")
    with pytest.raises(TemplateError, match="Nope"):
        load_template(INTRINSICS, parameters={"Nope": "1"})


def write(tmp_path: Path, body: str, head: str = "") -> Path:
    """A template of ``head`` (sections before Resources) and resources ``body``, with a src/ folder."""
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "template.yaml"
    path.write_text(head + "Resources:\n" + body)
    return path


FUNCTION = """
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("      Timeout: 2.5\n", "resource Fn, property Timeout: must be a whole number between 1 and 900, got 2.5"),
        ("      Timeout: 901\n", "resource Fn, property Timeout: must be between 1 and 900, got 901"),
        (
            "      MemorySize: !ImportValue mem\n",
            "resource Fn, property MemorySize: !ImportValue mem cannot be resolved",
        ),
        ("      Timeout: !Ref Missing\n", "resource Fn, property Timeout: !Ref Missing: no parameter or resource"),
        ("      Layers: [!GetAtt Other.Arn]\n", "resource Fn, property Layers: !GetAtt Other.Arn cannot be resolved"),
        ("      ReservedConcurrentExecutions: lots\n", "resource Fn, property ReservedConcurrentExecutions"),
        ("      EphemeralStorage: {Size: 100}\n", "resource Fn, property EphemeralStorage.Size: must be between 512"),
        ("      Environment: {Variables: {AWS_REGION: x}}\n", "resource Fn: environment: AWS_REGION is reserved"),
    ],
)
def test_unresolvable_values_name_the_resource_and_property(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        load_template(write(tmp_path, FUNCTION + extra))
    assert message in str(exc.value)


def test_code_locations_and_shapes_that_cannot_be_served(tmp_path: Path) -> None:
    cases = {
        FUNCTION.replace(
            "CodeUri: src", "CodeUri: {Bucket: b, Key: k}"
        ): "resource Fn, property CodeUri: must be a local folder",
        FUNCTION.replace(
            "CodeUri: src", "CodeUri: missing"
        ): "resource Fn, property CodeUri: 'missing' is not a folder",
        FUNCTION.replace("      Handler: app.handler\n", ""): "resource Fn, property Handler: required",
        FUNCTION.replace("      Runtime: python3.11\n", ""): "resource Fn, property Runtime: required",
        FUNCTION.replace("CodeUri: src", "InlineCode: 'def handler(e, c): pass'"): "inline code is not supported",
        FUNCTION + FUNCTION.replace("  Fn:", "  Fn2:") + "      FunctionName: Fn\n": "both define function Fn",
        "  Broken: {Properties: {}}\n": "resource Broken has no Type",
        "  P:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src\n      Handler: a.b\n"
        "      Runtime: python3.11\n      Timeout: !Ref NoDefault\n": "!Ref NoDefault: no parameter",
    }
    for body, message in cases.items():
        with pytest.raises(TemplateError) as exc:
            load_template(write(tmp_path, body))
        assert message in str(exc.value), (body, str(exc.value))
    no_default = tmp_path / "params.yaml"
    no_default.write_text("Parameters: {T: {Type: Number}}\nResources:\n" + FUNCTION + "      Timeout: !Ref T\n")
    with pytest.raises(
        TemplateError, match="the parameter has no Default; give one with --parameter-overrides T=VALUE"
    ):
        load_template(no_default)
    assert load_template(no_default, parameters={"T": "12"}).functions[0].timeout_s == 12
    image = write(tmp_path, FUNCTION + "      PackageType: Image\n")
    assert load_template(image).functions == []
    (tmp_path / "bad.yaml").write_text("Resources: [unclosed")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("Description: nothing\n")
    with pytest.raises(TemplateError, match="no Resources section"):
        load_template(tmp_path / "empty.yaml")
    with pytest.raises(TemplateError, match="cannot read template"):
        load_template(tmp_path / "absent.yaml")


def test_every_short_form_tag_loads(tmp_path: Path) -> None:
    tags = ["Ref", "Sub", "GetAtt", "If", "Join", "Select", "Split", "FindInMap", "Base64", "Cidr", "GetAZs"]
    tags += ["ImportValue", "Equals", "And", "Or", "Not", "Condition", "Transform", "ToJsonString", "Length"]
    body = FUNCTION + "      Tags:\n" + "".join(f"        T{i}: !{tag} x\n" for i, tag in enumerate(tags))
    body += "    Metadata: !Transform {Name: AWS::Include, Parameters: {Location: s3://b/k}}\n"  # SAM: not a property
    assert [f.name for f in load_template(write(tmp_path, body)).functions] == ["Fn"]


async def test_serve_a_sam_template(make_server: MakeServer) -> None:
    template = load_template(SAM)
    served = await make_server(*template.functions, event_configs=template.event_configs)
    client = served.client()
    hello = json.loads((await aws(client.invoke, FunctionName="HelloFunction", Payload=b"{}"))["Payload"])
    assert hello["greeting"] == "from-function" and hello["stage"] == "test" and hello["memory"] == "512"
    assert 4000 < hello["remaining_ms"] <= 5000
    nested = json.loads((await aws(client.invoke, FunctionName="nested-fn", Payload=b'{"text": "hi"}'))["Payload"])
    assert nested["shouted"] == "HI!" and "/layers/shared/python/shared/tools.py" in nested["layer_file"]
    plain = json.loads((await aws(client.invoke, FunctionName="plain", Payload=b"{}"))["Payload"])
    assert plain["plain"] is True and plain["stage"] is None  # no Globals for AWS::Lambda::Function
    configuration = await aws(client.get_function_configuration, FunctionName="plain")
    assert (configuration["Timeout"], configuration["Runtime"], configuration["EphemeralStorage"]) == (
        9,
        "python3.12",
        {"Size": 1024},
    )
    assert (await aws(client.get_function_concurrency, FunctionName="nested-fn"))["ReservedConcurrentExecutions"] == 4
    assert served.app[DISPATCHER].config_for("nested-fn").maximum_retry_attempts == 0
    listed = await aws(client.list_functions)
    assert sorted(f["FunctionName"] for f in listed["Functions"]) == ["HelloFunction", "nested-fn", "plain"]


async def test_serve_a_template_with_intrinsics(make_server: MakeServer) -> None:
    template = load_template(INTRINSICS)
    served = await make_server(*template.functions, event_configs=template.event_configs)
    client = served.client()
    response = await aws(client.invoke, FunctionName="dev-tags", Payload=b"{}")
    env = json.loads(response["Payload"])
    assert env["X_ARN"] == "arn:aws:lambda:us-east-1:123456789012:function:dev-tags"
    assert env["X_MAP"] == "DEBUG" and "X_IMPORTED" not in env
    configuration = await aws(client.get_function_configuration, FunctionName="dev-tags")
    assert (configuration["MemorySize"], configuration["Timeout"]) == (384, 7)
    assert (await aws(client.invoke, FunctionName="OtherFunction", Payload=b"{}"))["StatusCode"] == 200
