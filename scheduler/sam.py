"""The AWS SAM transform, run offline with the translator ``sam`` itself uses (aws-sam-translator).

    template data ─► local CodeUri / ContentUri swapped for placeholder S3 locations
                  ─► samtranslator Translator.translate ─► plain CloudFormation
                  ─► placeholders swapped back for the local folders ─► Expanded

CloudFormation expands ``AWS::Serverless::*`` resources (Globals, AutoPublishAlias, Events,
Layers, EventInvokeConfig, DeadLetterQueue, DeploymentPreference …) into plain
``AWS::Lambda::*``, IAM, event-source and CodeDeploy resources before anything is created; the
translator is that expansion, so a template means here what it means on AWS.

The translator only accepts S3 locations for code: like ``sam validate`` does, each local
folder is replaced by a fake S3 URI before translating — one per folder, so the versions it
hashes from the code differ when folders differ (not when files in one change) — and turned
back into the folder afterwards, in the ``Code`` / ``Content`` of the functions and layers it
produced. It needs no AWS credentials nor configuration: managed policy names come from the
map bundled with it, the region and account are the scheduler's settings, and nested
Serverless Repository applications (which it would fetch) become nested stacks first.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .cfn import Resolver, TemplateError, where

__all__ = ["Expanded", "Origin", "expand", "uses_sam"]

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
SERVERLESS_APPLICATION = "AWS::Serverless::Application"
NESTED_STACK = "AWS::CloudFormation::Stack"
# The fake bucket local folders are swapped for while the translator runs.
LOCAL_BUCKET = "lambda-scheduler-local"
GLOBALS_FUNCTION = "Globals.Function"

# What the translator names a plain resource's property after the SAM one it came from, so a
# message can use the name the template's author wrote.
_SAM_PROPERTY_NAMES = {
    SERVERLESS_FUNCTION: {"Code": "CodeUri", "DeadLetterConfig": "DeadLetterQueue"},
    SERVERLESS_LAYER: {"Content": "ContentUri"},
}

# The translator's warnings are for the service that runs it (usage metrics never sent, feature
# toggles it has no configuration for), not for the template's author: only errors are shown.
logging.getLogger("samtranslator").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Origin:
    """Where a resource of the expanded template came from: the resource as written (its
    logical ID and Type) and, for a resource made from some of its properties, which."""

    logical_id: str
    kind: str
    names: Mapping[str, str] = field(default_factory=dict)  # expanded property → as written

    def name_of(self, prop: str) -> str:
        """The name the template used for ``prop`` of the expanded resource."""
        if prop in self.names:
            return self.names[prop]
        return _SAM_PROPERTY_NAMES.get(self.kind, {}).get(prop, prop)


@dataclass
class Expanded:
    """The template as plain CloudFormation, and what the SAM transform did to it."""

    data: dict[str, Any]
    # Expanded logical id → where it came from, for every resource a SAM resource became.
    origins: dict[str, Origin] = field(default_factory=dict)
    # The resources the transform added (roles, permissions, versions …), by logical id.
    generated: set[str] = field(default_factory=set)
    # Function logical id → the ProvisionedConcurrencyConfig it had without AutoPublishAlias.
    provisioned_on_latest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def uses_sam(data: Mapping[str, Any]) -> bool:
    """Whether the template needs the SAM transform: it declares it, or it has an
    ``AWS::Serverless::*`` resource (sam accepts those without the Transform line)."""
    transform = data.get("Transform")
    declared = transform if isinstance(transform, list) else [transform]
    if SAM_TRANSFORM in declared:
        return True
    resources = data.get("Resources") or {}
    return any(
        isinstance(r, dict) and isinstance(r.get("Type"), str) and r["Type"].startswith("AWS::Serverless::")
        for r in resources.values()
    )


def expand(data: Mapping[str, Any], parameters: Mapping[str, str], pseudo: Mapping[str, Any], region: str) -> Expanded:
    """The SAM transform of ``data`` (left untouched); a template without SAM comes back as it
    is. Raises TemplateError with the translator's own words for a template it refuses."""
    if not uses_sam(data):
        return Expanded(copy.deepcopy(dict(data)))
    return _Expansion(data, parameters, pseudo, region).run()


