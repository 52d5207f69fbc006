"""Reading a configuration file: `load_config(path)` -> a validated `Config`, or a `ConfigError` listing every
problem (file:line, field path, what is wrong, what is allowed).

The models (config.schema) and the whole-file checks (config.checks) both run on every load, and every problem
either finds is reported in one go, so an operator fixes a file in one pass.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Union

from pydantic import ValidationError

from controller.config.base import ConfigModel, RefContext
from controller.config.checks import cross_checks, key_checks
from controller.config.errors import ConfigError, ConfigIssue, IssueBuilder, render_path
from controller.config.schema import Config, KnowledgeSection, KnowledgeSource
from controller.config.yaml_lines import YamlProblem, duplicate_keys, read_yaml


def load_config(path: Union[str, Path]) -> Config:
    """Read, parse and validate a configuration file; ConfigError lists every problem found."""
    return _load(path, Config, cross_checks)


def load_knowledge_sources(path: Union[str, Path]) -> dict[str, KnowledgeSource]:
    """Only the `knowledge_sources` section, checked exactly as `load_config` checks it."""
    return _load(path, KnowledgeSection,
                 lambda data, context: key_checks(data, [("knowledge_sources", "name")])).knowledge_sources


def _load(path: Union[str, Path], model: type[ConfigModel],
          checks: Callable[[dict, RefContext], Iterable[tuple]]) -> Any:
    shown = str(path)
    file = Path(path)
    try:
        doc = read_yaml(file)
    except YamlProblem as exc:
        raise ConfigError([ConfigIssue(shown, "", exc.problem, exc.allowed, exc.line)]) from None
    builder = IssueBuilder(shown, doc.data, doc.root)
    if not isinstance(doc.data, dict):
        got = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ConfigError([builder.issue([], f"the file is {got}, not a mapping",
                                         "top-level keys server, redis, smtp, agents, sip_connections, ...")])
    resolved = file.resolve()
    context = RefContext.from_raw(doc.data, resolved.parent)
    issues = [ConfigIssue(shown, render_path(doc.data, where + [key]),
                          f"is written twice (lines {first} and {second}); YAML would keep only the last",
                          "each key once", second)
              for where, key, first, second in duplicate_keys(doc.root)]
    loaded = None
    try:
        loaded = model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        issues.extend(builder.from_validation(exc, model))
    issues.extend(builder.issue(*found) for found in checks(doc.data, context))
    if issues or loaded is None:
        raise ConfigError(issues)
    if isinstance(loaded, Config):
        loaded._path, loaded._display = resolved, shown
    return loaded
