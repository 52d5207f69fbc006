"""Operator templates (greetings, email subjects, header values, workflow URLs) rendered in Jinja's sandbox.

Templates come from the operator's YAML and variables from callers and HTTP responses, so they never reach
a normal Jinja environment, and a template must neither change what it renders nor stall the process:
  - the sandbox is immutable (`variables.update(...)`, `transcript.append(...)` fail: they would change the call
    record every later action sees), and an unsafe attribute (`__class__`, `pop`) fails the render instead of
    rendering empty, so an attempt shows in the logs and in `check`; `include`, `import` and `extends` are
    refused when parsed: there is no loader, a template is self-contained;
  - every render has a budget (`LIMITS`): each loop iteration, call and attribute lookup is an operation that
    counts and checks a deadline, and the output is built piece by piece (`generate()`) and cut at a size.
    Pure-Python Jinja holds the GIL, so a thread cannot be stopped from outside: the sandbox stops itself;
  - `render` runs in gevent's threadpool, off the hub: a template over budget costs its time limit to the
    greenlet that asked (the after-call worker), while the hub keeps serving calls;
  - undefined variables render empty rather than failing a live call, and so does None (a workflow kept
    `customer_id: null` for an unknown caller: `sip_h_X-Customer-Id=None` or "Client : None" helps nobody);
  - `trial_render` is what the configuration checks run on a sample call, under the same limits.
"""
from __future__ import annotations

import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote
from typing import Any, Iterable, Iterator, Optional

import gevent
from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, SecurityError, safe_range


@dataclass(frozen=True)
class Limits:
    """What one render may spend; a legitimate template (an email over a long transcript) uses a few thousand
    operations and a few milliseconds."""

    seconds: float = 2.0
    operations: int = 1_000_000
    output_chars: int = 1_000_000


LIMITS = Limits()
MAX_POWER_BITS = 4096  # `7 ** 100000` is one slow C operation the deadline cannot interrupt


LIMITS_FIX = (f"a template that loops over call data, not over large ranges (a render stops at {LIMITS.seconds:g} s, "
              f"{LIMITS.operations} operations and {LIMITS.output_chars} characters of output)")
REFUSED_FIX = ("a self-contained template that reads call data: {{ variables.customer_id }}, loops, filters, "
               "macros and {% set %} of its own names; no _attributes, no append/update/pop, no include/import/extends")


class TemplateError(ValueError):
    """A template that does not parse or fails to render; the message says where, `fix` what would do."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class TemplateLimitError(TemplateError):
    """A render went over `LIMITS`; the message names the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, LIMITS_FIX)


