"""The Scheduler's operations on published versions, aliases and per-qualifier provisioned
concurrency: :class:`VersionOperations`, a base class of :class:`~.scheduler.Scheduler`.

    publish_version ─► a frozen FunctionConfig and a Pool of its own, on its runtime's zygote
    put_alias / delete_alias ─► versions.Versions (Lambda's rules) ─► provisioned targets re-applied
    set_provisioned_concurrency(name, n, qualifier) ─► the pools of the version(s) it lands on

What a version or alias is, and Lambda's refusals, are versions.py's; this module owns what the
scheduler does about them: pools made and retired, isolation told of each version's code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..config import FunctionConfig, SchedulerConfig
from ..errors import FunctionNotFound
from ..snapstart import SnapStartApplyOn
from .pool import Pool, PoolContext
from .snapshot import Snapshot
from .status import FunctionStatus, ProvisionedStatus
from .versions import Alias, PublishedVersion, QualifierKind, check_room, version_fingerprint

if TYPE_CHECKING:
    from .isolation.manager import Isolation
    from .scheduler import FunctionState


class VersionOperations:
    """Mixed into the Scheduler, whose functions, pools and settings these act on."""

    settings: SchedulerConfig
    isolation: Isolation
    _retired_pools: set[Pool]

    if TYPE_CHECKING:  # the Scheduler's

        def get_function(self, name: str) -> FunctionState: ...

        def resolve(
            self, function_name: str, qualifier: str | None = None, *, action: str = "lambda:InvokeFunction"
        ) -> FunctionState: ...

        def update_function(self, config: FunctionConfig) -> None: ...

        def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

        def _require_running(self) -> PoolContext: ...

        def _pool(
            self, ctx: PoolContext, config: FunctionConfig, announce: bool = True, version: str = "$LATEST"
        ) -> Pool: ...

    def set_provisioned_concurrency(self, name: str, value: int, qualifier: str | None = None) -> None:
        """Provisioned concurrency of ``$LATEST`` (no qualifier: the template's and the Python
        API's way, which Lambda does not have) or of a published version or alias (0 removes
        that configuration). All of it counts against the function's reserved concurrency."""
        fn = self.get_function(name)
        reserved = fn.admission.reserved
        room = None if reserved is None else reserved - fn.config.provisioned_concurrency - fn.versions.total_provisioned()
        if QualifierKind.of(qualifier) is QualifierKind.LATEST:
            check_room(value - fn.config.provisioned_concurrency, room)
            self.update_function(fn.config.replace(provisioned_concurrency=value))
            return
        assert qualifier is not None
        self.resolve(name, qualifier)  # a version or alias that does not exist is not found
        fn.versions.set_provisioned(qualifier, value, room)
        self._apply_provisioned(fn)

    def _apply_provisioned(self, fn: FunctionState) -> None:
        for version, target in fn.versions.provisioned_targets().items():
            pool = fn.versions.versions[version].pool
            pool.provisioned.target = target
            pool.ensure_provisioned()

    def provisioned_concurrency(self, name: str, qualifier: str) -> ProvisionedStatus | None:
        """The provisioned-concurrency configuration of one version or alias, as Lambda reports
        it (None: there is none); for ``$LATEST``, FunctionStatus.provisioned says it."""
        fn = self.resolve(name, qualifier, action="lambda:GetProvisionedConcurrencyConfig")
        return fn.versions.provisioned_status(qualifier, lambda version: fn.status(version).provisioned)

    def provisioned_qualifiers(self, name: str) -> list[str]:
        """The versions and aliases that have a provisioned-concurrency configuration."""
        return sorted(self.get_function(name).versions.provisioned)

    # --- versions and aliases -------------------------------------------------------------

    def publish_version(
        self, name: str, *, description: str | None = None, code_digest: str | None = None
    ) -> FunctionStatus:
        """Publish ``$LATEST`` as the next version: a frozen snapshot with its own pool. If
        nothing changed since the last version was published, that version is returned, as
        Lambda does (``code_digest`` — the code's CodeSha256 — compares code by content rather
        than by folder)."""
        ctx = self._require_running()
        fn = self.get_function(name)
        # Limits are not part of a version: provisioned concurrency is configured per version.
        snapshot = fn.config.replace(provisioned_concurrency=0)
        fingerprint = version_fingerprint(snapshot, code_digest)
        last = fn.versions.last()
        if last is not None and last.fingerprint == fingerprint:
            return fn.status(last)
        if description is not None:
            snapshot = snapshot.replace(description=description)
        return self._add_version(ctx, fn, fn.versions.take_number(), snapshot, fingerprint)

    def adopt_version(self, name: str, number: str, config: FunctionConfig, code_digest: str) -> FunctionStatus:
        """Add version ``number`` as another process published it (a cluster node): its own
        configuration and code, not $LATEST's. Later versions published here number after it."""
        ctx = self._require_running()
        fn = self.get_function(name)
        found = fn.versions.versions.get(number)
        if found is not None:
            return fn.status(found)
        fn.versions.adopt_number(number)
        snapshot = config.replace(provisioned_concurrency=0)
        return self._add_version(ctx, fn, number, snapshot, version_fingerprint(snapshot, code_digest))

    def _add_version(
        self,
        ctx: PoolContext,
        fn: FunctionState,
        number: str,
        snapshot: FunctionConfig,
        fingerprint: tuple[object, ...],
    ) -> FunctionStatus:
        name = fn.name
        published = PublishedVersion(
            number,
            snapshot,
            self._pool(ctx, snapshot, announce=False, version=number),
            self.settings.function_arn(name, number),
            fingerprint,
        )
        fn.versions.versions[number] = published
        self.isolation.set_function(f"{name}:{number}", snapshot)
        if snapshot.snapstart is SnapStartApplyOn.PUBLISHED_VERSIONS:
            # Pending until Init has run in the snapshot; invocations meanwhile wait for it.
            published.snapshot = Snapshot(published.pool, published.pool.zygote)
            self._background(published.snapshot.take())
        return fn.status(published)

    def delete_version(self, name: str, version: str) -> FunctionStatus:
        """Delete one published version (refused while an alias routes to it); its
        environments shut down, those running finish first. Returns its last snapshot."""
        fn = self.get_function(name)
        published = fn.versions.versions.get(version)
        if published is None:
            raise FunctionNotFound(self.settings.function_arn(name, version))
        fn.versions.check_deletable(version)
        status = fn.status(published)
        self._retire_version(fn, version)
        return status

    def _retire_version(self, fn: FunctionState, version: str) -> None:
        published = fn.versions.versions.pop(version)
        fn.versions.provisioned.pop(version, None)
        self.isolation.set_function(f"{fn.name}:{version}", None)
        published.pool.retire_all()
        if published.snapshot is not None:
            self._background(published.snapshot.close())
        self._retired_pools.add(published.pool)

    def versions(self, name: str) -> list[FunctionStatus]:
        """``$LATEST`` and then every published version, oldest first."""
        fn = self.get_function(name)
        return [fn.status(), *(fn.status(v) for v in fn.versions)]

    def put_alias(self, name: str, alias: Alias, *, create: bool) -> Alias:
        """Create (``create``) or replace an alias, checked as Lambda checks one; provisioned
        concurrency configured on it follows it to its new version."""
        fn = self.get_function(name)
        fn.versions.put_alias(alias, create=create)
        self._apply_provisioned(fn)
        return alias

    def alias(self, name: str, alias_name: str) -> Alias:
        return self.get_function(name).versions.alias(alias_name)

    def aliases(self, name: str) -> list[Alias]:
        fn = self.get_function(name)
        return [fn.versions.aliases[a] for a in sorted(fn.versions.aliases)]

    def delete_alias(self, name: str, alias_name: str) -> None:
        """Delete an alias, with its provisioned-concurrency configuration. Lambda answers
        success for an alias that does not exist."""
        fn = self.get_function(name)
        if fn.versions.delete_alias(alias_name):
            self._apply_provisioned(fn)
