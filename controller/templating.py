"""Operator templates (greetings, email subjects, header values, workflow URLs) rendered in Jinja's sandbox.

Templates come from the operator's YAML and variables from callers and HTTP responses, so they never reach
a normal Jinja environment: the sandbox refuses attribute tricks, and undefined variables render empty
rather than failing a live call.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=False, keep_trailing_newline=False)
_STRICT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=True)


class TemplateError(ValueError):
    """A template that does not parse or fails to render; the message says where."""


def check_template(source: str) -> None:
    """Raise TemplateError when `source` is not valid Jinja (used by config validation)."""
    try:
        _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at template line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool, strict: bool):
    env = _HTML_ENV if html else (_STRICT_ENV if strict else _ENV)
    return env.from_string(source)


def render(source: str, variables: dict[str, Any], *, html: bool = False, strict: bool = False) -> str:
    """Render an operator template over call variables; errors become TemplateError."""
    try:
        return _compiled(source, html, strict).render(**variables)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at template line {exc.lineno}: {exc.message}") from None
    except Exception as exc:  # sandbox violations, strict undefined, filters failing on odd data
        raise TemplateError(f"template failed to render: {exc}") from None


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value
