"""Actions as tools: slugs a chat model accepts, the tool schemas it reads, and argument validation.

The action's JSON schema is the single source of truth: the openai brain offers it as the tool's parameters, and
the conversation checks every call against it (`check_call`) before anything runs. The validator is a small
JSON-schema subset on purpose (no new dependency): type (object/string/integer/number/boolean/array/null),
properties, required, additionalProperties false, items, enum, minLength/maxLength, minimum/maximum, pattern.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.brain.base import ActionCall, ActionSpec, Turn
from controller.text import unaccent

SLUG_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
               type(None): "null"}


def slugify(name: str) -> str:
    """An action name as a tool name matching `^[a-zA-Z0-9_-]{1,64}$` (accents folded, other characters -> `_`)."""
    ascii_name = re.sub(r"[^\x00-\x7f]+", "", unaccent(name))
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "_", ascii_name).strip("_")[:64]
    return slug or "action"


@dataclass(frozen=True)
class Toolset:
    """The tools offered to a chat model for one turn, and the way back from a tool name to its action."""

    tools: list[dict[str, Any]]
    by_slug: dict[str, ActionSpec]

    def slug_of(self, action_name: str) -> str | None:
        return next((slug for slug, spec in self.by_slug.items() if spec.name == action_name), None)


def build_toolset(actions: list[ActionSpec]) -> Toolset:
    """One OpenAI `function` tool per action; slugs are unique (a clash gets `_2`, `_3`...)."""
    tools: list[dict[str, Any]] = []
    by_slug: dict[str, ActionSpec] = {}
    for spec in actions:
        base = slugify(spec.name)
        slug, n = base, 2
        while slug in by_slug:
            suffix = f"_{n}"
            slug, n = base[: 64 - len(suffix)] + suffix, n + 1
        by_slug[slug] = spec
        tools.append({"type": "function", "function": {
            "name": slug, "description": tool_description(spec), "parameters": tool_parameters(spec)}})
    return Toolset(tools, by_slug)


def tool_description(spec: ActionSpec) -> str:
    """The action's description, plus its state when closed so the model can tell the caller when it opens."""
    if spec.state != "closed":
        return spec.description
    when = f" It opens next at {spec.next_opening}." if spec.next_opening else " It has no upcoming opening."
    return f"{spec.description}\n(Closed now.{when} Calling it makes the agent say so.)"


def tool_parameters(spec: ActionSpec) -> dict[str, Any]:
    """The argument schema; an action without arguments gets the empty object schema models expect."""
    return spec.parameters or {"type": "object", "properties": {}, "additionalProperties": False}


def required_arguments(spec: ActionSpec) -> list[str]:
    return list((spec.parameters or {}).get("required", []))


def validate_arguments(spec: ActionSpec | dict[str, Any], args: Any) -> list[str]:
    """Errors of `args` against the action's schema (or a schema), each naming the field and what is allowed."""
    schema = spec.parameters if isinstance(spec, ActionSpec) else spec
    errors: list[str] = []
    _check(schema or {"type": "object"}, args, "arguments", errors)
    return errors


def check_call(call: ActionCall, actions: list[ActionSpec]) -> list[str]:
    """Errors of one action call: unknown action name, then its arguments against the schema."""
    spec = next((a for a in actions if a.name == call.name), None)
    if spec is None:
        allowed = ", ".join(a.name for a in actions) or "none"
        return [f"unknown action {call.name!r} (this agent may call: {allowed})"]
    return validate_arguments(spec, call.arguments)


def refused_turn(call: ActionCall, errors: list[str]) -> Turn:
    """What the brain is told when its call is refused (the call never ran)."""
    return Turn(kind="refused", result={"action": call.name, "arguments": dict(call.arguments),
                                        "reason": "; ".join(errors)})


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return _type_name(value) == name


def _check(schema: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_is_type(value, n) for n in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {_type_name(value)} {value!r:.60}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r:.60} is not one of {schema['enum']}")
    if isinstance(value, str):
        _check_string(schema, value, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{i}]", errors)
    elif isinstance(value, dict):
        _check_object(schema, value, path, errors)


def _check_string(schema: dict[str, Any], value: str, path: str, errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: needs at least {schema['minLength']} characters, got {len(value)}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: allows at most {schema['maxLength']} characters, got {len(value)}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r:.60} does not match the pattern {schema['pattern']}")


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str, errors: list[str]) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{path}.{name}: required field missing")
    for name, item in value.items():
        if name in properties:
            _check(properties[name], item, f"{path}.{name}", errors)
        elif schema.get("additionalProperties") is False:
            allowed = ", ".join(properties) or "none"
            errors.append(f"{path}.{name}: unknown field (allowed: {allowed})")
