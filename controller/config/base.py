"""Building blocks of the configuration models: the strict base model, the reference context and
reusable field types whose errors say what is wrong and what is allowed.

Validators raise `fail(problem, allowed, field)` rather than ValueError, so `config_errors` can render
"<path>: <problem>; allowed: <allowed>" without parsing messages; `field` extends the path when the
problem sits deeper than the validated value (a key inside a JSON body, one destination's number).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Optional, Sequence
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from controller.address_policy import AddressPolicy, parse_allowed
from controller.esl.values import DialStringError
from controller.config.sample import SAMPLE_VARIABLES
from controller.templating import (TemplateError, TemplateLimitError, TemplateRefused, check_template, is_template,
                                  trial_render)
from knowledge.sources import BUILTIN_EMBEDDERS, EmbedderSpec

NAME_RE = r"[a-z0-9_]{1,48}"
ID_RE = r"[a-z0-9_]{1,32}"
EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
TEMPLATE_SUFFIXES = (".html", ".htm", ".txt", ".j2", ".jinja")
MAX_TEMPLATE_FILE = 1024 * 1024
_TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


# The sections whose entries are named by their key (`agents: {support: {...}}`), and the field the key fills.
KEYED_SECTIONS = (("agents", "id"), ("sip_connections", "name"), ("knowledge_sources", "name"),
                  ("classifications", "name"))
# That field: filled from the key, so never offered as a key to write.
KeyId = Annotated[str, Field(json_schema_extra={"from_key": True})]


def from_key(info: Any) -> bool:
    return bool((getattr(info, "json_schema_extra", None) or {}).get("from_key"))


def keys_are_ids(data: Any, sections: Iterable[tuple[str, str]] = KEYED_SECTIONS) -> Any:
    """Each entry of a keyed section gets its key as `id` or `name`."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for section, attr in sections:
        if isinstance(data.get(section), dict):
            data[section] = {k: {attr: str(k), **v} if isinstance(v, dict) else v for k, v in data[section].items()}
    return data


