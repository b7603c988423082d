"""AWS SAM / CloudFormation template → the functions ``lambda-scheduler serve`` runs.

    template.yaml ─► cfn.load ─► functions, layers, event-invoke configs ─► Template
                                  (Globals.Function merged, intrinsics resolved)
                  ─► Scheduler(functions) and the event dispatcher's configs

Reads ``AWS::Serverless::Function`` and ``AWS::Lambda::Function`` (Handler, CodeUri / Code,
Runtime, MemorySize, Timeout, Environment.Variables, ReservedConcurrentExecutions,
ProvisionedConcurrencyConfig, EphemeralStorage, FunctionName, Layers, Description, LoggingConfig,
Tracing (SAM) / TracingConfig.Mode, EventInvokeConfig with DestinationConfig, DeadLetterQueue / DeadLetterConfig), ``AWS::Serverless::LayerVersion`` / ``AWS::Lambda::LayerVersion`` (a folder
whose ``python/`` is importable, as ``/opt/python`` on Lambda) and ``AWS::Lambda::EventInvokeConfig``.
Every other resource is skipped with a note. A value the scheduler needs but cannot resolve is a
:class:`TemplateError` naming the resource and property; an environment variable that cannot be
resolved is left unset, with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import validation
from .cfn import NO_VALUE, Resolver, TemplateError, load, where
from .config import EPHEMERAL_STORAGE, MEMORY, TIMEOUT, Bound, FunctionConfig, SchedulerConfig
from .errors import ConfigError, InvalidParameterValue, SchedulerError, ValidationError
from .events import DestinationConfig, EventInvokeConfig
from .events.destinations import DestinationKind, dead_letter_target, kind_of
from .logconfig import TracingMode

__all__ = ["Template", "TemplateError", "load_template"]

log = logging.getLogger("lambda_scheduler.template")

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
FUNCTION_TYPES = (SERVERLESS_FUNCTION, LAMBDA_FUNCTION)
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"


@dataclass
class Template:
    path: Path
    functions: list[FunctionConfig] = field(default_factory=list)
    event_configs: dict[str, EventInvokeConfig] = field(default_factory=dict)
    # Function name → its dead-letter queue (SAM DeadLetterQueue, DeadLetterConfig.TargetArn).
    dead_letters: dict[str, str] = field(default_factory=dict)
    # What was skipped or left out, one sentence each (also logged).
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _LayerRef:
    """What ``!Ref`` to a layer resource resolves to, until a function's Layers use it."""

    logical_id: str


def load_template(
    path: str | Path, *, parameters: Mapping[str, str] | None = None, settings: SchedulerConfig | None = None
) -> Template:
    """Read a SAM / CloudFormation template into FunctionConfigs. Raises TemplateError."""
    return _Reader(Path(path), parameters or {}, settings or SchedulerConfig()).read()


