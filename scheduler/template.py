"""AWS SAM / CloudFormation template → the functions ``lambda-scheduler serve`` runs.

    template.yaml ─► cfn.load ─► sam.expand (the official SAM transform) ─► plain CloudFormation
                  ─► functions, layers, event-invoke configs, versions, aliases ─► Template
                  ─► Scheduler(functions) and the event dispatcher's configs

``AWS::Serverless::*`` resources are expanded by the SAM translator first (Globals, Events,
AutoPublishAlias, Layers, EventInvokeConfig, DeadLetterQueue …), so this module reads plain
CloudFormation: ``AWS::Lambda::Function`` (Handler, Code as a local folder, Runtime, MemorySize,
Timeout, Environment.Variables, ReservedConcurrentExecutions, EphemeralStorage, FunctionName,
Layers, Description, DeadLetterConfig, LoggingConfig, SnapStart, TracingConfig.Mode — SAM's ``Tracing``), ``AWS::Lambda::LayerVersion`` (a folder whose
``python/`` is importable, as ``/opt/python`` on Lambda), ``AWS::Lambda::EventInvokeConfig``,
``AWS::Lambda::Version`` and ``AWS::Lambda::Alias``. Every other resource is skipped with a
note. A value the scheduler needs but cannot resolve is a :class:`TemplateError` naming the
resource and property as the template wrote them; an environment variable that cannot be
resolved is left unset, with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import arn, validation
from .cfn import NO_VALUE, Resolver, TemplateError, as_int, load, where
from .config import EPHEMERAL_STORAGE, MEMORY, TIMEOUT, FunctionConfig, SchedulerConfig
from .errors import ConfigError, InvalidParameterValue, SchedulerError, ValidationError
from .events import DestinationConfig, EventInvokeConfig
from .events.destinations import dead_letter_target
from .events.model import config_key
from .logconfig import TracingMode
from .named import NAMED_TYPES, Place
from .sam import SERVERLESS_FUNCTION, expand
from .template_versions import AliasRecord, VersionRecord, provisioned_executions, publish, read_alias, read_version

if TYPE_CHECKING:
    from .engine.scheduler import Scheduler

__all__ = ["AliasRecord", "Template", "TemplateError", "VersionRecord", "load_template"]

log = logging.getLogger("lambda_scheduler.template")

LAMBDA_FUNCTION = "AWS::Lambda::Function"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
VERSION = "AWS::Lambda::Version"
ALIAS = "AWS::Lambda::Alias"
SERVED_TYPES = (LAMBDA_FUNCTION, LAMBDA_LAYER, EVENT_INVOKE_CONFIG, VERSION, ALIAS)


@dataclass
class Template:
    path: Path
    functions: list[FunctionConfig] = field(default_factory=list)
    event_configs: dict[str, EventInvokeConfig] = field(default_factory=dict)
    # Function name → the qualifier its event-invoke config was written for ($LATEST, or the
    # alias AutoPublishAlias made): see event_configs_by_qualifier.
    event_config_qualifiers: dict[str, str] = field(default_factory=dict)
    # Function name → its dead-letter queue (SAM DeadLetterQueue, DeadLetterConfig.TargetArn).
    dead_letters: dict[str, str] = field(default_factory=dict)
    # AWS::Lambda::Version resources by logical ID, and AWS::Lambda::Alias resources, as the
    # template (or SAM's AutoPublishAlias) declares them; published by ``publish``.
    versions: dict[str, VersionRecord] = field(default_factory=dict)
    aliases: list[AliasRecord] = field(default_factory=list)
    # What was skipped or left out, one sentence each (also logged).
    notes: list[str] = field(default_factory=list)

    def publish(self, scheduler: Scheduler) -> None:
        """The template's versions and aliases, on a started scheduler (its ``after_start``)."""
        publish(self.versions, self.aliases, scheduler)

    def event_configs_by_qualifier(self) -> dict[str, EventInvokeConfig]:
        """The event-invoke configs keyed as the event queue keeps them: one per function,
        version or alias (an AutoPublishAlias function's is its alias's, as on AWS)."""
        return {
            config_key(name, self.event_config_qualifiers.get(name)): config
            for name, config in self.event_configs.items()
        }


@dataclass(frozen=True)
class _LayerRef:
    """What ``!Ref`` to a layer resource resolves to, until a function's Layers use it."""

    logical_id: str


