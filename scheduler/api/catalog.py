"""What the management API tells about a function beyond its FunctionConfig: role, tags,
revision, last modification, and its code's size and digest.

The Scheduler knows what runs; the catalog keeps what Lambda reports. A record is made when the
API creates a function, or on first sight for a function that came from a template or the
Python API, and is replaced if the name comes back as a new function. A published version has
a record of its own, made from the function's when it is first seen (at publication, so its
code digest is the one ``$LATEST`` had then); an alias has its own RevisionId.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..codezip import CodeInfo, describe_dir
from ..engine.status import FunctionStatus
from ..engine.versions import LATEST


def timestamp() -> str:
    """Lambda's LastModified: ``2024-01-01T00:00:00.000+0000``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def new_revision() -> str:
    return str(uuid.uuid4())


class Lifecycle(enum.StrEnum):
    """A function's ``State``: Pending in CreateFunction's answer, Active from then on."""

    PENDING = "Pending"
    ACTIVE = "Active"


class UpdateStatus(enum.StrEnum):
    """``LastUpdateStatus``: InProgress in an update's answer, Successful from then on."""

    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"


@dataclass
class FunctionRecord:
    state: FunctionStatus  # the function this describes; a new one under the same name is another
    role: str
    architectures: list[str] = field(default_factory=lambda: ["x86_64"])
    tags: dict[str, str] = field(default_factory=dict)
    code: CodeInfo | None = None  # None until first described (template code is hashed lazily)
    code_dir: Path | None = None  # uploaded code: a revision folder in the code store
    revision_id: str = field(default_factory=new_revision)
    last_modified: str = field(default_factory=timestamp)
    provisioned_modified: str | None = None
    # Of $LATEST's record only: the published versions' records, and each alias's RevisionId
    # and the LastModified of each version's or alias's provisioned-concurrency configuration.
    versions: dict[str, FunctionRecord] = field(default_factory=dict)
    alias_revisions: dict[str, str] = field(default_factory=dict)
    provisioned_by_qualifier: dict[str, str] = field(default_factory=dict)
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    update_status: UpdateStatus = UpdateStatus.SUCCESSFUL

    def touch(self) -> None:
        self.revision_id = new_revision()
        self.last_modified = timestamp()

    def version_record(self, fn: FunctionStatus) -> FunctionRecord:
        """A published version's record: this one's role, architectures and tags; the code
        digest if the version runs this record's code."""
        found = self.versions.get(fn.version)
        if found is None:
            # The folder this record's code digest describes: the last upload, or the template's.
            described = self.code_dir if self.code_dir is not None else self.state.config.code_dir
            same_code = Path(fn.config.code_dir) == Path(described)
            found = self.versions[fn.version] = dataclasses.replace(
                self,
                state=fn,
                code=self.code if same_code else None,
                code_dir=None if self.code_dir is None else Path(fn.config.code_dir),
                revision_id=new_revision(),
                last_modified=timestamp(),
                provisioned_modified=None,
                versions={},
                alias_revisions={},
                provisioned_by_qualifier={},
            )
        return found

    def alias_revision(self, alias: str, *, renew: bool = False) -> str:
        if renew or alias not in self.alias_revisions:
            self.alias_revisions[alias] = new_revision()
        return self.alias_revisions[alias]

    def changing(self, lifecycle: Lifecycle | None = None) -> None:
        """The request that made or changed the function is answered as Lambda answers it:
        Pending (a new function) or InProgress (an update), so clients wait with boto3's
        function_active_v2 / function_updated_v2 waiters as they must against Lambda. The
        route calls :meth:`settle` once that answer is built: here the change is complete by
        then (the code unpacked, the configuration in place)."""
        if lifecycle is None:
            self.update_status = UpdateStatus.IN_PROGRESS
        else:
            self.lifecycle = lifecycle

    def settle(self) -> None:
        self.lifecycle = Lifecycle.ACTIVE
        self.update_status = UpdateStatus.SUCCESSFUL


class Catalog:
    def __init__(self, account_id: str) -> None:
        self.default_role = f"arn:aws:iam::{account_id}:role/lambda-scheduler"
        self._records: dict[str, FunctionRecord] = {}

    def add(self, record: FunctionRecord) -> FunctionRecord:
        self._records[record.state.name] = record
        return record

    def record(self, fn: FunctionStatus) -> FunctionRecord:
        """The record of the function (or published version) ``fn`` describes."""
        base = self.function_record(fn)
        return base if fn.version == LATEST else base.version_record(fn)

    def function_record(self, fn: FunctionStatus) -> FunctionRecord:
        """The record of the function ``fn`` belongs to ($LATEST's)."""
        found = self._records.get(fn.name)
        if found is None or found.state.incarnation != fn.incarnation:
            # A version seen before its function (a template's) stands in for it until then.
            found = self.add(FunctionRecord(fn, self.default_role))
        return found

    def forget(self, name: str) -> FunctionRecord | None:
        return self._records.pop(name, None)

    async def code(self, fn: FunctionStatus) -> CodeInfo:
        """CodeSize and CodeSha256; a folder is hashed once, in a thread."""
        record = self.record(fn)
        if record.code is None:
            code_dir = Path(fn.config.code_dir)
            record.code = await asyncio.to_thread(describe_dir, code_dir)
        return record.code