class _Reader:
    def __init__(self, path: Path, parameters: Mapping[str, str], settings: SchedulerConfig) -> None:
        self.path = path.resolve()
        self.base = self.path.parent
        self.data = load(self.path)
        self.resources: dict[str, Any] = self.data["Resources"]
        self.settings = settings
        self.result = Template(self.path)
        self.names: dict[str, str] = {}  # function logical id → function name
        self._noted_refs: set[str] = set()
        pseudo = {
            "AWS::Region": settings.region,
            "AWS::AccountId": settings.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
            "AWS::StackId": f"arn:aws:cloudformation:{settings.region}:{settings.account_id}:stack/local/local",
            "AWS::NotificationARNs": [],
        }
        self.resolver = Resolver(self.data, parameters, pseudo, self._ref, self._get_att)
        globals_ = self.data.get("Globals") or {}
        function_globals = globals_.get("Function") if isinstance(globals_, dict) else None
        self.globals: dict[str, Any] = function_globals if isinstance(function_globals, dict) else {}

    def note(self, text: str) -> None:
        self.result.notes.append(text)
        log.info("%s: %s", self.path.name, text)

    # --- what !Ref and !GetAtt mean for resources ----------------------------------------

    def _ref(self, logical_id: str) -> Any | None:
        if logical_id in self.names:
            return self.names[logical_id]
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict):
            return None
        if resource.get("Type") in LAYER_TYPES:
            return _LayerRef(logical_id)
        if logical_id not in self._noted_refs:
            self._noted_refs.add(logical_id)
            self.note(f"!Ref {logical_id} ({resource.get('Type')}) stands for its logical ID locally")
        return logical_id

    def _get_att(self, logical_id: str, attribute: str) -> Any | None:
        if logical_id in self.names and attribute == "Arn":
            return self.settings.function_arn(self.names[logical_id])
        return None

    # --- the template ---------------------------------------------------------------------

    def read(self) -> Template:
        active: dict[str, dict[str, Any]] = {}
        for logical_id, resource in self.resources.items():
            if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
                raise TemplateError(f"resource {logical_id} has no Type")
            condition = resource.get("Condition")
            if isinstance(condition, str) and not self.resolver.condition(condition, f"resource {logical_id}"):
                self.note(f"skipped resource {logical_id}: its condition {condition} is false")
                continue
            active[logical_id] = resource
        functions = {lid: r for lid, r in active.items() if r["Type"] in FUNCTION_TYPES}
        for logical_id, resource in functions.items():
            self.names[logical_id] = self._function_name(logical_id, resource)
        seen: dict[str, str] = {}
        for logical_id, resource in functions.items():
            config = self._function(logical_id, resource)
            if config is None:
                continue
            if config.name in seen:
                raise TemplateError(
                    f"resources {seen[config.name]} and {logical_id} both define function {config.name}"
                )
            seen[config.name] = logical_id
            self.result.functions.append(config)
        for logical_id, resource in active.items():
            kind = resource["Type"]
            if kind == EVENT_INVOKE_CONFIG:
                self._event_invoke_resource(logical_id, resource)
            elif kind not in FUNCTION_TYPES and kind not in LAYER_TYPES:
                self.note(f"skipped resource {logical_id} ({kind}): only functions and their layers are served")
        return self.result

    def _properties(self, logical_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            raise TemplateError(f"resource {logical_id}: Properties must be a mapping")
        if resource["Type"] == SERVERLESS_FUNCTION:
            return _merge_globals(self.globals, props)
        return props

    def _prop(self, logical_id: str, props: dict[str, Any], name: str, default: Any = None) -> Any:
        if name not in props:
            return default
        return self.resolver.resolve(props[name], where(logical_id, name))

    def _function_name(self, logical_id: str, resource: dict[str, Any]) -> str:
        props = resource.get("Properties") or {}
        name = (
            self.resolver.resolve(props.get("FunctionName"), where(logical_id, "FunctionName"))
            if isinstance(props, dict)
            else None
        )
        if name is None:
            return logical_id
        if not isinstance(name, str):
            raise TemplateError(f"{where(logical_id, 'FunctionName')}: must be a string, got {name!r}")
        return name

    def _function(self, logical_id: str, resource: dict[str, Any]) -> FunctionConfig | None:
        props = self._properties(logical_id, resource)
        name = self.names[logical_id]
        if self._prop(logical_id, props, "PackageType", "Zip") == "Image":
            self.note(f"skipped function {logical_id}: container image functions are not run by this scheduler")
            return None
        runtime = self._prop(logical_id, props, "Runtime")
        if not isinstance(runtime, str):
            raise TemplateError(
                f"{where(logical_id, 'Runtime')}: required for a zip function (python3.N), got {runtime!r}"
            )
        if not runtime.startswith("python3."):
            self.note(f"skipped function {logical_id}: runtime {runtime} is not Python")
            return None
        handler = self._prop(logical_id, props, "Handler")
        if not isinstance(handler, str):
            raise TemplateError(f"{where(logical_id, 'Handler')}: required, got {handler!r}")
        settings: dict[str, Any] = {
            "memory_mb": self._int(logical_id, props, "MemorySize", 128, MEMORY),
            "timeout_s": self._int(logical_id, props, "Timeout", 3, TIMEOUT),
            "environment": self._environment(logical_id, props),
            "layers": self._layers(logical_id, props),
            "provisioned_concurrency": self._provisioned(logical_id, props),
        }
        reserved = self._prop(logical_id, props, "ReservedConcurrentExecutions")
        if reserved is not None:
            settings["reserved_concurrency"] = _as_int(
                reserved, where(logical_id, "ReservedConcurrentExecutions"), 0, 1_000_000
            )
        storage = self._prop(logical_id, props, "EphemeralStorage")
        if storage is not None:
            size = storage.get("Size") if isinstance(storage, dict) else None
            settings["ephemeral_storage_mb"] = _as_int(
                size, where(logical_id, "EphemeralStorage.Size"), EPHEMERAL_STORAGE.low, EPHEMERAL_STORAGE.high
            )
        description = self._prop(logical_id, props, "Description")
        if isinstance(description, str):
            settings["description"] = description
        settings.update(self._observability(logical_id, resource, props))
        self._event_invoke_property(logical_id, name, props)
        self._dead_letter(logical_id, name, resource, props)
        try:
            return FunctionConfig(
                name=name,
                handler=handler,
                runtime=runtime,
                code_dir=self._code_dir(logical_id, resource, props),
                **settings,
            )
        except ConfigError as exc:
            raise TemplateError(f"resource {logical_id}: {exc.message}") from None

    def _int(self, logical_id: str, props: dict[str, Any], name: str, default: int, bound: Bound) -> int:
        return _as_int(self._prop(logical_id, props, name, default), where(logical_id, name), bound.low, bound.high)

    def _observability(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
        """LoggingConfig (the function's or Globals'), and tracing: SAM's ``Tracing: Active``
        or a ``TracingConfig: {Mode: Active}`` (either resource type)."""
        out: dict[str, Any] = {}
        logging_config = self._prop(logical_id, props, "LoggingConfig")
        if logging_config is not None:
            at = where(logical_id, "LoggingConfig")
            if not isinstance(logging_config, dict):
                raise TemplateError(f"{at}: must be a mapping, got {logging_config!r}")
            try:
                out["logging"] = validation.logging_config(logging_config)
            except SchedulerError as exc:
                raise TemplateError(f"{at}: {exc.message}") from None
        mode = self._prop(logical_id, props, "Tracing") if resource["Type"] == SERVERLESS_FUNCTION else None
        key = "Tracing"
        if mode is None:
            config = self._prop(logical_id, props, "TracingConfig")
            mode, key = (config.get("Mode") if isinstance(config, dict) else config), "TracingConfig.Mode"
        if mode is not None and mode != "Disabled":  # SAM's Disabled: no tracing configuration
            try:
                out["tracing"] = TracingMode(mode)
            except ValueError:
                raise TemplateError(f"{where(logical_id, key)}: must be Active or PassThrough, got {mode!r}") from None
        return out

    def _code_dir(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> Path:
        key = "CodeUri" if resource["Type"] == SERVERLESS_FUNCTION else "Code"
        if resource["Type"] == SERVERLESS_FUNCTION and "InlineCode" in props:
            raise TemplateError(
                f"{where(logical_id, 'InlineCode')}: inline code is not supported; put it in a folder and use CodeUri"
            )
        code = self._prop(logical_id, props, key, ".")
        if not isinstance(code, str):
            raise TemplateError(
                f"{where(logical_id, key)}: must be a local folder (relative to the template); "
                f"S3 locations and inline code cannot be served locally, got {code!r}"
            )
        return self._folder(logical_id, key, code)

    def _folder(self, logical_id: str, prop: str, relative: str) -> Path:
        path = (self.base / relative).resolve()
        if path.suffix == ".zip" or not path.is_dir():
            raise TemplateError(
                f"{where(logical_id, prop)}: {relative!r} is not a folder next to the template ({path})"
            )
        return path

    def _environment(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        env = props.get("Environment") or {}
        variables = env.get("Variables") if isinstance(env, dict) else None
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise TemplateError(f"{where(logical_id, 'Environment.Variables')}: must be a mapping")
        out = {}
        for key, raw in variables.items():
            at = where(logical_id, f"Environment.Variables.{key}")
            try:
                value = self.resolver.resolve(raw, at)
            except TemplateError as exc:
                self.note(f"{exc}; the variable is left unset")
                continue
            if value is NO_VALUE:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int | float):
                raise TemplateError(f"{at}: must be a string, got {value!r}")
            out[str(key)] = str(value)
        return out

    def _layers(self, logical_id: str, props: dict[str, Any]) -> tuple[Path, ...]:
        layers = self._prop(logical_id, props, "Layers", [])
        if not isinstance(layers, list):
            raise TemplateError(f"{where(logical_id, 'Layers')}: must be a list")
        out = []
        for layer in layers:
            if isinstance(layer, _LayerRef):
                out.append(self._layer_dir(layer.logical_id))
            else:
                self.note(
                    f"{where(logical_id, 'Layers')}: layer {layer} is not defined in this template and cannot be "
                    "fetched; skipped"
                )
        return tuple(out)

    def _layer_dir(self, logical_id: str) -> Path:
        resource = self.resources[logical_id]
        props = resource.get("Properties") or {}
        key = "ContentUri" if resource["Type"] == "AWS::Serverless::LayerVersion" else "Content"
        content = self._prop(logical_id, props, key)
        if not isinstance(content, str):
            raise TemplateError(
                f"{where(logical_id, key)}: must be a local folder (relative to the template), got {content!r}"
            )
        return self._folder(logical_id, key, content)

    def _provisioned(self, logical_id: str, props: dict[str, Any]) -> int:
        config = self._prop(logical_id, props, "ProvisionedConcurrencyConfig")
        if config is None:
            return 0
        value = config.get("ProvisionedConcurrentExecutions") if isinstance(config, dict) else None
        return _as_int(
            value, where(logical_id, "ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions"), 0, 1_000_000
        )

    # --- event-invoke settings ------------------------------------------------------------

    def _event_invoke_property(self, logical_id: str, name: str, props: dict[str, Any]) -> None:
        config = self._prop(logical_id, props, "EventInvokeConfig")
        if config is not None:
            self._event_invoke(logical_id, "EventInvokeConfig", name, config)

    def _event_invoke_resource(self, logical_id: str, resource: dict[str, Any]) -> None:
        props = resource.get("Properties") or {}
        name = self._prop(logical_id, props, "FunctionName")
        known = set(self.names.values())
        if name not in known:
            self.note(f"skipped resource {logical_id}: its FunctionName {name!r} is not a function served here")
            return
        self._event_invoke(logical_id, "Properties", name, props)

    def _event_invoke(self, logical_id: str, prop: str, name: str, config: Any) -> None:
        if not isinstance(config, dict):
            raise TemplateError(f"{where(logical_id, prop)}: must be a mapping")
        config = self.resolver.resolve(config, where(logical_id, prop))
        at = where(logical_id, prop + ".DestinationConfig")
        try:
            self.result.event_configs[name] = EventInvokeConfig(
                maximum_retry_attempts=config.get("MaximumRetryAttempts", 2),
                maximum_event_age_s=config.get("MaximumEventAgeInSeconds", 21_600),
                destinations=DestinationConfig(
                    on_success=self._destination(at, config, "OnSuccess"),
                    on_failure=self._destination(at, config, "OnFailure"),
                ),
            )
        except ValidationError as exc:
            raise TemplateError(f"{where(logical_id, prop)}: {exc.message}") from None
        except InvalidParameterValue as exc:
            raise TemplateError(f"{at}: {exc.message}") from None

    def _destination(self, at: str, config: dict[str, Any], key: str) -> str | None:
        """``OnSuccess`` / ``OnFailure``: ``Destination`` (an ARN), with SAM's ``Type`` when given
        (it must name the ARN's service)."""
        destinations = config.get("DestinationConfig") or {}
        entry = destinations.get(key) if isinstance(destinations, dict) else None
        if entry is None:
            return None
        arn = entry.get("Destination") if isinstance(entry, dict) else None
        if not isinstance(arn, str):
            raise TemplateError(f"{at}.{key}.Destination: must be an ARN, got {arn!r}")
        kind = entry.get("Type")
        if kind is not None and kind != kind_of(arn).value:
            choices = "|".join(k.value for k in DestinationKind)
            raise TemplateError(f"{at}.{key}.Type: {kind!r} (one of {choices}) does not match the ARN {arn}")
        return arn

    def _dead_letter(self, logical_id: str, name: str, resource: dict[str, Any], props: dict[str, Any]) -> None:
        """SAM's ``DeadLetterQueue: {Type: SQS|SNS, TargetArn}``; CloudFormation's
        ``DeadLetterConfig: {TargetArn}``."""
        key = "DeadLetterQueue" if resource["Type"] == SERVERLESS_FUNCTION else "DeadLetterConfig"
        config = self._prop(logical_id, props, key)
        if config is None:
            return
        target = config.get("TargetArn") if isinstance(config, dict) else None
        if not isinstance(target, str):
            raise TemplateError(f"{where(logical_id, key + '.TargetArn')}: must be an ARN, got {target!r}")
        try:
            self.result.dead_letters[name] = dead_letter_target(target)
        except InvalidParameterValue as exc:
            raise TemplateError(f"{where(logical_id, key)}: {exc.message}") from None
        kind = config.get("Type")
        if kind is not None and kind != kind_of(target).value:
            raise TemplateError(f"{where(logical_id, key + '.Type')}: {kind!r} does not match the ARN {target}")


def _merge_globals(globals_: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's rules: a function's own scalar wins, mappings merge, lists are added together."""
    merged = dict(globals_)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and (next(iter(value)) in ("Ref", "Condition") or next(iter(value)).startswith("Fn::"))


def _as_int(value: Any, at: str, low: int, high: int) -> int:
    """Lambda's integers: whole numbers (a digit string from a parameter counts), in bounds."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError(f"{at}: must be a whole number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise TemplateError(f"{at}: must be between {low} and {high}, got {value}")
    return value