class TemplateRefused(TemplateError):
    """The sandbox refused what the template does (change call data, reach internals, load another template)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, REFUSED_FIX)


class _Budget:
    """The operations and the deadline left to the render running in this thread (or greenlet)."""

    __slots__ = ("left", "deadline")

    def __init__(self) -> None:
        self.left, self.deadline = LIMITS.operations, time.monotonic() + LIMITS.seconds

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateLimitError(f"rendering stopped at the limit of {LIMITS.operations} operations "
                                     "(loop iterations, calls, attribute lookups)")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering stopped at the time limit of {LIMITS.seconds:g} s")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_BUDGET: ContextVar[Optional[_Budget]] = ContextVar("template_budget", default=None)


def _spend() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend()


def _none_as_empty(value: Any) -> Any:
    return "" if value is None else value


_ENCODED = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*")


def _url_value(value: Any) -> str:
    """A value in a URL's path or query: percent-encoded as one segment or value (`/`, `?`, `&`, `#` included), so
    call data cannot add path segments or parameters; a value already encoded (`| urlencode`) is left as is."""
    text = "" if value is None else str(value)
    return text if _ENCODED.fullmatch(text) else quote(text, safe="")


_LOADING_TAGS = {nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from"}


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every loop iteration, call and attribute lookup charged to the render's budget,
    and the two operators that build a huge value in one step (`"x" * 10**9`, `7 ** 100000`) refused past the
    limits."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = self.bounded_range

    def _parse(self, source: str, name: Optional[str], filename: Optional[str]) -> nodes.Template:
        """No template loading; each `{% for %}` iterates through `counted`, so an empty body pays for its
        iterations."""
        tree = super()._parse(source, name, filename)
        for node in tree.find_all(tuple(_LOADING_TAGS)):
            raise TemplateRefused(f"{{% {_LOADING_TAGS[type(node)]} %}} at template line {node.lineno} is not "
                                  "available: a template is self-contained (there is no template loader)")
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        return tree

    def counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            _spend()
            yield item

    def bounded_range(self, *args: int) -> range:
        try:
            return safe_range(*args)
        except OverflowError:
            shown = ", ".join(map(str, args))
            raise TemplateLimitError(f"range({shown}) is longer than the sandbox's {MAX_RANGE} items") from None

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1 \
                and right * abs(left).bit_length() > MAX_POWER_BITS:
            raise TemplateLimitError(f"{left} ** {right} is larger than the sandbox's {MAX_POWER_BITS}-bit numbers")
        if operator == "*":
            sequence, times = (left, right) if _is_int(right) else (right, left)
            if isinstance(sequence, (str, list, tuple)) and _is_int(times) \
                    and len(sequence) * times > LIMITS.output_chars:
                raise TemplateLimitError(f"repeating {len(sequence)} items {times} times goes past the output limit "
                                         f"of {LIMITS.output_chars} characters")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"{type(obj).__name__}.{attribute} is not available: templates read call data, they "
                            "cannot change it or reach Python internals")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _spend()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _spend()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend()
        return super().getitem(obj, argument)


# (html, trial) -> environment; a trial's missing values chain (`customer.tier` renders empty): a sample call
# cannot have every variable an operator's workflows keep
_ENVS = {(kind, trial): _BudgetedSandbox(undefined=ChainableUndefined if trial else Undefined,
                                         autoescape=kind == "html",
                                         finalize=_url_value if kind == "url" else _none_as_empty)
         for kind in ("text", "html", "url") for trial in (False, True)}


def _kind(html: bool, url: bool) -> str:
    return "html" if html else "url" if url else "text"


def check_template(source: str) -> None:
    """Raise TemplateError when `source` is not valid Jinja (used by config validation)."""
    try:
        _ENVS["text", False].parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at template line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=512)
def _compiled(source: str, kind: str, trial: bool):
    return _ENVS[kind, trial].from_string(source)


def _render_here(source: str, variables: dict[str, Any], kind: str, trial: bool = False) -> str:
    """Render in the calling thread, within `LIMITS`."""
    token = _BUDGET.set(_Budget())
    try:
        parts, size = [], 0
        for part in _compiled(source, kind, trial).generate(**variables):
            size += len(part)
            if size > LIMITS.output_chars:
                raise TemplateLimitError(f"rendering stopped at the output limit of {LIMITS.output_chars} characters")
            parts.append(part)
        return "".join(parts)
    except TemplateError:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at template line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateRefused(f"the sandbox refused: {exc}") from None
    except Exception as exc:  # filters failing on odd data, undefined values used in arithmetic
        raise TemplateError(f"template failed to render: {exc}") from None
    finally:
        _BUDGET.reset(token)


def _render_in_pool(source: str, variables: dict[str, Any], kind: str) -> tuple[str, Optional[TemplateError]]:
    """The failure is returned, not raised: gevent's threadpool prints a traceback for every task that raises."""
    try:
        return _render_here(source, variables, kind), None
    except TemplateError as exc:
        return "", exc


def render(source: str, variables: dict[str, Any], *, html: bool = False, url: bool = False) -> str:
    """Render an operator template over call variables, in gevent's threadpool (the hub keeps serving while it
    runs) and within `LIMITS`; every failure is a TemplateError (TemplateLimitError when over a limit).
    `html` autoescapes; `url` percent-encodes every value (`_url_value`)."""
    text, error = gevent.get_hub().threadpool.apply(_render_in_pool, (source, variables, _kind(html, url)))
    if error is not None:
        raise error
    return text


def trial_render(source: str, variables: dict[str, Any], *, html: bool = False, url: bool = False) -> None:
    """Render on sample variables in this thread, within `LIMITS`; raise what would fail on every call (a limit,
    a refusal). A failure that depends on the data (a missing value in arithmetic) is left to the call's log."""
    try:
        _render_here(source, variables, _kind(html, url), trial=True)
    except (TemplateLimitError, TemplateRefused):
        raise
    except TemplateError:
        pass


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value
