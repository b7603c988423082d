"""A template's ``AWS::Lambda::Version`` and ``AWS::Lambda::Alias`` resources, as typed records.

SAM's ``AutoPublishAlias: live`` becomes one ``AWS::Lambda::Version`` (its logical ID ends in a
hash of the code and configuration, so a change publishes a new version) and one
``AWS::Lambda::Alias`` named ``live`` pointing at it (``FunctionVersion: !GetAtt
FnVersionHASH.Version``), carrying the function's ``ProvisionedConcurrencyConfig`` and
``VersionDescription``. Templates may also declare both kinds directly. An alias's
``RoutingConfig.AdditionalVersionWeights`` sends a share of its invocations to a second version.
:func:`publish` makes them real once the scheduler runs: each version published in template
order (an immutable snapshot of the function as loaded), then each alias created on the
numbers those versions got, with the provisioned concurrency they configure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .cfn import TemplateError, as_int
from .engine.versions import Alias

if TYPE_CHECKING:
    from .engine.scheduler import Scheduler

__all__ = ["AliasRecord", "Properties", "RoutingWeight", "VersionRecord", "provisioned_executions", "read_alias"]
__all__ += ["publish", "read_version"]


class Properties(Protocol):
    """One resource's properties, as the template reader resolves them."""

    def get(self, prop: str) -> Any:
        """The property's raw value (intrinsics unresolved), None when absent."""

    def resolve(self, value: Any, prop: str) -> Any:
        """``value`` (of property ``prop``) with its intrinsics resolved."""

    def where(self, prop: str) -> str:
        """The resource and property, for a message: ``resource Fn, property Timeout``."""


@dataclass(frozen=True)
class VersionRecord:
    logical_id: str
    function_id: str  # the function's logical ID
    function_name: str
    description: str | None = None
    provisioned_concurrency: int = 0


@dataclass(frozen=True)
class RoutingWeight:
    version: str  # as AliasRecord.version
    weight: float  # 0.0–1.0: the share of the alias's invocations this version gets


@dataclass(frozen=True)
class AliasRecord:
    logical_id: str
    function_id: str
    function_name: str
    name: str
    # The logical ID of an AWS::Lambda::Version of this template (a key of Template.versions),
    # or a version given literally ("$LATEST", "3").
    version: str
    description: str | None = None
    routing: tuple[RoutingWeight, ...] = ()
    provisioned_concurrency: int = 0


def read_version(logical_id: str, props: Properties, function: tuple[str, str]) -> VersionRecord:
    return VersionRecord(
        logical_id,
        *function,
        description=_description(props),
        provisioned_concurrency=provisioned_executions(props),
    )


def read_alias(
    logical_id: str, props: Properties, function: tuple[str, str], versions: Mapping[str, Any]
) -> AliasRecord:
    """``versions``: the template's AWS::Lambda::Version resources, by logical ID."""
    name = props.resolve(props.get("Name"), "Name")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{props.where('Name')}: required, got {name!r}")
    raw_routing = props.get("RoutingConfig")
    raw_weights = raw_routing.get("AdditionalVersionWeights", []) if isinstance(raw_routing, dict) else raw_routing
    if raw_weights is None:
        raw_weights = []
    if not isinstance(raw_weights, list):
        raise TemplateError(f"{props.where('RoutingConfig.AdditionalVersionWeights')}: must be a list")
    return AliasRecord(
        logical_id,
        *function,
        name=name,
        version=_version(props.get("FunctionVersion"), versions, props, "FunctionVersion"),
        description=_description(props),
        routing=tuple(_weight(raw, versions, props) for raw in raw_weights),
        provisioned_concurrency=provisioned_executions(props),
    )


def provisioned_executions(props: Properties, raw: Any = None) -> int:
    """``ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: N}`` → N (0 without
    one); ``raw`` stands for the property when given."""
    prop = "ProvisionedConcurrencyConfig"
    config = props.resolve(props.get(prop) if raw is None else raw, prop)
    if config is None:
        return 0
    value = config.get("ProvisionedConcurrentExecutions") if isinstance(config, dict) else None
    return as_int(value, props.where(prop + ".ProvisionedConcurrentExecutions"), 0, 1_000_000)


def _weight(raw: Any, versions: Mapping[str, Any], props: Properties) -> RoutingWeight:
    at = "RoutingConfig.AdditionalVersionWeights"
    if not isinstance(raw, dict):
        raise TemplateError(f"{props.where(at)}: each entry must be a mapping")
    weight = props.resolve(raw.get("FunctionWeight"), at + ".FunctionWeight")
    if isinstance(weight, str):
        try:
            weight = float(weight)
        except ValueError:
            pass
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise TemplateError(f"{props.where(at + '.FunctionWeight')}: must be between 0.0 and 1.0, got {weight!r}")
    return RoutingWeight(_version(raw.get("FunctionVersion"), versions, props, at + ".FunctionVersion"), float(weight))


def _version(raw: Any, versions: Mapping[str, Any], props: Properties, prop: str) -> str:
    """``!GetAtt FnVersion.Version`` (or ``!Ref FnVersion``) of a version resource is that
    resource; anything else must resolve to a version number."""
    target = None
    if isinstance(raw, dict) and isinstance(raw.get("Fn::GetAtt"), list) and raw["Fn::GetAtt"][1:] == ["Version"]:
        target = raw["Fn::GetAtt"][0]
    elif isinstance(raw, dict) and set(raw) == {"Ref"}:
        target = raw["Ref"]
    if isinstance(target, str) and target in versions:
        return target
    value = props.resolve(raw, prop)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise TemplateError(f"{props.where(prop)}: must name a version, got {value!r}")
    return value


def _description(props: Properties) -> str | None:
    value = props.resolve(props.get("Description"), "Description")
    return value if isinstance(value, str) else None


def publish(versions: Mapping[str, VersionRecord], aliases: list[AliasRecord], scheduler: Scheduler) -> None:
    """Publish ``versions`` (in template order) and create ``aliases`` on a started scheduler.
    An alias names a version of the template by its logical ID, or a number literally."""
    numbers: dict[str, str] = {}
    for record in versions.values():
        published = scheduler.publish_version(record.function_name, description=record.description)
        numbers[record.logical_id] = published.version
        if record.provisioned_concurrency:
            scheduler.set_provisioned_concurrency(record.function_name, record.provisioned_concurrency, published.version)
    for alias in aliases:
        weights = {numbers.get(w.version, w.version): w.weight for w in alias.routing}
        target = numbers.get(alias.version, alias.version)
        scheduler.put_alias(alias.function_name, Alias(alias.name, target, weights, alias.description or ""), create=True)
        if alias.provisioned_concurrency:
            scheduler.set_provisioned_concurrency(alias.function_name, alias.provisioned_concurrency, alias.name)