class ConfigModel(BaseModel):
    """Every configuration model: unknown keys are errors, YAML aliases (`from`) accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def fail(problem: str, allowed: str = "", field: Sequence[str | int] = ()) -> PydanticCustomError:
    """The one error type of the configuration validators."""
    return PydanticCustomError("config", "{problem}", {"problem": problem, "allowed": allowed, "field": list(field)})


def builder(check: Callable[[str], str], allowed: str) -> AfterValidator:
    """An esl/values.py validator as a config validator: the builder's reason, plus what is allowed here.

    The config refuses exactly what the builder would refuse on the wire, with the same words.
    """
    def run(value: str) -> str:
        try:
            return check(value)
        except DialStringError as exc:
            raise fail(f"{value!r} {exc.reason}", allowed) from None
    return AfterValidator(run)


@dataclass(frozen=True)
class RefContext:
    """Names defined anywhere in the file, read from the raw data before validation so that every
    reference is checked in the same pass as every field (None: unknown, do not check)."""

    base_dir: Path
    agents: Optional[frozenset[str]] = None
    handoff_agents: frozenset[str] = frozenset()
    sources: Optional[frozenset[str]] = None
    classifications: Optional[frozenset[str]] = None
    sip_connections: Optional[frozenset[str]] = None
    default_sip_connection: Optional[str] = None
    action_names: Optional[frozenset[str]] = None
    webhook_policy: AddressPolicy = AddressPolicy()

    @classmethod
    def from_raw(cls, data: dict, base_dir: Path) -> "RefContext":
        agents = _mapping(data.get("agents"))
        connections = _mapping(data.get("sip_connections"))
        default_conn = data.get("default_sip_connection")
        if default_conn is None and len(connections) == 1:
            default_conn = next(iter(connections))
        actions = set()
        for agent in agents.values():
            moments = _mapping(agent.get("actions")) if isinstance(agent, dict) else {}
            for items in moments.values():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        actions.add(item["name"])
        return cls(
            base_dir=base_dir,
            agents=frozenset(agents),
            handoff_agents=frozenset(
                k for k, v in agents.items() if isinstance(v, dict) and v.get("extension") and v.get("context")
            ),
            sources=frozenset(_mapping(data.get("knowledge_sources"))),
            classifications=frozenset(_mapping(data.get("classifications"))),
            sip_connections=frozenset(connections),
            default_sip_connection=default_conn if isinstance(default_conn, str) else None,
            action_names=frozenset(actions),
            webhook_policy=_webhook_policy(data.get("webhooks")),
        )


def _webhook_policy(section: Any) -> AddressPolicy:
    """The valid `webhooks.allow` entries (WebhookSettings reports the others with their line)."""
    entries = _mapping(section).get("allow")
    valid = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            valid.append(parse_allowed(entry) if isinstance(entry, str) else None)
        except ValueError:
            continue
    return AddressPolicy(tuple(v for v in valid if v is not None))


def _mapping(value: Any) -> dict:
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}


def refs(info: ValidationInfo) -> RefContext:
    ctx = info.context
    return ctx if isinstance(ctx, RefContext) else RefContext(base_dir=Path.cwd())


def check_ref(value: str, known: Optional[Iterable[str]], what: str, section: str,
              field: Sequence[str | int] = ()) -> str:
    """`value` must be one of `known` (the names under `section`)."""
    if known is None or value in known:
        return value
    names = sorted(known)
    allowed = f"one of {', '.join(names)}" if names else f"none defined yet: add it under `{section}`"
    raise fail(f"unknown {what} {value!r}", allowed, field)


def pattern(regex: str, allowed: str, what: str = "value") -> AfterValidator:
    rx = re.compile(regex)

    def check(value: str) -> str:
        if not rx.fullmatch(value):
            raise fail(f"{what} {value!r} is not allowed", allowed)
        return value

    return AfterValidator(check)


ActionName = Annotated[str, pattern(NAME_RE, "1..48 lowercase letters, digits or _ (e.g. transfer_sales)", "name")]
Slug = Annotated[str, pattern(ID_RE, "1..32 lowercase letters, digits or _ (e.g. support)", "id")]
VarName = Annotated[str, pattern(r"[a-z_][a-z0-9_]{0,63}", "a lowercase variable name like customer_name", "name")]
EnvVarName = Annotated[str, pattern(r"[A-Z_][A-Z0-9_]{0,127}", "an environment variable name like SMTP_PASSWORD",
                                    "name")]
Language = Annotated[str, pattern(r"[a-z]{2}(-[A-Z]{2})?", "a 2-letter language code like fr or en (or fr-FR)",
                                  "language")]


def check_jinja(value: str, *, html: bool = False, example: str = "Bonjour {{ caller_name }}",
                field: Sequence[str | int] = (), what: str = "") -> str:
    """A template as written: it must parse, and render on the sample call (config/sample.py) within the
    template limits without the sandbox refusing anything, as every call will render it."""
    try:
        check_template(value)
        if is_template(value):
            trial_render(value, SAMPLE_VARIABLES, html=html)
    except TemplateLimitError as exc:
        raise fail(f"{what}goes over the template limits on the sample call: {exc}", exc.fix, field) from None
    except TemplateRefused as exc:
        raise fail(f"{what}cannot be rendered safely: {exc}", exc.fix, field) from None
    except TemplateError as exc:
        raise fail(f"{what}is not a valid Jinja template ({exc})", f"Jinja syntax, e.g. {example}", field) from None
    return value


def _spoken(value: str) -> str:
    """Spoken text: whitespace (newlines of YAML blocks included) collapsed to single spaces."""
    text = " ".join(value.split())
    if not text:
        raise fail("is empty", "a sentence to say")
    if "${" in text:
        raise fail("contains '${', which FreeSWITCH would expand", "plain text or Jinja {{ variables }}")
    return check_jinja(text)


def _single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise fail("contains a line break", "a single line")
    return value


Template = Annotated[str, AfterValidator(check_jinja)]
LineTemplate = Annotated[str, AfterValidator(_single_line), AfterValidator(check_jinja)]
SpokenText = Annotated[str, AfterValidator(_spoken)]


def _url(value: str, info: ValidationInfo) -> str:
    """An http(s) URL whose scheme and host are literal (templates only after the host), so call
    data can never choose which server receives a request; a literal address must pass `webhooks.allow`
    (a host name is checked on the address each request connects to)."""
    _single_line(value)
    if any(c.isspace() for c in _TEMPLATE_PART.sub("", value)):
        raise fail("contains spaces", "an URL like http://127.0.0.1:8099/customers/{{ caller_number }}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(f"{value!r} is not an http(s) URL", "http://host[:port]/path or https://...")
    if is_template(parts.netloc) or "{" in parts.netloc:
        raise fail("has a template in the host", "a literal scheme and host; templates only in the path or query")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        refusal = refs(info).webhook_policy.refusal(host, host)
        if refusal:
            raise fail(f"{value!r}: {refusal}", "a public address, loopback, or one listed in webhooks.allow")
    return check_jinja(value)


UrlTemplate = Annotated[str, AfterValidator(_url)]


def _email(value: str) -> str:
    if len(value) > 254 or not EMAIL_RE.fullmatch(value) or len(value.partition("@")[0]) > 64:
        raise fail(f"{value!r} is not an email address", "an address like support@example.com")
    return check_jinja(value, example="{{ variables.account_manager }}@example.com")  # the worker renders it


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


EmailAddress = Annotated[str, AfterValidator(_email)]
EmailList = Annotated[list[EmailAddress], BeforeValidator(_as_list)]


def no_yaml_number(what: str, example: str) -> BeforeValidator:
    """Refuse values YAML turned into numbers (`+33123...`, `0123`): leading + and 0 would be lost."""

    def check(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise fail(f"YAML read this {what} as the number {value}; write it in quotes", f'e.g. "{example}"')
        return value

    return BeforeValidator(check)


def exists(path: Path, kind: str = "file") -> bool:
    """Whether `path` is an existing file (or dir); False for names the OS refuses (too long, NUL)."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


