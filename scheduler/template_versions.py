"""A template's versions and aliases: ``AWS::Lambda::Version``, ``AWS::Lambda::Alias`` and SAM's
``AutoPublishAlias``, published by the scheduler when it starts.

    template.py (_Reader) ─► PublicationReader ─► Publications (on the Template)
        ─► Scheduler(after_start=publications.apply): each Version published in template order,
           then each Alias created, with the provisioned concurrency they configure

On AWS, SAM turns ``AutoPublishAlias: live`` into a Version of the function and an Alias named
``live`` on it, and moves the function's ``ProvisionedConcurrencyConfig`` onto that alias; an
Alias names its version with ``!GetAtt SomeVersion.Version``, which is only known once the
Version is published — here, a :class:`VersionRef` until then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import arn
from .cfn import Resolver, TemplateError, where
from .engine.versions import Alias

if TYPE_CHECKING:
    from .engine.scheduler import Scheduler

log = logging.getLogger("lambda_scheduler.template")

VERSION = "AWS::Lambda::Version"
ALIAS = "AWS::Lambda::Alias"
TYPES = (VERSION, ALIAS)


@dataclass(frozen=True)
class VersionRef:
    """``!GetAtt V.Version`` (or ``!Ref V``) of a Version resource: its number once published."""

    logical_id: str


VersionName = str | VersionRef


@dataclass(frozen=True)
class VersionSpec:
    logical_id: str
    function: str
    description: str | None = None
    provisioned: int = 0


@dataclass(frozen=True)
class AliasSpec:
    logical_id: str
    function: str
    name: str
    version: VersionName
    weights: tuple[tuple[VersionName, float], ...] = ()
    description: str = ""
    provisioned: int = 0


@dataclass
class Publications:
    versions: list[VersionSpec] = field(default_factory=list)
    aliases: list[AliasSpec] = field(default_factory=list)

    def apply(self, scheduler: Scheduler) -> None:
        """Publish the versions and create the aliases on a started scheduler."""
        numbers: dict[str, str] = {}
        for spec in self.versions:
            published = scheduler.publish_version(spec.function, description=spec.description)
            numbers[spec.logical_id] = published.version
            if spec.provisioned:
                scheduler.set_provisioned_concurrency(spec.function, spec.provisioned, published.version)

        def number(name: VersionName) -> str:
            return numbers[name.logical_id] if isinstance(name, VersionRef) else name

        for alias in self.aliases:
            weights = {number(version): weight for version, weight in alias.weights}
            scheduler.put_alias(
                alias.function, Alias(alias.name, number(alias.version), weights, alias.description), create=True
            )
            if alias.provisioned:
                scheduler.set_provisioned_concurrency(alias.function, alias.provisioned, alias.name)


class PublicationReader:
    """Reads the Version and Alias resources (and AutoPublishAlias) of one template."""

    def __init__(self, resolver: Resolver, functions: Callable[[], set[str]], note: Callable[[str], None]) -> None:
        self.resolver = resolver
        self.functions = functions  # the names of the functions served
        self.note = note
        self.result = Publications()

    def read(self, logical_id: str, resource: dict[str, Any]) -> None:
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            raise TemplateError(f"resource {logical_id}: Properties must be a mapping")
        function = self._function(logical_id, props)
        if function is None:
            return
        if resource["Type"] == VERSION:
            description = self._resolve(logical_id, props, "Description")
            self.result.versions.append(
                VersionSpec(logical_id, function, description, self._provisioned(logical_id, props))
            )
        else:
            self._alias(logical_id, function, props)

    def auto_publish(self, logical_id: str, function: str, alias: str, provisioned: int) -> None:
        """SAM's AutoPublishAlias on function ``logical_id``: a version, and the alias on it
        (with the function's provisioned concurrency)."""
        version_id = f"{logical_id}Version"
        self.result.versions.append(VersionSpec(version_id, function))
        self.result.aliases.append(
            AliasSpec(f"{logical_id}Alias{alias}", function, alias, VersionRef(version_id), provisioned=provisioned)
        )

    def _alias(self, logical_id: str, function: str, props: dict[str, Any]) -> None:
        name = self._resolve(logical_id, props, "Name")
        if not isinstance(name, str) or not name or name.isdigit():
            raise TemplateError(f"{where(logical_id, 'Name')}: must be an alias name (not a number), got {name!r}")
        routing = self._resolve(logical_id, props, "RoutingConfig") or {}
        weights = (routing.get("AdditionalVersionWeights") or []) if isinstance(routing, dict) else None
        if not isinstance(weights, list):
            raise TemplateError(f"{where(logical_id, 'RoutingConfig.AdditionalVersionWeights')}: must be a list")
        pairs = []
        for entry in weights:
            if not isinstance(entry, dict) or not isinstance(entry.get("FunctionWeight"), int | float):
                raise TemplateError(
                    f"{where(logical_id, 'RoutingConfig.AdditionalVersionWeights')}: "
                    f"each entry needs FunctionVersion and FunctionWeight, got {entry!r}"
                )
            pairs.append((self._version(logical_id, entry.get("FunctionVersion")), float(entry["FunctionWeight"])))
        description = self._resolve(logical_id, props, "Description")
        self.result.aliases.append(
            AliasSpec(
                logical_id,
                function,
                name,
                self._version(logical_id, self._resolve(logical_id, props, "FunctionVersion")),
                tuple(pairs),
                description if isinstance(description, str) else "",
                self._provisioned(logical_id, props),
            )
        )

    def _version(self, logical_id: str, value: Any) -> VersionName:
        if isinstance(value, VersionRef):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not (value.isdigit() or value == "$LATEST"):
            raise TemplateError(
                f"{where(logical_id, 'FunctionVersion')}: must be !GetAtt <Version>.Version, a number or $LATEST, "
                f"got {value!r}"
            )
        return value

    def _function(self, logical_id: str, props: dict[str, Any]) -> str | None:
        value = self._resolve(logical_id, props, "FunctionName")
        if not isinstance(value, str):
            raise TemplateError(f"{where(logical_id, 'FunctionName')}: must be a function's name or ARN, got {value!r}")
        name = arn.parse_function_name(value)[0] if ":" in value else value
        if name not in self.functions():
            self.note(f"skipped resource {logical_id}: its FunctionName {name!r} is not a function served here")
            return None
        return name

    def _provisioned(self, logical_id: str, props: dict[str, Any]) -> int:
        config = self._resolve(logical_id, props, "ProvisionedConcurrencyConfig")
        if config is None:
            return 0
        value = config.get("ProvisionedConcurrentExecutions") if isinstance(config, dict) else None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TemplateError(
                f"{where(logical_id, 'ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions')}: "
                f"must be a whole number of at least 1, got {value!r}"
            )
        return value

    def _resolve(self, logical_id: str, props: dict[str, Any], key: str) -> Any:
        return self.resolver.resolve(props.get(key), where(logical_id, key))
