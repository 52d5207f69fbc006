"""Configuration errors an operator can act on: file, line, field path, what is wrong, what is allowed.

`IssueBuilder` turns pydantic's errors into `ConfigIssue`s: it walks each error's `loc` through
the model classes (to find the field, its bounds, its default, the keys a mapping accepts and the
`type` tags of a discriminated list), renders the path with each action's type and name, and maps
it back to the YAML line.
"""
from __future__ import annotations

import difflib
import json
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional, Sequence, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from yaml.nodes import Node

from controller.config.base import from_key
from controller.config.yaml_lines import PathElem, line_of


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: `file:line: field.path: problem; allowed: ...`."""

    file: str
    field_path: str
    problem: str
    allowed: str = ""
    line: Optional[int] = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        head = f"{where}: {self.field_path}: " if self.field_path else f"{where}: "
        return head + self.problem + (f"; allowed: {self.allowed}" if self.allowed else "")


class ConfigError(Exception):
    """Every problem found in a configuration (never just the first), one per line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.line is None, i.line or 0))
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


@dataclass
class _Target:
    path: list[PathElem] = field(default_factory=list)
    owner: Optional[type[BaseModel]] = None
    name: Optional[str] = None
    field: Optional[FieldInfo] = None
    annotation: Any = None
    at_key: bool = False


class IssueBuilder:
    """Makes issues for one file, given its raw data (for action labels) and YAML nodes (for lines)."""

    def __init__(self, file: str, data: Any, root: Optional[Node]) -> None:
        self.file, self.data, self.root = file, data, root

    def issue(self, path: Sequence[PathElem], problem: str, allowed: str = "", at_key: bool = False) -> ConfigIssue:
        return ConfigIssue(self.file, render_path(self.data, path), problem, allowed, line_of(self.root, path, at_key))

    def from_validation(self, exc: ValidationError, model: type[BaseModel]) -> list[ConfigIssue]:
        issues = []
        for err in exc.errors():
            target = _locate(model, tuple(err["loc"]))
            problem, allowed, extra, at_key = _translate(err, target)
            issues.append(self.issue(target.path + list(extra), problem, allowed, at_key or target.at_key))
        return issues


def render_path(data: Any, path: Sequence[PathElem]) -> str:
    """`agents.support.actions.during_call[2] (transfer "to_sales").max_ring_s`."""
    out, current = "", data
    for elem in path:
        if isinstance(elem, int) and not isinstance(current, dict):
            out += f"[{elem}]"
            current = current[elem] if isinstance(current, list) and 0 <= elem < len(current) else None
            if isinstance(current, dict) and isinstance(current.get("name"), str):
                kind, name = current.get("type"), json.dumps(current["name"], ensure_ascii=False)
                out += f" ({kind} {name})" if isinstance(kind, str) and kind.isidentifier() else f" ({name})"
            continue
        text = str(elem)
        out += ("." if out else "") + (text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text))
        current = current.get(elem) if isinstance(current, dict) else None
    return out


def _unwrap(ann: Any) -> Any:
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        elif _is_union(ann) and len(_members(ann)) == 1:
            ann = _members(ann)[0]
        else:
            return ann


def _is_union(ann: Any) -> bool:
    return get_origin(ann) in (Union, types.UnionType)


def _members(ann: Any) -> list[Any]:
    return [m for m in get_args(ann) if m is not type(None)]


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _tag(member: Any) -> Optional[str]:
    if get_origin(member) is Annotated:
        for meta in get_args(member)[1:]:
            if isinstance(meta, Tag):
                return meta.tag
        member = get_args(member)[0]
    if _is_model(member) and "type" in member.model_fields:
        values = get_args(member.model_fields["type"].annotation)
        return values[0] if values else None
    return None


def _tags(ann: Any) -> list[str]:
    ann = _unwrap(ann)
    return [t for t in (_tag(m) for m in _members(ann)) if t] if _is_union(ann) else []


def _field(model: type[BaseModel], elem: PathElem) -> tuple[Optional[str], Optional[FieldInfo]]:
    for name, info in model.model_fields.items():
        if elem == name or elem == info.alias:
            return name, info
    return None, None


def _locate(model: type[BaseModel], loc: tuple) -> _Target:
    """Follow pydantic's `loc` through the annotations: data path (union tags dropped) and field."""
    target, ann, i = _Target(), model, 0
    while i < len(loc):
        elem, ann = loc[i], _unwrap(ann)
        i += 1
        if _is_model(ann):
            name, info = _field(ann, elem)
            target.owner, target.name, target.field = ann, name or str(elem), info
            target.path.append(elem)
            ann = info.annotation if info else None
            continue
        target.field = None
        origin, args = get_origin(ann), get_args(ann)
        if origin in (list, tuple, set, frozenset):
            target.path.append(elem)
            ann = args[0] if args else None
        elif origin is dict and i < len(loc) and loc[i] == "[key]":
            target.path.append(elem)
            target.at_key, ann, i = True, args[0], i + 1
        elif origin is dict:
            target.path.append(elem)
            ann = args[1] if args else None
        elif _is_union(ann) and any(_tag(m) == elem for m in _members(ann)):
            ann = next(m for m in _members(ann) if _tag(m) == elem)
        else:
            target.path.append(elem)
            ann = None
    target.annotation = ann
    return target


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(str(value))
    return text if len(text) <= 70 else text[:67] + "...'"


