"""The configuration's top-level models: server, Redis, FreeSWITCH, SMTP, SIP connections, knowledge sources,
classifications, and `Config` holding them with the agents (config.agent) and their actions (config.actions).

Every limit of DESIGN.md section 1 lives in these models (and in config.actions/config.transfer);
the rest of the code reads typed, normalised values (E.164 numbers, absolute paths, resolved
defaults) and never re-validates operator input. Reading a file is config.load's job.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from controller.address_policy import parse_allowed
from controller.config.agent import AgentConfig
from controller.config.base import (ConfigModel, EmailAddress, Embedder, EnvVarName, KeyId, Slug, builder, check_ref,
                                     fail, keys_are_ids, pattern, refs, resolve_path)
from controller.esl.commands import EVENT_RE
from controller.esl.values import validate_codecs, validate_gateway
from knowledge.sources import BUILTIN_EMBEDDERS, SourceSpec, default_embedder
from knowledge.sources import LANGUAGES as KNOWLEDGE_LANGUAGES

EventName = Annotated[str, pattern(EVENT_RE.pattern,  # the rule `event plain` is built with
                                   "an event name like CHANNEL_HOLD or CUSTOM avmd::beep", "event")]
KeyName = Annotated[str, pattern(r"[A-Za-z0-9_:.-]{1,64}", "letters, digits, _ : . -", "name")]


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise fail(f"{value!r} is not an IP address", "an address to bind, e.g. 127.0.0.1") from None
    return value


def _peer(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise fail(f"{value!r} is not host:port", "another Switchboard host's socket, e.g. 10.0.0.2:8084")
    _ip(host)
    return value


class ServerSettings(ConfigModel):
    """The outbound event socket server FreeSWITCH's `socket` app connects to."""

    host: Annotated[str, AfterValidator(_ip)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8084
    max_connections: Annotated[int, Field(ge=1, le=10000)] = 200
    drain_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 30
    run_worker: bool = True  # `serve` also runs the after-call worker; false when `switchboard worker` runs apart
    state_dir: Path = Field(Path("state"), validate_default=True)
    time_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    extra_events: list[EventName] = []
    connect_timeout_s: Annotated[float, Field(ge=0.1, le=120)] = 5
    metrics_port: Optional[Annotated[int, Field(ge=0, le=65535)]] = None  # Prometheus + /healthz on 127.0.0.1
    # the other Switchboard hosts (address:port) the dialplan's failover socket lines name: `check --dialplan`
    peers: Annotated[list[Annotated[str, AfterValidator(_peer)]], Field(max_length=16)] = []
    command_timeout_s: Annotated[float, Field(ge=0.1, le=120)] = 10
    execute_timeout_s: Annotated[float, Field(ge=0.1, le=3600)] = 30

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, value: Path, info: ValidationInfo) -> Path:
        """A directory, or a path one can be created at: the embedded Redis and the spool live there."""
        path = resolve_path(value, info)
        existing = next((p for p in (path, *path.parents) if os.path.exists(p)), None)  # os.path: never raises
        if existing is not None and not os.path.isdir(existing):
            problem = (f"{path} is a file, not a directory" if existing == path
                       else f"{existing} is a file, so {path} cannot be a directory")
            raise fail(problem, "a directory (created if missing) for the embedded Redis and the call-record spool: "
                                "move the file away or point state_dir elsewhere")
        return path


def _redis_url(value: Optional[str]) -> Optional[str]:
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise fail(f"{value!r} is not a Redis URL",
                   "redis://host:6379/0, rediss://..., unix:///path or redis+sentinel://host:26379,host:26379/master; "
                   "omit it for the embedded server")
    return value


class RedisSettings(ConfigModel):
    """Call state, counters and the after-call stream; no `url` runs an embedded redis-server."""

    url: Annotated[Optional[str], AfterValidator(_redis_url)] = None
    call_ttl_s: Annotated[int, Field(ge=60, le=30 * 86400)] = 86400
    key_prefix: KeyName = "switchboard"
    stream: KeyName = "calls"
    dead_letter_stream: KeyName = "calls:dead"
    # After-call retries (aftercall/worker.py): 12 attempts 5 s apart doubling to at most 5 min span about
    # 30 min, so a relay or a CRM down for 15 min loses nothing; a record that still failed for transient
    # reasons is put back in the queue every 30 min, 3 times, before it stays dead for `switchboard jobs`.
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    retry_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 5
    retry_backoff_max_s: Annotated[float, Field(ge=0, le=86400)] = 300
    requeue_dead_after_s: Annotated[float, Field(ge=0, le=6 * 86400)] = 1800  # below the progress TTL (7 days)
    max_requeues: Annotated[int, Field(ge=0, le=100)] = 3
    # Dead letters older than this are removed, and progress markers expire by then (state/retention.py).
    retention_days: Annotated[float, Field(ge=1, le=3650)] = 30


