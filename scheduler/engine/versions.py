"""Published versions and aliases of one function: what a qualifier names.

    Scheduler.invoke(name, qualifier) ─► FunctionState ─► Versions.target
        None / "$LATEST" ─► the function's own configuration and pool (it changes with updates)
        "3"              ─► PublishedVersion 3: a frozen FunctionConfig with a pool of its own
        "live"           ─► Alias: its FunctionVersion, or, with AdditionalVersionWeights, the
                            other version with that probability (Alias.pick)

On Lambda a version is an immutable snapshot of the code and configuration of ``$LATEST``;
versions are numbered from 1 and a number is never given again, even after its version was
deleted. Two versions never share an execution environment, so each has its own pool. An alias
is a name for one version (or two, weighted). Reserved concurrency belongs to the function and
covers every version; provisioned concurrency is configured per version or alias, never on
``$LATEST``, and an alias's is allocated on the version(s) it points to.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import FunctionConfig
from ..errors import FunctionNotFound, InvalidParameterValue, ResourceConflict, ResourceNotFound, constraint_violation
from .status import ProvisionedStatus, provisioned_state

if TYPE_CHECKING:
    from .pool import Pool
    from .snapshot import Snapshot

LATEST = "$LATEST"


class QualifierKind(enum.Enum):
    """What a qualifier names: Lambda tells a version from an alias by its digits."""

    LATEST = "latest"
    VERSION = "version"
    ALIAS = "alias"

    @classmethod
    def of(cls, qualifier: str | None) -> QualifierKind:
        if qualifier is None or qualifier == LATEST:
            return cls.LATEST
        return cls.VERSION if qualifier.isdigit() else cls.ALIAS


@dataclass(frozen=True, slots=True)
class Alias:
    """An alias: ``function_version`` gets what ``weights`` (AdditionalVersionWeights: at most
    one other version, with the probability of routing to it) leaves."""

    name: str
    function_version: str
    weights: Mapping[str, float] = field(default_factory=dict)
    description: str = ""

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.function_version, *self.weights)

    def pick(self, draw: float) -> str:
        """The version an invocation runs on, for ``draw`` uniform in [0, 1)."""
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.function_version

    def shares(self, requested: int) -> dict[str, int]:
        """Provisioned concurrency configured on the alias, by version: a weighted alias
        splits it in proportion to the weights (the primary version takes the rounding)."""
        out: dict[str, int] = {}
        left = requested
        for version, weight in self.weights.items():
            out[version] = round(requested * weight)
            left -= out[version]
        out[self.function_version] = max(0, left)
        return out


class PublishedVersion:
    """One published version: its number, frozen configuration and pool. ``fingerprint`` is
    what it was published from, so publishing an unchanged ``$LATEST`` again returns it."""

    __slots__ = ("arn", "config", "fingerprint", "pool", "snapshot", "version")

    def __init__(self, version: str, config: FunctionConfig, pool: Pool, arn: str, fingerprint: object) -> None:
        self.version = version
        self.config = config
        self.pool = pool
        self.arn = arn
        self.fingerprint = fingerprint
        self.snapshot: Snapshot | None = None  # SnapStart's, when it applies to this version


# Not part of what a version is: the limits (configured per version, or the function's), and
# the folder the code happens to be in.
_UNVERSIONED_FIELDS = frozenset({"reserved_concurrency", "provisioned_concurrency", "code_dir"})


def version_fingerprint(config: FunctionConfig, code_digest: str | None) -> tuple[object, ...]:
    """What makes a published version differ from another: its settings but the limits, and
    its code — by digest when known (the same zip uploaded again is the same code)."""
    settings = tuple(
        (name, getattr(config, name)) for name in config.__dataclass_fields__ if name not in _UNVERSIONED_FIELDS
    )
    return (*settings, code_digest or str(config.code_dir))


def check_weights(function_version: str, weights: Mapping[str, float]) -> None:
    """Lambda's refusals of a RoutingConfig, in its words (the versions' existence is the
    caller's to check)."""
    if len(weights) > 1:
        raise InvalidParameterValue("Number of items in AdditionalVersionWeights cannot be greater than 1")
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            raise constraint_violation(
                f"{{{version}={weight}}}",
                "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
                "Member must have value greater than or equal to 0.0]",
            )
        if QualifierKind.of(version) is not QualifierKind.VERSION:
            raise constraint_violation(
                f"{{{version}={weight}}}",
                "routingConfig.additionalVersionWeights",
                "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, "
                "Member must have length greater than or equal to 1, Member must satisfy regular expression "
                "pattern: [0-9]+]",
            )
        if version == function_version:
            raise InvalidParameterValue(
                f"Invalid function version {version}. Function version {version} is already included in "
                "routing configuration."
            )
        if function_version == LATEST:
            raise InvalidParameterValue("$LATEST is not supported for an alias pointing to more than 1 version")


def check_room(increase: int, room: int | None) -> None:
    """Provisioned concurrency may not exceed the function's reserved concurrency, in all."""
    if room is not None and increase > 0 and increase > room:
        raise InvalidParameterValue(
            "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function"
        )


