"""FunctionConfig and SchedulerConfig: Lambda's bounds, errors that name the field and bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import ConfigError, FunctionConfig, SchedulerConfig
from scheduler.logconfig import ApplicationLogLevel, LogFormat, LoggingConfig, SystemLogLevel, TracingMode

from .conftest import FUNCTIONS


def make(**kwargs: object) -> FunctionConfig:
    base: dict[str, object] = {"name": "f", "handler": "basic.echo", "code_dir": FUNCTIONS}
    base.update(kwargs)
    return FunctionConfig(**base)  # type: ignore[arg-type]


def test_defaults_are_lambdas() -> None:
    config = make()
    assert (config.runtime, config.memory_mb, config.timeout_s, config.ephemeral_storage_mb) == ("python3.11", 128, 3, 512)
    assert config.reserved_concurrency is None and config.provisioned_concurrency == 0
    assert config.code_dir == FUNCTIONS.resolve() and config.environment == {}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("memory_mb", 127, "memory_mb: must be between 128 and 10240, got 127"),
        ("memory_mb", 10241, "memory_mb: must be between 128 and 10240, got 10241"),
        ("memory_mb", 256.5, "memory_mb: must be an integer between 128 and 10240"),
        ("timeout_s", 901, "timeout_s: must be greater than 0 and at most 900, got 901"),
        ("timeout_s", 0, "timeout_s: must be greater than 0 and at most 900, got 0"),
        ("ephemeral_storage_mb", 511, "ephemeral_storage_mb: must be between 512 and 10240, got 511"),
        ("ephemeral_storage_mb", 10241, "ephemeral_storage_mb: must be between 512 and 10240"),
        ("reserved_concurrency", -1, "reserved_concurrency: must be between 0 and"),
        ("provisioned_concurrency", -1, "provisioned_concurrency: must be between 0 and"),
        ("name", "has space", "name: must match"),
        ("name", "x" * 65, "name: must match"),
        ("handler", "", "handler: must be 1-128 characters"),
        ("handler", "a b.c", "handler: must be 1-128 characters"),
        ("runtime", "nodejs20.x", "runtime: must be a python3.N runtime"),
        ("code_dir", "/does/not/exist", "code_dir: must be an existing directory"),
        ("environment", {"AWS_REGION": "x"}, "environment: AWS_REGION is reserved by Lambda"),
        ("environment", {"1BAD": "x"}, "environment: variable names must match"),
        ("environment", {"K": 1}, "environment: value of K must be a string"),
        ("environment", {"K": "v" * 5000}, "environment: must total at most 4096 bytes"),
    ],
)
def test_out_of_bounds_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        make(**{field: value})
    assert str(exc.value).startswith(message)
    assert exc.value.field == field
    assert exc.value.code == "InvalidParameterValueException" and exc.value.status == 400


def test_provisioned_may_not_exceed_reserved() -> None:
    with pytest.raises(ConfigError, match="provisioned_concurrency: must not exceed reserved_concurrency"):
        make(reserved_concurrency=1, provisioned_concurrency=2)
    assert make(reserved_concurrency=2, provisioned_concurrency=2).provisioned_concurrency == 2


def test_bounds_are_inclusive_and_replace_revalidates(tmp_path: Path) -> None:
    config = make(memory_mb=10240, timeout_s=900, ephemeral_storage_mb=10240, layers=[tmp_path])
    assert config.layers == (tmp_path.resolve(),)
    assert make(timeout_s=0.25).timeout_s == 0.25  # fractions through the Python API
    with pytest.raises(ConfigError, match="memory_mb"):
        config.replace(memory_mb=1)


def test_scheduler_config_bounds() -> None:
    assert SchedulerConfig().account_concurrency == 1000
    assert SchedulerConfig().idle_ttl_s == 600
    with pytest.raises(ConfigError, match="account_concurrency"):
        SchedulerConfig(account_concurrency=0)
    with pytest.raises(ConfigError, match="idle_ttl_s"):
        SchedulerConfig(idle_ttl_s=0)
    with pytest.raises(ConfigError, match="account_id"):
        SchedulerConfig(account_id="abc")
    assert SchedulerConfig(account_concurrency=50).unreserved_floor == 50


def test_logging_and_tracing_settings() -> None:
    config = make()
    assert config.logging == LoggingConfig() and config.tracing is TracingMode.PASS_THROUGH
    assert config.logging.group("f") == "/aws/lambda/f"
    json_logs = LoggingConfig(log_format="JSON", log_group="/custom/group")  # type: ignore[arg-type]
    assert (json_logs.log_format, json_logs.application_log_level, json_logs.system_log_level) == (
        LogFormat.JSON,
        ApplicationLogLevel.INFO,  # JSON without levels: both INFO, as Lambda reports them
        SystemLogLevel.INFO,
    )
    assert json_logs.group("f") == "/custom/group"
    with pytest.raises(ConfigError) as exc:
        LoggingConfig(application_log_level=ApplicationLogLevel.DEBUG)  # Text is the default format
    assert exc.value.field == "logging" and exc.value.body()["message"].startswith("LogLevel is not supported")
    with pytest.raises(ConfigError, match="log_format: must be one of JSON, Text, got 'XML'"):
        LoggingConfig(log_format="XML")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="log_group: must be 1-512 of"):
        LoggingConfig(log_group="has space")
    with pytest.raises(ConfigError, match="tracing: must be one of Active, PassThrough, got 'Sometimes'"):
        make(tracing="Sometimes")
    with pytest.raises(ConfigError, match="logging: must be a LoggingConfig"):
        make(logging={"LogFormat": "JSON"})