class FreeSwitchSettings(ConfigModel):
    """FreeSWITCH's inbound event socket, where `switchboard call` places the agents' calls."""

    host: Annotated[str, AfterValidator(_ip)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8021
    password_env: EnvVarName = "FREESWITCH_ESL_PASSWORD"
    originate_timeout_s: Annotated[int, Field(ge=5, le=120)] = 30


class SmtpSettings(ConfigModel):
    """Outgoing mail for email actions; the password comes from the environment variable `password_env`.

    `security`: `none` (plain SMTP, port 25 on a trusted relay), `starttls` (upgrade after EHLO, usually 587) or
    `tls` (implicit TLS from the first byte, usually 465); certificates are checked against the system's CAs, or
    `ca_file` for a relay with an internal CA.
    """

    host: Annotated[str, pattern(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]+\]", "a host name or IP address", "host")]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    username: Optional[Annotated[str, pattern(r"[^\r\n]{1,256}", "one line of text", "username")]] = None
    password_env: Optional[EnvVarName] = None
    security: Literal["none", "starttls", "tls"] = "none"
    ca_file: Optional[Path] = None
    from_address: EmailAddress = Field(alias="from")
    timeout_s: Annotated[float, Field(ge=1, le=120)] = 10

    @model_validator(mode="before")
    @classmethod
    def _no_starttls_flag(cls, data: Any) -> Any:
        if isinstance(data, dict) and "starttls" in data:
            raise fail("starttls is replaced by security", "security: starttls (or none, or tls for implicit TLS)",
                       ["starttls"])
        return data

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Optional[Path], info: ValidationInfo) -> Optional[Path]:
        if value is None:
            return None
        path = resolve_path(value, info)
        if not os.path.isfile(path):
            raise fail(f"{path} is not a file", "a PEM file of the CA certificates that signed the relay's certificate")
        return path


def _codecs(value: str) -> str:
    return ",".join(validate_codecs(value))


class SipConnection(ConfigModel):
    """A FreeSWITCH sofia gateway transfers dial through (`sofia/gateway/<gateway>/<number>`)."""

    name: KeyId
    gateway: Annotated[str, builder(validate_gateway, "the name of a sofia gateway, e.g. trunk_main")]
    number_format: Literal["e164", "e164_no_plus"] = "e164"
    caller_id: Literal["original", "agent"] = "original"
    codecs: Optional[Annotated[str, builder(_codecs, "e.g. PCMU,PCMA")]] = None
    dtmf: Optional[Literal["rfc2833", "info", "inband"]] = None  # None: the sofia profile's dtmf-type


def _allowed(value: str) -> str:
    try:
        parse_allowed(value)
    except ValueError as exc:
        raise fail(str(exc), "a host name (tools.example.net), an address (10.0.0.7) or a network (10.0.0.0/24)")
    return value


class WebhookSettings(ConfigModel):
    """Where workflows and webhooks may go besides public addresses and loopback (controller/address_policy.py)."""

    allow: list[Annotated[str, AfterValidator(_allowed)]] = []


class PrivacySettings(ConfigModel):
    """What call records keep: `redact_digit_runs: 6` hides every run of 6 or more digits (cards, account numbers,
    PINs typed on the keypad) in stored transcripts, records, emails and webhooks."""

    redact_digit_runs: Optional[Annotated[int, Field(ge=3, le=32)]] = None


