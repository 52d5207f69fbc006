"""Reading the configuration YAML while keeping every node's line, so errors can say where.

PyYAML composes the document into nodes (with marks) and then constructs plain Python data from
the same nodes; the nodes are kept to map a field path back to a line, and to catch duplicate keys,
which PyYAML would otherwise let the second one silently replace.

Aliases (`*name`) are refused while composing: nested ones ("billion laughs") make a few lines stand for
billions of values, which validation walks expanded, and a configuration is plain enough to write out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathElem = Union[str, int]
MAX_BYTES = 5 * 1024 * 1024


@dataclass
class YamlDocument:
    data: Any
    root: Optional[Node]


class YamlProblem(Exception):
    """The file could not be read or parsed; `line`/`column` are 1-based when known."""

    def __init__(self, problem: str, allowed: str = "", line: Optional[int] = None) -> None:
        super().__init__(problem)
        self.problem, self.allowed, self.line = problem, allowed, line


class _Loader(yaml.SafeLoader):
    """SafeLoader whose impossible dates (2026-02-30) are YAML errors with a line, not ValueErrors, and that
    refuses aliases at the first one, before any of them is expanded."""

    def compose_node(self, parent: Optional[Node], index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlProblem(f"YAML alias *{event.anchor} (column {event.start_mark.column + 1}): aliases are not "
                              "accepted, nested ones expand a few lines into billions of values",
                              f"write the value out where it is used instead of &{event.anchor} and "
                              f"*{event.anchor}", event.start_mark.line + 1)
        return super().compose_node(parent, index)

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a real date ({exc})",
                                                    node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse one YAML document; YamlProblem says what is wrong and where."""
    try:
        if path.is_dir():
            raise YamlProblem("is a directory, not a file", "the path of a YAML file such as examples/agent.yaml")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise YamlProblem("file not found", f"an existing YAML file (relative paths start at {Path.cwd()})") from None
    except PermissionError:
        raise YamlProblem("cannot be read: permission denied", "a file readable by the switchboard user") from None
    except OSError as exc:
        raise YamlProblem(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"is {len(raw)} bytes; a configuration is at most {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"is not UTF-8 text (bad byte at offset {exc.start})", "save the file as UTF-8") from None
    try:
        loader = _Loader(text)  # its reader refuses control characters at once
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlProblem(f"contains the control character {exc.character:#06x}, which YAML does not allow",
                          "remove it (an editor shows it with `cat -A`), or write it as \\x.. inside double quotes",
                          line) from None
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        where = f" (column {mark.column + 1})" if mark else ""
        raise YamlProblem(f"malformed YAML: {what}{where}", "valid YAML: check indentation, quotes and colons",
                          mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise YamlProblem(f"malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlDocument(data, root)


def line_of(root: Optional[Node], path: Sequence[PathElem], at_key: bool = False) -> Optional[int]:
    """1-based line of the node at `path` (its key's line when `at_key`, or the value is a block).

    When the path goes past what the file contains (a missing key), the deepest existing node's
    line is returned: the mapping that lacks the key.
    """
    if root is None:
        return None
    node, key = root, None
    for elem in path:
        child = _child(node, elem)
        if child is None:
            return None if node is root else (key or node).start_mark.line + 1
        key, node = child
    if key is not None and (at_key or not isinstance(node, ScalarNode)):
        return key.start_mark.line + 1
    return node.start_mark.line + 1


def _child(node: Node, elem: PathElem) -> Optional[tuple[Optional[Node], Node]]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(elem):
                return key, value
    elif isinstance(node, SequenceNode) and isinstance(elem, int) and 0 <= elem < len(node.value):
        return None, node.value[elem]
    return None


def duplicate_keys(root: Optional[Node]) -> Iterator[tuple[list[PathElem], str, int, int]]:
    """Every key written twice in one mapping: (path of the mapping, key, first line, second line)."""
    stack: list[tuple[Node, list[PathElem]]] = [(root, [])] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in first and key.value != "<<":
                        yield path, key.value, first[key.value], line
                    first.setdefault(key.value, line)
                    stack.append((value, path + [key.value]))
        elif isinstance(node, SequenceNode):
            stack.extend((item, path + [i]) for i, item in enumerate(node.value))