def inside(base_dir: Path, value: Path) -> Path | None:
    """`value` made absolute against `base_dir`; None when a relative path leads out of it (`..`, a symlink): a
    config author's relative path never reaches files elsewhere. An absolute path is the operator's choice."""
    if value.is_absolute():
        return value
    base = base_dir.resolve()
    path = (base / value).resolve()
    return path if path.is_relative_to(base) else None


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A path relative to the configuration file's directory, made absolute; it must stay inside that directory."""
    if "\0" in str(value):
        raise fail("contains a NUL byte", "a file system path")
    path = inside(refs(info).base_dir, value)
    if path is None:
        raise fail(f"{value} leads out of the configuration directory {refs(info).base_dir.resolve()}",
                   "a relative path stays inside that directory; write an absolute path to use a file elsewhere "
                   "on purpose")
    return path


def looks_like_path(value: str) -> bool:
    """A template value is a file path when it is one line without Jinja that ends in .html .htm .txt .j2
    or .jinja (the rule controller.aftercall.email applies when it sends); otherwise it is the template."""
    return "\n" not in value and not is_template(value) and Path(value).suffix.lower() in TEMPLATE_SUFFIXES


def check_template_text(value: Any, info: ValidationInfo) -> str:
    """An email body as written (path or inline): the file must exist and the template pass `check_jinja`."""
    if not isinstance(value, str) or not value.strip():
        raise fail("must be a template file path or an inline template", "e.g. templates/summary.html")
    if not looks_like_path(value):
        return check_jinja(value, html=info.field_name == "html")
    path = resolve_path(Path(value), info)
    try:
        if path.stat().st_size > MAX_TEMPLATE_FILE:
            raise fail(f"template file {path} is larger than 1 MB")
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"template file {path} does not exist", "a path relative to the configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"template file {path} cannot be read ({exc})", "a readable UTF-8 file") from None
    check_jinja(source, html=info.field_name == "html", what=f"template file {path}: ")
    return value


class Embedder(ConfigModel):
    """`minilm` (English), `use-m3` (multilingual) or {backend: sentence-transformers, model_dir: DIR}."""

    backend: Literal["minilm", "use-m3", "sentence-transformers"]
    model_dir: Optional[Path] = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in BUILTIN_EMBEDDERS:
                raise fail(f"unknown embedder {value!r}",
                           "minilm, use-m3, or {backend: sentence-transformers, model_dir: DIR}")
            return {"backend": value}
        return value

    @field_validator("model_dir")
    @classmethod
    def _dir(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not exists(path, "dir"):
            raise fail(f"model directory {path} does not exist", "a local sentence-transformers model directory")
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise fail(f"{path} is not a sentence-transformers model directory (no modules.json)",
                       "a directory saved by SentenceTransformer.save()")
        return path

    @model_validator(mode="after")
    def _needs_dir(self) -> "Embedder":
        if self.backend == "sentence-transformers" and self.model_dir is None:
            raise fail("sentence-transformers needs a model_dir", "model_dir: a local model directory", ["model_dir"])
        if self.backend != "sentence-transformers" and self.model_dir is not None:
            raise fail(f"{self.backend} is built in and takes no model_dir", "remove model_dir", ["model_dir"])
        return self

    @property
    def name(self) -> str:
        return self.backend if self.model_dir is None else f"{self.backend}:{self.model_dir}"

    def spec(self) -> EmbedderSpec:
        """What the knowledge package loads."""
        return EmbedderSpec(self.backend, self.model_dir)


class ActionBase(ConfigModel):
    """What every action has: a `name` unique within its agent and the `description` the brain reads."""

    name: ActionName
    description: Annotated[str, Field(min_length=1, max_length=1000)]