class KnowledgeSource(ConfigModel):
    """A FAISS index built by `switchboard knowledge index`, searched by rag actions.

    `min_score` defaults to 0.2, measured for use-m3 on the shipped questions (bench/rag.py): 0.35 dropped
    half the right answers."""

    name: KeyId
    index_dir: Path
    embedder: Embedder
    language: str
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.2

    @field_validator("index_dir")
    @classmethod
    def _index_dir(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in KNOWLEDGE_LANGUAGES:
            raise fail(f"{value!r} is not allowed", ", ".join(KNOWLEDGE_LANGUAGES))
        return value

    @model_validator(mode="before")
    @classmethod
    def _embedder_default(cls, data: Any) -> Any:
        """The language's default embedder; with no valid language, only the language is reported."""
        if isinstance(data, dict) and "embedder" not in data:
            language = data.get("language")
            name = default_embedder(language).backend if language in KNOWLEDGE_LANGUAGES else BUILTIN_EMBEDDERS[0]
            return {**data, "embedder": name}
        return data

    def spec(self) -> SourceSpec:
        """The knowledge package's view of this source."""
        return SourceSpec(self.name, self.index_dir, self.embedder.spec(), self.language, self.min_score)


class ClassificationRules(ConfigModel):
    """Rules evaluated on the call record; all given rules must match."""

    transferred: Optional[bool] = None
    hangup_by: Optional[Literal["caller", "agent", "callee", "system"]] = None
    direction: Optional[Literal["inbound", "outbound"]] = None
    answered_by: Optional[Literal["human", "machine", "ivr", "unknown"]] = None
    answered: Optional[bool] = None
    hangup_cause: list[Annotated[str, pattern(r"[A-Z][A-Z0-9_]{1,40}", "a FreeSWITCH hang-up cause like NO_ANSWER",
                                              "cause")]] = []
    action_called: Optional[str] = None
    transcript_contains: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    min_duration_s: Optional[Annotated[float, Field(ge=0)]] = None
    max_duration_s: Optional[Annotated[float, Field(ge=0)]] = None

    @field_validator("action_called")
    @classmethod
    def _action(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        return None if value is None else check_ref(value, refs(info).action_names, "action", "agents.<id>.actions")

    @model_validator(mode="after")
    def _durations(self) -> "ClassificationRules":
        if None not in (self.min_duration_s, self.max_duration_s) and self.min_duration_s > self.max_duration_s:
            raise fail("min_duration_s is above max_duration_s", "min_duration_s <= max_duration_s", ["min_duration_s"])
        return self


class Classification(ConfigModel):
    """The first classification whose rules all match wins; a `fallback: true` one catches the rest."""

    name: KeyId
    description: Annotated[str, Field(min_length=1, max_length=500)]
    when: Optional[ClassificationRules] = None
    fallback: bool = False

    @model_validator(mode="after")
    def _fallback_has_no_rules(self) -> "Classification":
        if self.fallback and self.when is not None:
            raise fail("a fallback applies when nothing else matched, so it takes no rules",
                       "remove `when`, or set fallback: false", ["when"])
        return self


class KnowledgeSection(ConfigModel):
    """The `knowledge_sources` section alone: the knowledge CLI builds indexes while the agents are unfinished."""

    model_config = ConfigDict(extra="ignore")
    knowledge_sources: dict[Slug, KnowledgeSource] = {}

    @model_validator(mode="before")
    @classmethod
    def _keys_are_ids(cls, data: Any) -> Any:
        return keys_are_ids(data, [("knowledge_sources", "name")])


class Config(ConfigModel):
    server: ServerSettings = Field({}, validate_default=True)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    smtp: Optional[SmtpSettings] = None
    freeswitch: FreeSwitchSettings = Field(default_factory=FreeSwitchSettings)
    default_agent: Optional[str] = Field(None, validate_default=True)
    agents: dict[Slug, AgentConfig]
    sip_connections: dict[Slug, SipConnection] = {}
    default_sip_connection: Optional[str] = Field(None, validate_default=True)
    knowledge_sources: dict[Slug, KnowledgeSource] = {}
    classifications: dict[Slug, Classification] = {}
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    _path: Path = PrivateAttr(default=Path("switchboard.yaml"))
    _display: str = PrivateAttr(default="switchboard.yaml")

    @model_validator(mode="before")
    @classmethod
    def _keys_are_ids(cls, data: Any) -> Any:
        return keys_are_ids(data)

    @field_validator("agents")
    @classmethod
    def _some_agent(cls, value: dict[str, AgentConfig]) -> dict[str, AgentConfig]:
        if not value:
            raise fail("no agent is defined", "at least one agent, e.g. support: {language: fr}")
        return value

    @field_validator("default_agent")
    @classmethod
    def _default_agent(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        agents = refs(info).agents
        if value is not None:
            return check_ref(value, agents, "agent", "agents")
        if agents and len(agents) == 1:
            return next(iter(agents))
        if agents:
            raise fail("is required when there are several agents", "one of " + ", ".join(sorted(agents)))
        return None

    @field_validator("default_sip_connection")
    @classmethod
    def _default_connection(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        ctx = refs(info)
        if value is None:
            return ctx.default_sip_connection
        return check_ref(value, ctx.sip_connections, "SIP connection", "sip_connections")

    @property
    def path(self) -> Path:
        """The configuration file, absolute."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """Relative paths in the file (state, indexes, templates, numbers) start here."""
        return self._path.parent

    @property
    def display_path(self) -> str:
        """The path as the operator gave it, for messages."""
        return self._display

    @property
    def numbers_dir(self) -> Path:
        """Imported transfer numbers: `numbers/<agent>.<action>.csv` next to the config file."""
        return self.base_dir / "numbers"

    def agent(self, agent_id: Optional[str]) -> Optional[AgentConfig]:
        """The agent with this id, or None (the caller decides whether to fall back to default_agent)."""
        return self.agents.get(agent_id) if agent_id is not None else None