def _literals(ann: Any) -> list[Any]:
    ann = _unwrap(ann)
    if get_origin(ann) is Literal:
        return list(get_args(ann))
    if get_origin(ann) in (list, tuple):
        return _literals(get_args(ann)[0]) if get_args(ann) else []
    return []


def _expected(ann: Any) -> str:
    ann = _unwrap(ann)
    origin = get_origin(ann) or ann
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text", list: "a list",
            tuple: "a list", Path: "a path"}.get(origin, "")


def _allowed(target: _Target) -> str:
    """What the field accepts: choices, bounds with unit, and the default."""
    info, text = target.field, ""
    choices = _literals(target.annotation)
    if choices:
        text = "one of " + ", ".join(str(c) for c in choices)
    elif info is not None:
        bounds = {type(m): m for m in info.metadata}
        low = bounds.get(Ge) or bounds.get(Gt)
        high = bounds.get(Le) or bounds.get(Lt)
        name = target.name or ""
        unit = " seconds" if name.endswith("_s") else " milliseconds" if name.endswith("_ms") else ""
        low_v = getattr(low, "ge", getattr(low, "gt", None))
        high_v = getattr(high, "le", getattr(high, "lt", None))
        if low_v is not None and high_v is not None and isinstance(low, Ge) and isinstance(high, Le):
            text = f"{_number(low_v)}..{_number(high_v)}{unit}"
        elif low_v is not None and high_v is not None:
            text = (f"{'above' if isinstance(low, Gt) else 'from'} {_number(low_v)} "
                    f"{'below' if isinstance(high, Lt) else 'up to'} {_number(high_v)}{unit}")
        elif low_v is not None:
            text = f"{'>=' if isinstance(low, Ge) else '>'} {_number(low_v)}{unit}"
        elif MaxLen in bounds:
            text = f"{bounds[MinLen].min_length if MinLen in bounds else 0}..{bounds[MaxLen].max_length} characters"
        elif _unwrap(target.annotation) is bool:
            text = "true or false"
        default = info.default
        if default is not PydanticUndefined and isinstance(default, (bool, int, float, str)) and text:
            text += f" (default {_show(default).strip(chr(39))})"
    return text


_TYPE_ERRORS = ("int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "string_type", "list_type", "tuple_type", "dict_type", "model_type",
                "model_attributes_type", "dataclass_type", "path_type")
_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
_DATE_ERRORS = ("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact")


def _translate(err: dict, target: _Target) -> tuple[str, str, Sequence[PathElem], bool]:
    """(problem, allowed, extra path, at_key) for one pydantic error."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "config":
        return ctx["problem"], ctx["allowed"], ctx["field"], False
    if kind == "missing":
        return "is required but missing", _allowed(target), (), False
    if kind == "extra_forbidden":
        keys = [info.alias or name for name, info in target.owner.model_fields.items()
                if not from_key(info)] if target.owner else []
        close = difflib.get_close_matches(str(target.path[-1]), keys, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {str(target.path[-1])!r}{hint}", "keys " + ", ".join(keys), (), True
    if kind in _RANGE_ERRORS:
        return f"{_show(value)} is out of range", _allowed(target), (), False
    if kind == "literal_error":
        what = "type" if target.name == "type" else "value"
        return f"{what} {_show(value)} is not allowed here", _allowed(target) or ctx.get("expected", ""), (), False
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(_tags(target.annotation)) or str(ctx.get("expected_tags", ""))
        if kind == "union_tag_not_found":
            return f"has no `{ctx.get('discriminator', 'type').strip(chr(39))}`", f"type: one of {tags}", (), False
        close = difflib.get_close_matches(str(ctx.get("tag")), _tags(target.annotation), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"type {ctx.get('tag')!r} is not allowed here{hint}", f"one of {tags}", (), False
    if kind in _TYPE_ERRORS:
        mapping = kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type")
        expected = "a mapping (key: value)" if mapping else _expected(target.annotation) or err["msg"]
        return f"expected {expected}, got {_show(value)}", _allowed(target), (), False
    if kind == "string_too_short":
        return "is empty" if ctx.get("min_length") == 1 else "is too short", _allowed(target), (), False
    if kind == "string_too_long":
        return f"is {len(str(value))} characters long", f"at most {ctx.get('max_length')} characters", (), False
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)", "", (), False
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} items", f"at most {ctx.get('max_length')}", (), False
    if kind in _DATE_ERRORS:
        return f"{_show(value)} is not a date", "YYYY-MM-DD like 2026-12-25", (), False
    return err["msg"], _allowed(target), (), False