def load_template(
    path: str | Path, *, parameters: Mapping[str, str] | None = None, settings: SchedulerConfig | None = None
) -> Template:
    """Read a SAM / CloudFormation template into FunctionConfigs. Raises TemplateError."""
    return _Reader(Path(path), parameters or {}, settings or SchedulerConfig()).read()


class _Props:
    """One resource's properties, resolved on demand with messages in the template's terms."""

    def __init__(self, reader: _Reader, logical_id: str, props: Any) -> None:
        if not isinstance(props, dict):
            raise TemplateError(f"{reader.where(logical_id, 'Properties')}: must be a mapping")
        self.reader = reader
        self.logical_id = logical_id
        self.props: dict[str, Any] = props

    def get(self, prop: str) -> Any:
        return self.props.get(prop)

    def resolve(self, value: Any, prop: str) -> Any:
        return self.reader.resolver.resolve(value, self.where(prop))

    def where(self, prop: str) -> str:
        return self.reader.where(self.logical_id, prop)

    def value(self, prop: str, default: Any = None) -> Any:
        return self.resolve(self.props[prop], prop) if prop in self.props else default

    def integer(self, prop: str, default: int, low: int, high: int) -> int:
        return as_int(self.value(prop, default), self.where(prop), low, high)


class _Reader:
    def __init__(self, path: Path, parameters: Mapping[str, str], settings: SchedulerConfig) -> None:
        self.path = path.resolve()
        self.base = self.path.parent
        self.settings = settings
        self.result = Template(self.path)
        pseudo = {
            "AWS::Region": settings.region,
            "AWS::AccountId": settings.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
            "AWS::StackId": f"arn:aws:cloudformation:{settings.region}:{settings.account_id}:stack/local/local",
            "AWS::NotificationARNs": [],
        }
        self.place = Place("aws", settings.region, settings.account_id)
        original = load(self.path)
        for logical_id, resource in original["Resources"].items():
            if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
                raise TemplateError(f"resource {logical_id} has no Type")
        expanded = expand(original, parameters, pseudo, settings.region)
        self.data = expanded.data
        self.resources: dict[str, Any] = self.data["Resources"]
        self.origins = expanded.origins
        self.generated = expanded.generated
        self.lifted = expanded.provisioned_on_latest
        for note in expanded.notes:
            self.note(note)
        self.resolver = Resolver(self.data, parameters, pseudo, self._ref, self._get_att)
        self.names: dict[str, str] = {}  # function logical id → function name
        self.provisioned: dict[str, int] = {}  # function logical id → provisioned concurrency
        self._noted_refs: set[str] = set()
        self._naming: set[str] = set()  # named resources whose name is being resolved

    def note(self, text: str) -> None:
        self.result.notes.append(text)
        log.info("%s: %s", self.path.name, text)

    def where(self, logical_id: str, prop: str) -> str:
        """``resource X, property Y`` as the template wrote them, before the SAM transform."""
        origin = self.origins.get(logical_id)
        if origin is None:
            return where(logical_id, prop)
        head, dot, rest = prop.partition(".")
        return where(origin.logical_id, origin.name_of(head) + dot + rest)

    def _from_sam(self, logical_id: str) -> bool:
        origin = self.origins.get(logical_id)
        return origin is not None and origin.kind == SERVERLESS_FUNCTION

    # --- what !Ref and !GetAtt mean for resources ----------------------------------------

    def _ref(self, logical_id: str) -> Any | None:
        if logical_id in self.names:
            return self.names[logical_id]
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict):
            return None
        kind = resource.get("Type")
        if kind == LAMBDA_LAYER:
            return _LayerRef(logical_id)
        if kind == ALIAS:
            alias = self._alias_target(logical_id, resource)
            if alias is not None:
                return self.settings.function_arn(*alias)
        name = self._physical_name(logical_id, resource)
        if name is not None:
            named = NAMED_TYPES[str(kind)]
            return named.value(named.ref, name, self.place)
        if logical_id not in self._noted_refs:
            self._noted_refs.add(logical_id)
            self.note(f"!Ref {logical_id} ({kind}) stands for its logical ID locally")
        return logical_id

    def _get_att(self, logical_id: str, attribute: str) -> Any | None:
        if logical_id in self.names and attribute == "Arn":
            return self.settings.function_arn(self.names[logical_id])
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict):
            return None
        named = NAMED_TYPES.get(str(resource.get("Type")))
        if named is None or attribute not in named.attributes:
            return None
        name = self._physical_name(logical_id, resource)
        return None if name is None else named.value(named.attributes[attribute], name, self.place)

    def _physical_name(self, logical_id: str, resource: dict[str, Any]) -> str | None:
        """The name property of a named resource type (TableName, QueueName …), if it is set."""
        named = NAMED_TYPES.get(str(resource.get("Type")))
        props = resource.get("Properties")
        if named is None or not isinstance(props, dict) or named.name_property not in props:
            return None
        at = self.where(logical_id, named.name_property)
        if logical_id in self._naming:
            raise TemplateError(f"{at}: the name refers to itself")
        self._naming.add(logical_id)
        try:
            name = self.resolver.resolve(props[named.name_property], at)
        finally:
            self._naming.discard(logical_id)
        if not isinstance(name, str):
            raise TemplateError(f"{at}: must be a string, got {name!r}")
        return name

    def _alias_target(self, logical_id: str, resource: dict[str, Any]) -> tuple[str, str] | None:
        """(function name, alias name) of an alias resource."""
        props = _Props(self, logical_id, resource.get("Properties") or {})
        function = self._function_of(props)
        name = props.value("Name")
        return (function[1], name) if function is not None and isinstance(name, str) else None

    def _function_of(self, props: _Props) -> tuple[str, str] | None:
        """(logical id, name) of the function served here that ``FunctionName`` names: by
        ``!Ref``, by name, or by ARN."""
        raw = props.get("FunctionName")
        if isinstance(raw, dict) and raw.get("Ref") in self.names:
            return raw["Ref"], self.names[raw["Ref"]]
        value = props.resolve(raw, "FunctionName")
        if isinstance(value, str):
            try:
                name = arn.parse(value).name
            except InvalidParameterValue:
                return None
            for logical_id, known in self.names.items():
                if known == name:
                    return logical_id, name
        return None

    # --- the template ---------------------------------------------------------------------

    def read(self) -> Template:
        active: dict[str, dict[str, Any]] = {}
        for logical_id, resource in self.resources.items():
            condition = resource.get("Condition")
            if isinstance(condition, str) and not self.resolver.condition(condition, f"resource {logical_id}"):
                self.note(f"skipped resource {logical_id}: its condition {condition} is false")
                continue
            active[logical_id] = resource
        functions = {lid: r for lid, r in active.items() if r["Type"] == LAMBDA_FUNCTION}
        for logical_id, resource in functions.items():
            self.names[logical_id] = self._function_name(logical_id, resource)
        for logical_id, config in self.lifted.items():
            self.provisioned[logical_id] = provisioned_executions(_Props(self, logical_id, {}), config)
        self._versions_and_aliases(active)
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
        generated = []
        for logical_id, resource in active.items():
            kind = resource["Type"]
            if kind == EVENT_INVOKE_CONFIG:
                self._event_invoke(logical_id, resource)
            elif kind in SERVED_TYPES:
                continue
            elif logical_id in self.generated:
                generated.append(f"{logical_id} ({kind})")
            else:
                written = self.origins[logical_id].kind if logical_id in self.origins else kind
                self.note(f"skipped resource {logical_id} ({written}): only functions and their layers are served")
        if generated:
            self.note(f"skipped what the SAM transform made besides functions: {', '.join(generated)}")
        return self.result

    def _versions_and_aliases(self, active: dict[str, dict[str, Any]]) -> None:
        versions = {lid: r for lid, r in active.items() if r["Type"] == VERSION}
        found = [(lid, r) for lid, r in active.items() if r["Type"] in (VERSION, ALIAS)]
        for logical_id, resource in found:
            props = _Props(self, logical_id, resource.get("Properties") or {})
            function = self._function_of(props)
            if function is None:
                self.note(f"skipped resource {logical_id}: its FunctionName is not a function served here")
                continue
            if resource["Type"] == VERSION:
                self.result.versions[logical_id] = read_version(logical_id, props, function)
            else:
                self.result.aliases.append(read_alias(logical_id, props, function, versions))

    def _function_name(self, logical_id: str, resource: dict[str, Any]) -> str:
        name = _Props(self, logical_id, resource.get("Properties") or {}).value("FunctionName")
        if name is None:
            return logical_id
        if not isinstance(name, str):
            raise TemplateError(f"{self.where(logical_id, 'FunctionName')}: must be a string, got {name!r}")
        return name

    def _function(self, logical_id: str, resource: dict[str, Any]) -> FunctionConfig | None:
        props = _Props(self, logical_id, resource.get("Properties") or {})
        name = self.names[logical_id]
        if props.value("PackageType", "Zip") == "Image":
            self.note(f"skipped function {logical_id}: container image functions are not run by this scheduler")
            return None
        runtime = props.value("Runtime")
        if not isinstance(runtime, str):
            raise TemplateError(f"{props.where('Runtime')}: required for a zip function (python3.N), got {runtime!r}")
        if not runtime.startswith("python3."):
            self.note(f"skipped function {logical_id}: runtime {runtime} is not Python")
            return None
        handler = props.value("Handler")
        if not isinstance(handler, str):
            raise TemplateError(f"{props.where('Handler')}: required, got {handler!r}")
        settings: dict[str, Any] = {
            "memory_mb": props.integer("MemorySize", 128, MEMORY.low, MEMORY.high),
            "timeout_s": props.integer("Timeout", 3, TIMEOUT.low, TIMEOUT.high),
            "environment": self._environment(props),
            "layers": self._layers(props),
            "provisioned_concurrency": self.provisioned.get(logical_id, 0),
        }
        reserved = props.value("ReservedConcurrentExecutions")
        if reserved is not None:
            settings["reserved_concurrency"] = as_int(
                reserved, props.where("ReservedConcurrentExecutions"), 0, 1_000_000
            )
        storage = props.value("EphemeralStorage")
        if storage is not None:
            size = storage.get("Size") if isinstance(storage, dict) else None
            settings["ephemeral_storage_mb"] = as_int(
                size, props.where("EphemeralStorage.Size"), EPHEMERAL_STORAGE.low, EPHEMERAL_STORAGE.high
            )
        description = props.value("Description")
        if isinstance(description, str):
            settings["description"] = description
        settings.update(self._observability(props))
        self._dead_letter(name, props)
        try:
            return FunctionConfig(
                name=name, handler=handler, runtime=runtime, code_dir=self._code_dir(props), **settings
            )
        except ConfigError as exc:
            raise TemplateError(f"resource {logical_id}: {exc.message}") from None

    def _observability(self, props: _Props) -> dict[str, Any]:
        """LoggingConfig, SnapStart, and TracingConfig.Mode (what SAM's ``Tracing: Active`` becomes)."""
        out: dict[str, Any] = {}
        logging_config = props.value("LoggingConfig")
        if logging_config is not None:
            if not isinstance(logging_config, dict):
                raise TemplateError(f"{props.where('LoggingConfig')}: must be a mapping, got {logging_config!r}")
            try:
                out["logging"] = validation.logging_config(logging_config)
            except SchedulerError as exc:
                raise TemplateError(f"{props.where('LoggingConfig')}: {exc.message}") from None
        snapstart = props.value("SnapStart")
        if snapstart is not None:
            if not isinstance(snapstart, dict):
                raise TemplateError(f"{props.where('SnapStart')}: must be a mapping, got {snapstart!r}")
            try:
                out["snapstart"] = validation.snapstart(snapstart)
            except SchedulerError as exc:
                raise TemplateError(f"{props.where('SnapStart')}: {exc.message}") from None
        config = props.value("TracingConfig")
        mode = config.get("Mode") if isinstance(config, dict) else config
        if mode is not None:
            try:
                out["tracing"] = TracingMode(mode)
            except ValueError:
                raise TemplateError(f"{props.where('TracingConfig.Mode')}: must be Active or PassThrough, got {mode!r}") from None
        return out

    def _code_dir(self, props: _Props) -> Path:
        code = props.value("Code", ".")
        if isinstance(code, dict) and "ZipFile" in code:
            inline = "InlineCode" if self._from_sam(props.logical_id) else "Code.ZipFile"
            raise TemplateError(
                f"{props.where(inline)}: inline code is not supported; put it in a folder and use CodeUri"
            )
        if not isinstance(code, str):
            raise TemplateError(
                f"{props.where('Code')}: must be a local folder (relative to the template); "
                f"S3 locations and inline code cannot be served locally, got {code!r}"
            )
        return self._folder(props, "Code", code)

    def _folder(self, props: _Props, prop: str, relative: str) -> Path:
        path = (self.base / relative).resolve()
        if path.suffix == ".zip" or not path.is_dir():
            raise TemplateError(f"{props.where(prop)}: {relative!r} is not a folder next to the template ({path})")
        return path

    def _environment(self, props: _Props) -> dict[str, str]:
        env = props.get("Environment") or {}
        variables = env.get("Variables") if isinstance(env, dict) else None
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise TemplateError(f"{props.where('Environment.Variables')}: must be a mapping")
        out = {}
        for key, raw in variables.items():
            at = f"Environment.Variables.{key}"
            try:
                value = props.resolve(raw, at)
            except TemplateError as exc:
                self.note(f"{exc}; the variable is left unset")
                continue
            if value is NO_VALUE:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int | float):
                raise TemplateError(f"{props.where(at)}: must be a string, got {value!r}")
            out[str(key)] = str(value)
        return out

    def _layers(self, props: _Props) -> tuple[Path, ...]:
        layers = props.value("Layers", [])
        if not isinstance(layers, list):
            raise TemplateError(f"{props.where('Layers')}: must be a list")
        out = []
        for layer in layers:
            if isinstance(layer, _LayerRef):
                out.append(self._layer_dir(layer.logical_id))
            else:
                self.note(
                    f"{props.where('Layers')}: layer {layer} is not defined in this template and cannot be fetched; "
                    "skipped"
                )
        return tuple(out)

    def _layer_dir(self, logical_id: str) -> Path:
        props = _Props(self, logical_id, self.resources[logical_id].get("Properties") or {})
        content = props.value("Content")
        if not isinstance(content, str):
            raise TemplateError(
                f"{props.where('Content')}: must be a local folder (relative to the template), got {content!r}"
            )
        return self._folder(props, "Content", content)

    # --- event-invoke settings ------------------------------------------------------------

    def _event_invoke(self, logical_id: str, resource: dict[str, Any]) -> None:
        props = _Props(self, logical_id, resource.get("Properties") or {})
        function = self._function_of(props)
        if function is None:
            name = props.value("FunctionName")
            self.note(f"skipped resource {logical_id}: its FunctionName {name!r} is not a function served here")
            return
        name = function[1]
        config = props.resolve(props.props, "Properties")
        at = props.where("Properties.DestinationConfig")
        try:
            self.result.event_configs[name] = EventInvokeConfig(
                maximum_retry_attempts=config.get("MaximumRetryAttempts", 2),
                maximum_event_age_s=config.get("MaximumEventAgeInSeconds", 21_600),
                destinations=DestinationConfig(
                    on_success=_destination(at, config, "OnSuccess"),
                    on_failure=_destination(at, config, "OnFailure"),
                ),
            )
        except ValidationError as exc:
            raise TemplateError(f"{props.where('Properties')}: {exc.message}") from None
        except InvalidParameterValue as exc:
            raise TemplateError(f"{at}: {exc.message}") from None
        qualifier = config.get("Qualifier")
        self.result.event_config_qualifiers[name] = qualifier if isinstance(qualifier, str) else "$LATEST"

    def _dead_letter(self, name: str, props: _Props) -> None:
        """``DeadLetterConfig: {TargetArn}`` (SAM's ``DeadLetterQueue: {Type, TargetArn}``
        becomes one; the transform checks its Type)."""
        config = props.value("DeadLetterConfig")
        if config is None:
            return
        target = config.get("TargetArn") if isinstance(config, dict) else None
        if not isinstance(target, str):
            raise TemplateError(f"{props.where('DeadLetterConfig.TargetArn')}: must be an ARN, got {target!r}")
        try:
            self.result.dead_letters[name] = dead_letter_target(target)
        except InvalidParameterValue as exc:
            raise TemplateError(f"{props.where('DeadLetterConfig')}: {exc.message}") from None


def _destination(at: str, config: dict[str, Any], key: str) -> str | None:
    """``OnSuccess`` / ``OnFailure``: ``Destination``, an ARN."""
    destinations = config.get("DestinationConfig") or {}
    entry = destinations.get(key) if isinstance(destinations, dict) else None
    if entry is None:
        return None
    target = entry.get("Destination") if isinstance(entry, dict) else None
    if not isinstance(target, str):
        raise TemplateError(f"{at}.{key}.Destination: must be an ARN, got {target!r}")
    return target
