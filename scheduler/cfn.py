"""CloudFormation template text: a YAML loader for the short-form tags, and intrinsic functions.

    template.yaml ─► load() (``!Ref``, ``!Sub``, ``!GetAtt`` … become their long forms)
                  ─► Resolver.resolve(value, where) ─► plain values for template.py

Every tag CloudFormation defines loads without error. Resolution is done only for the values
the scheduler uses, so an intrinsic that cannot be worked out locally (``!ImportValue``, an
attribute of a resource that is not a function, a parameter without a Default) is reported
only where it matters, with the resource and property it appears in.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

# What `AWS::NoValue` resolves to: the property or list item is removed.
NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "AWS::NoValue"})()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """A template that cannot be served as it is; the message names the resource and property."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags into their long forms."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _construct_intrinsic)


def load(path: Path) -> dict[str, Any]:
    """Read a template (YAML or JSON) into plain data with intrinsics in their long form."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML or JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template: it has no Resources section")
    return data


def where(resource: str, prop: str) -> str:
    return f"resource {resource}, property {prop}"


class Resolver:
    """Evaluates intrinsic functions against the template's Parameters (their Default, or an
    override), Mappings, Conditions and pseudo parameters. ``ref`` and ``get_att`` answer for
    resources; they return None when they cannot."""

    def __init__(
        self,
        template: Mapping[str, Any],
        overrides: Mapping[str, str],
        pseudo: Mapping[str, Any],
        ref: Callable[[str], Any | None],
        get_att: Callable[[str, str], Any | None],
    ) -> None:
        self._parameters = template.get("Parameters") or {}
        self._mappings = template.get("Mappings") or {}
        self._conditions = template.get("Conditions") or {}
        self._overrides = dict(overrides)
        self._pseudo = {**pseudo, "AWS::NoValue": NO_VALUE}
        self._ref = ref
        self._get_att = get_att
        self._condition_values: dict[str, bool] = {}
        unknown = set(self._overrides) - set(self._parameters)
        if unknown:
            raise TemplateError(
                f"parameter overrides name parameters the template does not have: {', '.join(sorted(unknown))}"
            )

    def resolve(self, value: Any, at: str) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                key = next(iter(value))
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    return self._intrinsic(key, value[key], at)
            out = {k: self.resolve(v, at) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self.resolve(v, at) for v in value) if item is not NO_VALUE]
        return value

    def condition(self, name: str, at: str) -> bool:
        if name not in self._condition_values:
            if name not in self._conditions:
                raise TemplateError(f"{at}: condition {name!r} is not defined in Conditions")
            self._condition_values[name] = self._truth(self._conditions[name], f"condition {name}")
        return self._condition_values[name]

    def _truth(self, value: Any, at: str) -> bool:
        result = self.resolve(value, at)
        if isinstance(result, bool):
            return result
        if isinstance(result, str) and result.lower() in ("true", "false"):
            return result.lower() == "true"
        raise TemplateError(f"{at}: a condition must be true or false, got {result!r}")

    # --- the functions --------------------------------------------------------------------

    def _intrinsic(self, key: str, arg: Any, at: str) -> Any:
        handler = _FUNCTIONS.get(key)
        if handler is None:
            raise TemplateError(f"{at}: {_show(key, arg)} cannot be resolved locally")
        return handler(self, arg, at)

    def _fn_ref(self, arg: Any, at: str) -> Any:
        if not isinstance(arg, str):
            raise TemplateError(f"{at}: Ref needs a name, got {arg!r}")
        if arg in self._pseudo:
            return self._pseudo[arg]
        if arg in self._parameters:
            return self._parameter(arg, at)
        found = self._ref(arg)
        if found is None:
            raise TemplateError(f"{at}: !Ref {arg}: no parameter or resource of that name")
        return found

    def _parameter(self, name: str, at: str) -> Any:
        spec = self._parameters[name] or {}
        if name in self._overrides:
            value: Any = self._overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(
                f"{at}: !Ref {name}: the parameter has no Default; give one with --parameter-overrides {name}=VALUE"
            )
        kind = str(spec.get("Type", "String"))
        if isinstance(value, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
            return [item.strip() for item in value.split(",")]
        return value

    def _fn_get_att(self, arg: Any, at: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise TemplateError(f"{at}: Fn::GetAtt needs [resource, attribute], got {arg!r}")
        found = self._get_att(arg[0], arg[1])
        if found is None:
            raise TemplateError(f"{at}: !GetAtt {arg[0]}.{arg[1]} cannot be resolved locally")
        return found

    def _fn_sub(self, arg: Any, at: str) -> str:
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text, variables = arg[0], {k: self.resolve(v, at) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}
        if not isinstance(text, str):
            raise TemplateError(f"{at}: Fn::Sub needs a string, got {arg!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name], at)
            if "." in name and not name.startswith("AWS::"):
                return _text(self._fn_get_att(name.split(".", 1), at), at)
            return _text(self._fn_ref(name, at), at)

        return _SUB_VARIABLE.sub(substitute, text)

    def _fn_join(self, arg: Any, at: str) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise TemplateError(f"{at}: Fn::Join needs [delimiter, [values]], got {arg!r}")
        items = self.resolve(arg[1], at)
        if not isinstance(items, list):
            raise TemplateError(f"{at}: Fn::Join needs a list of values, got {items!r}")
        return arg[0].join(_text(item, at) for item in items)

    def _fn_select(self, arg: Any, at: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{at}: Fn::Select needs [index, [values]], got {arg!r}")
        index, items = self.resolve(arg[0], at), self.resolve(arg[1], at)
        try:
            return items[int(index)]
        except (ValueError, TypeError, IndexError, KeyError):
            raise TemplateError(f"{at}: Fn::Select index {index!r} is not in {items!r}") from None

    def _fn_split(self, arg: Any, at: str) -> list[str]:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise TemplateError(f"{at}: Fn::Split needs [delimiter, string], got {arg!r}")
        return _text(self.resolve(arg[1], at), at).split(arg[0])

    def _fn_if(self, arg: Any, at: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
            raise TemplateError(f"{at}: Fn::If needs [condition, if-true, if-false], got {arg!r}")
        return self.resolve(arg[1] if self.condition(arg[0], at) else arg[2], at)

    def _fn_equals(self, arg: Any, at: str) -> bool:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{at}: Fn::Equals needs two values, got {arg!r}")
        left, right = (self.resolve(a, at) for a in arg)
        return bool(str(left) == str(right))

    def _fn_and(self, arg: Any, at: str) -> bool:
        return all(self._truth(a, at) for a in _list(arg, "Fn::And", at))

    def _fn_or(self, arg: Any, at: str) -> bool:
        return any(self._truth(a, at) for a in _list(arg, "Fn::Or", at))

    def _fn_not(self, arg: Any, at: str) -> bool:
        items = _list(arg, "Fn::Not", at)
        if len(items) != 1:
            raise TemplateError(f"{at}: Fn::Not needs one condition, got {arg!r}")
        return not self._truth(items[0], at)

    def _fn_condition(self, arg: Any, at: str) -> bool:
        if not isinstance(arg, str):
            raise TemplateError(f"{at}: Condition needs a name, got {arg!r}")
        return self.condition(arg, at)

    def _fn_find_in_map(self, arg: Any, at: str) -> Any:
        keys = self.resolve(arg, at)
        if not (isinstance(keys, list) and len(keys) == 3):
            raise TemplateError(f"{at}: Fn::FindInMap needs [map, key, key], got {arg!r}")
        try:
            return self.resolve(self._mappings[keys[0]][keys[1]][keys[2]], at)
        except (KeyError, TypeError):
            raise TemplateError(f"{at}: Fn::FindInMap: {keys!r} is not in Mappings") from None

    def _fn_base64(self, arg: Any, at: str) -> str:
        return base64.b64encode(_text(self.resolve(arg, at), at).encode()).decode()


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Ref": Resolver._fn_ref,
    "Condition": Resolver._fn_condition,
    "Fn::GetAtt": Resolver._fn_get_att,
    "Fn::Sub": Resolver._fn_sub,
    "Fn::Join": Resolver._fn_join,
    "Fn::Select": Resolver._fn_select,
    "Fn::Split": Resolver._fn_split,
    "Fn::If": Resolver._fn_if,
    "Fn::Equals": Resolver._fn_equals,
    "Fn::And": Resolver._fn_and,
    "Fn::Or": Resolver._fn_or,
    "Fn::Not": Resolver._fn_not,
    "Fn::FindInMap": Resolver._fn_find_in_map,
    "Fn::Base64": Resolver._fn_base64,
}


def _list(arg: Any, name: str, at: str) -> list[Any]:
    if not isinstance(arg, list):
        raise TemplateError(f"{at}: {name} needs a list, got {arg!r}")
    return arg


def _text(value: Any, at: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{at}: expected a string, got {value!r}")


def _show(key: str, arg: Any) -> str:
    """An intrinsic as the user wrote it, e.g. ``!ImportValue shared-vpc``."""
    short = key.removeprefix("Fn::")
    if isinstance(arg, list):
        return f"!{short} {', '.join(str(a) for a in arg)}"
    return f"!{short} {arg}"


def as_int(value: Any, at: str, low: int, high: int) -> int:
    """Lambda's integers: whole numbers (a digit string from a parameter counts), in bounds."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError(f"{at}: must be a whole number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise TemplateError(f"{at}: must be between {low} and {high}, got {value}")
    return value
