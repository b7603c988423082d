"""Function names as Lambda accepts them: a name, ``name:qualifier``, a full ARN or a
partial ARN (``123456789012:function:name``), with or without a ``Qualifier`` parameter."""

from __future__ import annotations

import re

from .errors import InvalidParameterValue

_FULL = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")
_PARTIAL = re.compile(r"^\d{12}:function:([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")
_NAME = re.compile(r"^([A-Za-z0-9_-]+)(?::([A-Za-z0-9$_-]+))?$")


def parse_function_name(function_name: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """(name, qualifier); raises InvalidParameterValue for a malformed name or a conflict."""
    match = _FULL.match(function_name) or _PARTIAL.match(function_name) or _NAME.match(function_name)
    if match is None or len(match.group(1)) > 64:
        raise InvalidParameterValue(f"Invalid function name: {function_name!r}")
    name, derived = match.group(1), match.group(2)
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvalidParameterValue("The derived qualifier from the function name does not match the specified qualifier.")
    return name, derived if derived is not None else qualifier
