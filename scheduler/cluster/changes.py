"""What an API request changed that the cluster's registry carries, and the registry's keys.

    KV lambda_functions key                 what it holds (the state the last change left)
    <function>                              $LATEST: its FunctionConfiguration and code object
    <function>.version.<N>                  published version N: its FunctionConfiguration and
                                            code object, or its deletion
    <function>.alias.<alias>                the alias (FunctionVersion, weights, description)
    <function>.reserved                     reserved concurrency
    <function>.events[.<qualifier>]         event-invoke settings ($LATEST's without a qualifier)
    <function>.provisioned.<qualifier>      provisioned concurrency of a version or alias

A function's name and an alias are [a-zA-Z0-9-_], a version is digits, so a key is a valid KV
key and tells its parts apart by the dots alone. Deleting the whole function deletes every key
of it; every other deletion is written as an entry saying so, so that a key that disappears
always means its function went.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web

from .. import arn
from ..engine.versions import LATEST

FUNCTIONS_PATH = "/2015-03-31/functions"


class Change(Enum):
    """A change of a function as a whole, or of its list of published versions."""

    CREATED = "created"
    CODE = "code"
    CONFIGURATION = "configuration"
    DELETED = "deleted"
    PUBLISHED = "published"  # PublishVersion
    VERSION_DELETED = "version-deleted"  # DeleteFunction with a version as Qualifier


class Setting(Enum):
    """A part of a function the registry carries as its own key, replayed through the API."""

    RESERVED = "reserved"
    EVENTS = "events"
    PROVISIONED = "provisioned"
    ALIAS = "alias"
    VERSION = "version"  # applied in-process (adopt.py): the API publishes only $LATEST

    def key(self, name: str, qualifier: str | None) -> str:
        if qualifier is None or qualifier == LATEST:
            return f"{name}.{self.value}"
        return f"{name}.{self.value}.{qualifier}"

    def replay_body(self, answered: dict[str, Any]) -> dict[str, Any]:
        """The request body that leaves another node in the state this answer describes."""
        if self is Setting.RESERVED:
            return {"ReservedConcurrentExecutions": answered["ReservedConcurrentExecutions"]}
        if self is Setting.PROVISIONED:
            return {"ProvisionedConcurrentExecutions": answered["RequestedProvisionedConcurrentExecutions"]}
        if self is Setting.ALIAS:
            # Weights travel even when empty: an update that removed them removes them there.
            return {
                "FunctionVersion": answered["FunctionVersion"],
                "Description": answered.get("Description", ""),
                "RoutingConfig": answered.get("RoutingConfig") or {"AdditionalVersionWeights": {}},
            }
        keys = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
        return {k: answered[k] for k in keys if k in answered}

    def path(self, name: str, qualifier: str | None, *, method: str) -> str:
        """Where a replay of ``method`` goes (the query carries the qualifier)."""
        if self is Setting.RESERVED:
            return f"/2017-10-31/functions/{name}/concurrency"
        if self is Setting.PROVISIONED:
            return f"/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={qualifier}"
        if self is Setting.ALIAS:
            base = f"{FUNCTIONS_PATH}/{name}/aliases"
            return base if method == "POST" else f"{base}/{qualifier}"
        if self is Setting.VERSION:
            return f"{FUNCTIONS_PATH}/{name}?Qualifier={qualifier}"
        suffix = "" if qualifier is None or qualifier == LATEST else f"?Qualifier={qualifier}"
        return f"/2019-09-25/functions/{name}/event-invoke-config{suffix}"


@dataclass(frozen=True, slots=True)
class Key:
    """A registry key, parsed: the function, and which part of it (None: $LATEST itself)."""

    name: str
    setting: Setting | None = None
    qualifier: str | None = None

    @classmethod
    def parse(cls, key: str) -> Key:
        name, _, rest = key.partition(".")
        if not rest:
            return cls(name)
        kind, _, qualifier = rest.partition(".")
        return cls(name, Setting(kind), qualifier or None)

    def text(self) -> str:
        return self.name if self.setting is None else self.setting.key(self.name, self.qualifier)


@dataclass(frozen=True, slots=True)
class Changed:
    """What one answered request changed: a function-level change or one setting."""

    name: str
    change: Change | None = None
    setting: Setting | None = None
    qualifier: str | None = None  # of a setting; an alias created is named by its answer


_SETTING_ROUTES = {
    ("2017-10-31", "concurrency"): Setting.RESERVED,
    ("2019-09-25", "event-invoke-config"): Setting.EVENTS,
    ("2019-09-30", "provisioned-concurrency"): Setting.PROVISIONED,
}


def changed_by(request: web.Request) -> Changed | None:
    """What a request to the API changes in the registry's terms, or None (a read, an
    invocation, anything else)."""
    if request.method not in ("POST", "PUT", "DELETE"):
        return None
    parts = request.path.rstrip("/").split("/")  # "", date, "functions", name, what, which
    if len(parts) < 3 or parts[2] != "functions":
        return None
    if len(parts) == 3:
        is_create = request.method == "POST" and parts[1] == "2015-03-31"
        return Changed("", Change.CREATED) if is_create else None  # named by the answer
    name, qualifier = arn.parse_function_name(parts[3], request.query.get("Qualifier"))
    if parts[1] == "2015-03-31":
        return _function_change(request.method, name, qualifier, parts[4:])
    setting = _SETTING_ROUTES.get((parts[1], parts[4] if len(parts) == 5 else ""))
    if setting is None or (setting is Setting.RESERVED and request.method == "POST"):
        return None
    return Changed(name, setting=setting, qualifier=qualifier)


def _function_change(method: str, name: str, qualifier: str | None, rest: list[str]) -> Changed | None:
    if not rest:
        if method != "DELETE":
            return None
        return Changed(name, Change.DELETED if qualifier is None else Change.VERSION_DELETED, qualifier=qualifier)
    what = rest[0]
    if method == "PUT" and len(rest) == 1 and what in ("code", "configuration"):
        return Changed(name, Change.CODE if what == "code" else Change.CONFIGURATION)
    if method == "POST" and rest == ["versions"]:
        return Changed(name, Change.PUBLISHED)
    if what == "aliases" and (method == "POST") == (len(rest) == 1) and len(rest) <= 2:
        return Changed(name, setting=Setting.ALIAS, qualifier=rest[1] if len(rest) == 2 else None)
    return None