class _Expansion:
    def __init__(
        self, data: Mapping[str, Any], parameters: Mapping[str, str], pseudo: Mapping[str, Any], region: str
    ) -> None:
        self.sam = copy.deepcopy(dict(data))
        self.parameters = parameters
        self.pseudo = pseudo
        self.region = region
        # Resource references cannot be resolved before the transform: a folder given by one is
        # reported as unresolvable.
        self.resolver = Resolver(self.sam, parameters, pseudo, lambda _: None, lambda _r, _a: None)
        self.result = Expanded({})
        self.folders: dict[str, str] = {}  # placeholder S3 key → the local folder as written
        self.layers: dict[str, str] = {}  # placeholder S3 key → the layer's logical id
        self.written: dict[str, str] = {}  # logical id → Type, as the template declares them
        resources = self.sam.get("Resources")
        self.resources: dict[str, Any] = resources if isinstance(resources, dict) else {}
        globals_ = self.sam.get("Globals")
        function = globals_.get("Function") if isinstance(globals_, dict) else None
        self.globals: dict[str, Any] = function if isinstance(function, dict) else {}

    def run(self) -> Expanded:
        # The translator adds to the template it is given (an implicit API …): what the
        # template itself declares is taken first.
        self.written = {lid: str(r.get("Type")) for lid, r in self.resources.items() if isinstance(r, dict)}
        self._prepare()
        if not uses_sam({"Resources": self.resources}):
            # Only image functions were SAM's; the translator refuses a template left empty.
            self.result.data = self.sam
            return self.result
        plain = self._translate()
        for logical_id, resource in plain.get("Resources", {}).items():
            self._restore(logical_id, resource)
        self.result.data = plain
        return self.result

    # --- before: what the translator cannot take from a local template ---------------------

    def _prepare(self) -> None:
        if "CodeUri" in self.globals:
            self.globals["CodeUri"] = self._local(self.globals["CodeUri"], f"{GLOBALS_FUNCTION}, property CodeUri")
        for logical_id, resource in list(self.resources.items()):
            if not isinstance(resource, dict):
                continue
            props = resource.setdefault("Properties", {})
            if not isinstance(props, dict):
                raise TemplateError(f"resource {logical_id}: Properties must be a mapping")
            if resource.get("Type") == SERVERLESS_FUNCTION:
                self._function(logical_id, props)
            elif resource.get("Type") == SERVERLESS_APPLICATION:
                # SAM makes a nested stack of it, after fetching a Serverless Application Repository
                # template over the network; a nested stack is not served here either way.
                resource["Type"], resource["Properties"] = NESTED_STACK, {}
            elif resource.get("Type") == SERVERLESS_LAYER and "ContentUri" in props:
                props["ContentUri"] = self._local(props["ContentUri"], where(logical_id, "ContentUri"))
                if (key := self._placeholder_key(props["ContentUri"])) is not None:
                    self.layers[key] = logical_id

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        if self._own_or_global(logical_id, props, "PackageType") == "Image":
            # The translator wants an image URI; an image function is not run here in any case.
            del self.resources[logical_id]
            self.result.notes.append(
                f"skipped function {logical_id}: container image functions are not run by this scheduler"
            )
            return
        for prop, what in (("Runtime", "required for a zip function (python3.N)"), ("Handler", "required")):
            # The translator says "Runtime and Handler needs to be present"; name the one missing.
            if prop not in props and prop not in self.globals:
                raise TemplateError(f"{where(logical_id, prop)}: {what}, got None")
        if "CodeUri" in props:
            props["CodeUri"] = self._local(props["CodeUri"], where(logical_id, "CodeUri"))
        elif "CodeUri" not in self.globals and "InlineCode" not in props:
            # As sam does, a function without code of its own is the template's folder.
            props["CodeUri"] = self._local(".", where(logical_id, "CodeUri"))
        if "ProvisionedConcurrencyConfig" in props and not self._own_or_global(logical_id, props, "AutoPublishAlias"):
            # SAM puts provisioned concurrency on the alias AutoPublishAlias creates and refuses
            # it without one; locally it has always applied to $LATEST, so it is kept for that.
            self.result.provisioned_on_latest[logical_id] = props.pop("ProvisionedConcurrencyConfig")
            self.result.notes.append(
                f"{where(logical_id, 'ProvisionedConcurrencyConfig')}: without AutoPublishAlias it applies to "
                "$LATEST here (SAM refuses it)"
            )

    def _own_or_global(self, logical_id: str, props: dict[str, Any], name: str) -> Any:
        value = props[name] if name in props else self.globals.get(name)
        return self.resolver.resolve(value, where(logical_id, name))

    def _local(self, value: Any, at: str) -> Any:
        """A local folder becomes a placeholder S3 URI; an S3 location stays as it is."""
        resolved = self.resolver.resolve(value, at)
        if not isinstance(resolved, str) or resolved.startswith("s3://"):
            return resolved
        # Named by the folder, not by its place in the template, so the version hashes the
        # translator computes stay put when other functions come and go.
        key = hashlib.sha256(resolved.encode()).hexdigest()[:16]
        self.folders[key] = resolved
        return f"s3://{LOCAL_BUCKET}/{key}"

    # --- the transform ----------------------------------------------------------------------

    def _translate(self) -> dict[str, Any]:
        # Imported here: the translator (and boto3 under it) takes about 0.3 s to import, which a
        # template without SAM resources never pays.
        from samtranslator.model.exceptions import (  # type: ignore[import-untyped]
            ExceptionWithMessage,
            InvalidDocumentException,
        )
        from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
        from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

        # Pseudo parameters are given so the translator never asks boto3 for them.
        values: dict[str, Any] = {k: v for k, v in self.pseudo.items() if isinstance(v, str)}
        values.update(self.parameters)
        translator = Translator(
            managed_policy_map=None,
            sam_parser=Parser(),
            plugins=[],
            boto_session=_Region(self.region),
        )
        try:
            plain: dict[str, Any] = translator.translate(
                sam_template=self.sam, parameter_values=values, get_managed_policy_map=dict
            )
        except InvalidDocumentException as exc:
            causes = " ".join(cause.message for cause in exc.causes)
            raise TemplateError(f"the SAM transform refused the template: {exc.message} {causes}") from None
        except ExceptionWithMessage as exc:
            raise TemplateError(f"the SAM transform refused the template: {exc.message}") from None
        return plain

    # --- after: local folders back in place -------------------------------------------------

    def _restore(self, logical_id: str, resource: Any) -> None:
        if not isinstance(resource, dict):
            return
        props = resource.get("Properties")
        kind = resource.get("Type")
        if self.written.get(logical_id) == kind:
            return  # not a SAM resource: the translator passed it through
        if not isinstance(props, dict):
            props = {}
        key = "Code" if kind == "AWS::Lambda::Function" else "Content" if kind == "AWS::Lambda::LayerVersion" else None
        placeholder = self._placeholder(props.get(key)) if key else None
        if placeholder is not None and key is not None:
            props[key] = self.folders[placeholder]
        if logical_id in self.written:
            # The SAM resource itself, now a plain one (a function, SimpleTable's table …).
            self.result.origins[logical_id] = Origin(logical_id, self.written[logical_id])
            return
        self.result.generated.add(logical_id)
        if placeholder in self.layers:
            # A layer's logical id gains a hash of its content.
            self.result.origins[logical_id] = Origin(self.layers[placeholder], SERVERLESS_LAYER)
        elif self.written.get(function := _function_of(props) or "") == SERVERLESS_FUNCTION:
            # EventInvokeConfig, versions, aliases, permissions … of one SAM function.
            self.result.origins[logical_id] = Origin(function, SERVERLESS_FUNCTION, _generated_from(kind))

    def _placeholder(self, code: Any) -> str | None:
        """The placeholder key of a plain ``Code`` / ``Content`` the translator made."""
        if isinstance(code, dict) and code.get("S3Bucket") == LOCAL_BUCKET and code.get("S3Key") in self.folders:
            return str(code["S3Key"])
        return None

    def _placeholder_key(self, uri: Any) -> str | None:
        """The placeholder key of a SAM ``CodeUri`` / ``ContentUri`` swapped by :meth:`_local`."""
        prefix = f"s3://{LOCAL_BUCKET}/"
        if isinstance(uri, str) and uri.startswith(prefix) and uri[len(prefix) :] in self.folders:
            return uri[len(prefix) :]
        return None


@dataclass(frozen=True)
class _Region:
    """Stands for the boto3 session the translator asks for: it only reads ``region_name``
    (for AWS::Region and ARN partitions). A real session would read the user's AWS config and
    profile, and fail on a profile that does not exist, which serving locally must not need."""

    region_name: str


def _function_of(props: Mapping[str, Any]) -> str | None:
    """The logical id a generated resource's ``FunctionName: !Ref Fn`` names."""
    name = props.get("FunctionName")
    if isinstance(name, dict) and isinstance(name.get("Ref"), str):
        return str(name["Ref"])
    return None


def _generated_from(kind: Any) -> Mapping[str, str]:
    """The SAM function properties a generated resource's properties come from."""
    return {
        "AWS::Lambda::EventInvokeConfig": {"Properties": "EventInvokeConfig"},
        "AWS::Lambda::Version": {"Description": "VersionDescription", "FunctionName": "AutoPublishAlias"},
        "AWS::Lambda::Alias": {"Name": "AutoPublishAlias", "FunctionVersion": "AutoPublishAlias"},
    }.get(str(kind), {})