class Versions:
    """A function's published versions, aliases and provisioned-concurrency configurations,
    and Lambda's rules for them. ``arn_of(qualifier)`` names what an error is about."""

    __slots__ = ("_next", "aliases", "arn_of", "provisioned", "versions")

    def __init__(self, arn_of: Callable[[str], str]) -> None:
        self.arn_of = arn_of
        self.versions: dict[str, PublishedVersion] = {}
        self.aliases: dict[str, Alias] = {}
        # ProvisionedConcurrentExecutions configured per qualifier (a version or an alias).
        self.provisioned: dict[str, int] = {}
        self._next = 1

    def __iter__(self) -> Iterator[PublishedVersion]:
        return iter(sorted(self.versions.values(), key=lambda v: int(v.version)))

    def last(self) -> PublishedVersion | None:
        """The most recently published version, if it still exists."""
        return self.versions.get(str(self._next - 1))

    def take_number(self) -> str:
        number = str(self._next)
        self._next += 1
        return number

    def adopt_number(self, number: str) -> None:
        """A version numbered elsewhere exists: the next one published here comes after it."""
        self._next = max(self._next, int(number) + 1)

    def names(self, qualifier: str | None) -> bool:
        """Whether ``qualifier`` names $LATEST, a published version or an alias."""
        kind = QualifierKind.of(qualifier)
        if kind is QualifierKind.LATEST:
            return True
        return qualifier in (self.versions if kind is QualifierKind.VERSION else self.aliases)

    def target(self, qualifier: str | None, draw: float | None) -> PublishedVersion | None:
        """The published version ``qualifier`` names (None: $LATEST). An alias gives its
        FunctionVersion, or, with ``draw`` (uniform in [0, 1): an invocation), its pick."""
        kind = QualifierKind.of(qualifier)
        if kind is QualifierKind.ALIAS:
            assert qualifier is not None
            alias = self.aliases[qualifier]
            qualifier = alias.function_version if draw is None else alias.pick(draw)
            kind = QualifierKind.of(qualifier)
        if kind is QualifierKind.LATEST:
            return None
        assert qualifier is not None
        return self.versions[qualifier]

    # --- aliases ----------------------------------------------------------------------------

    def put_alias(self, alias: Alias, *, create: bool) -> None:
        """Create (``create``) or replace an alias, refused as Lambda refuses one."""
        existing = self.aliases.get(alias.name)
        if create and existing is not None:
            raise ResourceConflict(f"Alias already exists: {self.arn_of(alias.name)}")
        if not create and existing is None:
            raise self._alias_not_found(alias.name)
        check_weights(alias.function_version, alias.weights)
        for version in alias.versions:
            if version != LATEST and version not in self.versions:
                raise FunctionNotFound(self.arn_of(version))
        if alias.name in self.provisioned:
            self.check_alias_provisioned(alias)
        self.aliases[alias.name] = alias

    def alias(self, name: str) -> Alias:
        found = self.aliases.get(name)
        if found is None:
            raise self._alias_not_found(name)
        return found

    def delete_alias(self, name: str) -> bool:
        """Remove an alias and its provisioned concurrency; False if there was none."""
        if self.aliases.pop(name, None) is None:
            return False
        self.provisioned.pop(name, None)
        return True

    def _alias_not_found(self, name: str) -> ResourceNotFound:
        return ResourceNotFound(f"Cannot find alias arn: {self.arn_of(name)}")

    def referencing(self, version: str) -> list[str]:
        """The aliases that route to ``version``."""
        return sorted(name for name, alias in self.aliases.items() if version in alias.versions)

    def check_deletable(self, version: str) -> None:
        users = self.referencing(version)
        if users:
            raise ResourceConflict(
                f"Unable to delete version because the following aliases reference it: [{', '.join(users)}]"
            )

    def check_alias_provisioned(self, alias: Alias) -> None:
        """Provisioned concurrency on an alias: only on published versions, and not on a
        version that has its own configuration."""
        if LATEST in alias.versions:
            raise InvalidParameterValue(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
            )
        if any(version in self.provisioned for version in alias.versions):
            raise ResourceConflict(
                "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version"
            )

    def provisioned_targets(self) -> dict[str, int]:
        """The provisioned environments each published version should keep."""
        targets = dict.fromkeys(self.versions, 0)
        for qualifier, requested in self.provisioned.items():
            alias = self.aliases.get(qualifier)
            shares = alias.shares(requested) if alias is not None else {qualifier: requested}
            for version, n in shares.items():
                if version in targets:
                    targets[version] += n
        return targets

    def total_provisioned(self) -> int:
        return sum(self.provisioned.values())

    def set_provisioned(self, qualifier: str, value: int, room: int | None) -> None:
        """Configure (``value`` > 0) or remove provisioned concurrency on a version or alias;
        ``room``: what the function's reserved concurrency leaves for it (None: no limit)."""
        if not value:
            self.provisioned.pop(qualifier, None)
            return
        alias = self.aliases.get(qualifier)
        if alias is not None:
            self.check_alias_provisioned(alias)
        check_room(value - self.provisioned.get(qualifier, 0), room)
        self.provisioned[qualifier] = value

    def provisioned_status(
        self, qualifier: str, status_of: Callable[[PublishedVersion], ProvisionedStatus]
    ) -> ProvisionedStatus | None:
        """A version's or alias's configuration as Lambda reports it: what its version(s)
        allocated, up to what it requested (None: it has none)."""
        requested = self.provisioned.get(qualifier)
        if requested is None:
            return None
        alias = self.aliases.get(qualifier)
        names = alias.versions if alias is not None else (qualifier,)
        statuses = [status_of(self.versions[name]) for name in names]
        allocated = min(requested, sum(p.allocated for p in statuses))
        starting = sum(p.starting for p in statuses)
        reason = next((p.reason for p in statuses if p.reason is not None), None)
        state = provisioned_state(requested, allocated, starting, reason)
        return ProvisionedStatus(requested, allocated, starting, sum(p.busy for p in statuses), state, reason)
