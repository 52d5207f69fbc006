"""Knowledge sources as declared in the config file's `knowledge_sources` section.

    knowledge_sources:
      faq:
        index_dir: state/knowledge/faq     # relative to the config file
        language: fr                       # fr | en
        embedder: use-m3                   # minilm | use-m3 | {backend: sentence-transformers, model_dir: DIR}
        min_score: 0.35                    # hits scoring below are not returned (0..1, default 0)

Read here with plain YAML so the knowledge CLI stands alone; every problem is reported at once with the
file, line and field, and what is allowed. Without `embedder`, the language's default is used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import yaml

from knowledge.embedders import LANGUAGES, EmbedderSpec, default_embedder, parse_embedder
from knowledge.errors import KnowledgeError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEYS = ("index_dir", "language", "embedder", "min_score")
_MISSING = object()


@dataclass(frozen=True)
class SourceSpec:
    """One knowledge source: where its index lives, how it is embedded, and the score floor for answers."""

    name: str
    index_dir: Path
    embedder: EmbedderSpec
    language: str
    min_score: float = 0.0


def _line(root: yaml.Node | None, path: tuple[str, ...]) -> int | None:
    """1-based line of the node at `path` in the composed YAML tree (the nearest existing parent)."""
    node, line = root, None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == key:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line


def sources_from_config(path: Path) -> dict[str, SourceSpec]:
    """Validated `knowledge_sources` of the YAML config at `path`; raises KnowledgeError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KnowledgeError(f"config file {path} not found: pass --config FILE or set SWITCHBOARD_CONFIG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError(f"cannot read config file {path}: {exc}") from None
    try:
        root = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise KnowledgeError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise KnowledgeError(f"{path}: the config must be a mapping with a knowledge_sources section")
    section = doc.get("knowledge_sources") or {}
    errors: list[str] = []

    def error(field: tuple[str, ...], message: str) -> None:
        line = _line(root, field)
        errors.append(f"{path}{f':{line}' if line else ''}: {'.'.join(field)}: {message}")

    if not isinstance(section, dict):
        error(("knowledge_sources",), "expected a mapping NAME: {index_dir, language, embedder, min_score}")
        section = {}
    sources: dict[str, SourceSpec] = {}
    for name, entry in section.items():
        field = ("knowledge_sources", str(name))
        if not isinstance(name, str) or not _NAME.match(name):
            error(field, "source names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
            continue
        if not isinstance(entry, dict):
            error(field, f"expected a mapping with keys {', '.join(_KEYS)}")
            continue
        spec = _source(name, entry, path.parent.resolve(), lambda key, msg, f=field: error(f + key, msg))
        if spec is not None:
            sources[name] = spec
    if errors:
        raise KnowledgeError("invalid knowledge_sources:\n" + "\n".join(errors))
    return sources


def _source(name: str, entry: dict, base: Path, error: Callable[[tuple[str, ...], str], None]) -> SourceSpec | None:
    """The SourceSpec of one entry, or None after reporting each of its problems through `error`."""
    ok = True

    def fail(key: str, message: str) -> None:
        nonlocal ok
        ok = False
        error((key,), message)

    for key in sorted(set(entry) - set(_KEYS), key=str):
        fail(str(key), f"unknown key; allowed keys: {', '.join(_KEYS)}")
    index_dir = entry.get("index_dir", _MISSING)
    if index_dir is _MISSING:
        fail("index_dir", "required: the directory holding this source's index (relative to the config file)")
    elif not isinstance(index_dir, str) or not index_dir.strip():
        fail("index_dir", "expected a directory path")
    language = entry.get("language", _MISSING)
    if language not in LANGUAGES:
        shown = "missing" if language is _MISSING else f"{language!r} is not allowed"
        fail("language", f"{shown}; allowed: {', '.join(LANGUAGES)}")
    embedder = None
    if "embedder" in entry:
        try:
            embedder = parse_embedder(entry["embedder"], base)
        except ValueError as exc:
            fail("embedder", str(exc))
    min_score = entry.get("min_score", 0.0)
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1:
        fail("min_score", f"{min_score!r} is not a number between 0 and 1")
    if not ok:
        return None
    return SourceSpec(
        name=name,
        index_dir=(base / index_dir).resolve(),
        embedder=embedder or default_embedder(language),
        language=language,
        min_score=float(min_score),
    )
