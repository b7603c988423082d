"""Function names as Lambda accepts them: a name, ``name:qualifier``, a full ARN or a
partial ARN (``123456789012:function:name``), with or without a ``Qualifier`` parameter.

An ARN also names a region and an account; one naming another region or account than the
scheduler's is refused as Lambda refuses it (:func:`check_reachable`), instead of quietly
running the local function of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import validation
from .errors import AccessDenied, FunctionInOtherRegion, InvalidParameterValue

_FULL = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")
_PARTIAL = re.compile(r"^(\d{12}):function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")
_NAME = re.compile(r"^([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """What a function name says: the name and qualifier, and the region and account an
    ARN gives (None when the form does not say)."""

    name: str
    qualifier: str | None
    region: str | None = None
    account_id: str | None = None


def parse(function_name: str, qualifier: str | None = None) -> FunctionRef:
    """Raises Lambda's ValidationException for a malformed name, InvalidParameterValue for a
    qualifier conflict."""
    region = account = None
    if full := _FULL.match(function_name):
        region, account, name, derived = full.groups()
    elif partial := _PARTIAL.match(function_name):
        account, name, derived = partial.groups()
    elif plain := _NAME.match(function_name):
        name, derived = plain.groups()
    else:
        raise validation.malformed_name(function_name)
    # A name longer than any function's (64) is simply not found, as on Lambda; CreateFunction
    # checks the length itself (validation.function_name).
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return FunctionRef(name, derived if derived is not None else qualifier, region, account)


def parse_function_name(function_name: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """(name, qualifier) of any accepted form; see :func:`parse`."""
    ref = parse(function_name, qualifier)
    return ref.name, ref.qualifier


def check_reachable(ref: FunctionRef, region: str, account_id: str, action: str = "lambda:InvokeFunction") -> None:
    """Refuse an ARN of another region (404, Lambda's "not reachable in this region") or of
    another account (403: no resource-based policy here can grant access to it)."""
    if ref.region is not None and ref.region != region:
        raise FunctionInOtherRegion(ref.region, region)
    if ref.account_id is not None and ref.account_id != account_id:
        resource = f"arn:aws:lambda:{region}:{ref.account_id}:function:{ref.name}"
        if ref.qualifier is not None:
            resource += f":{ref.qualifier}"
        # Every caller counts as the local account here (there is no IAM to say otherwise).
        raise AccessDenied(
            f"User: arn:aws:iam::{account_id}:root is not authorized to perform: {action} on resource: "
            f"{resource} because no resource-based policy allows the {action} action"
        )
