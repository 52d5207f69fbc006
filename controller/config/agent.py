"""One agent's configuration: language, number, brain, speech, limits and its actions.

The agent id (its key under `agents`) travels in the `switchboard_agent` channel variable set by
the dialplan, so it is a short slug; everything spoken is a template checked at load time.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

from controller.config.actions import Actions
from controller.config.machine import MachineDetection
from controller.config.base import (ConfigModel, Embedder, EnvVarName, KeyId, Language, SpokenText, builder,
                                     check_ref, fail, no_yaml_number, pattern, refs)
from controller.esl.values import validate_e164

TOKEN = r"[A-Za-z0-9_.-]{1,64}"
Module = Annotated[str, pattern(r"mod_[a-z0-9_]{1,60}", "a FreeSWITCH module name like mod_flite", "module")]
Token = Annotated[str, pattern(TOKEN, "letters, digits, _ . -", "name")]


def _number_as_text(value: Any) -> Any:
    """ASR parameters are strings on the wire; `no-input-timeout: 5000` is written as a number in YAML."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


ParamValue = Annotated[str, BeforeValidator(_number_as_text),
                       pattern(r"[A-Za-z0-9_.:/@%+~-]{1,128}", "a value without spaces or separators", "value")]


class Tts(ConfigModel):
    """`speak <engine>|<voice>|<text>` through the FreeSWITCH module `module`."""

    module: Module = "mod_flite"
    engine: Token = "flite"
    voice: Annotated[str, pattern(r"[A-Za-z0-9_.:@+-]{1,128}", "a voice name like kal", "voice")] = "kal"


class Asr(ConfigModel):
    """`detect_speech <engine> <grammar>` (background recognition) through `module`."""

    module: Optional[Module] = None
    engine: Token
    grammar: Annotated[str, pattern(r"[A-Za-z0-9_.:/@%+=?&~-]{1,256}", "a grammar name or URL without spaces",
                                    "grammar")]
    params: dict[Token, ParamValue] = {}


class Speech(ConfigModel):
    tts: Tts = Field(default_factory=Tts)
    asr: Optional[Asr] = None
    barge_in: bool = True
    greeting: SpokenText = "Hello, how can I help you?"
    handoff_greeting: Optional[SpokenText] = None  # said instead of `greeting` to a caller another agent handed on
    no_input_s: Annotated[float, Field(ge=1, le=60)] = 6
    dtmf_turn_timeout_s: Annotated[float, Field(ge=0.5, le=10)] = 2


def _rag_source(value: Optional[str], info: ValidationInfo) -> Optional[str]:
    return None if value is None else check_ref(value, refs(info).sources, "knowledge source", "knowledge_sources")


class SemanticBrain(ConfigModel):
    """Offline: embeddings of each action's description against the caller's words. Left out, `threshold`
    and `margin` take the values calibrated for the embedder, and `fallback_text` a line in the agent's language."""

    type: Literal["semantic"]
    embedder: Optional[Embedder] = None
    threshold: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    margin: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    fallback_text: Optional[SpokenText] = None
    rag_source: Annotated[Optional[str], AfterValidator(_rag_source)] = None


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or any(c.isspace() or c in "{}" for c in value):
        raise fail(f"{value!r} is not an http(s) URL", "e.g. http://127.0.0.1:8000/v1")
    return value


class OpenAIBrain(ConfigModel):
    """Any OpenAI-compatible chat-completions server on premises, with tool calling."""

    type: Literal["openai"]
    base_url: Annotated[str, AfterValidator(_base_url)]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    api_key_env: Optional[EnvVarName] = None
    timeout_s: Annotated[float, Field(ge=1, le=120)] = 8
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.2
    fallback_text: Optional[SpokenText] = None


Brain = Annotated[Union[SemanticBrain, OpenAIBrain], Field(discriminator="type")]


class Limits(ConfigModel):
    """The built-in hang-up that ends loops (always on)."""

    max_call_s: Annotated[int, Field(ge=30, le=14400)] = 1800
    max_turns_without_progress: Annotated[int, Field(ge=1, le=100)] = 8
    max_repeated_turns: Annotated[int, Field(ge=1, le=20)] = 3
    max_consecutive_silences: Annotated[int, Field(ge=1, le=20)] = 3
    max_hold_s: Annotated[int, Field(ge=30, le=14400)] = 1800  # the call's total time in wait actions


class Outbound(ConfigModel):
    """Calls this agent places (`switchboard call`): at most `max_concurrent` at once, counted in Redis across
    processes (a batch waits for a free slot, a single call is refused)."""

    max_concurrent: Annotated[int, Field(ge=1, le=200)] = 4


def default_brain_embedder(language: Any) -> str:
    """`minilm` for English, the multilingual `use-m3` otherwise."""
    return "minilm" if isinstance(language, str) and language.startswith("en") else "use-m3"


class AgentConfig(ConfigModel):
    """One agent; its id (the key under `agents`) travels in the `switchboard_agent` channel variable."""

    id: KeyId
    language: Language
    number: Optional[Annotated[str, no_yaml_number("phone number", "+33123456789"), builder(validate_e164, "E.164 like +33123456789")]] = None
    extension: Optional[Annotated[str, pattern(r"[A-Za-z0-9_+*#-]{1,32}", "a dialplan extension like 2001",
                                               "extension")]] = None
    context: Optional[Annotated[str, pattern(TOKEN, "a dialplan context like default", "context")]] = None
    brain: Brain
    speech: Speech = Field(default_factory=Speech)
    ring_budget_s: Annotated[float, Field(ge=0, le=30)] = 3
    limits: Limits = Field(default_factory=Limits)
    machine_detection: MachineDetection = Field(default_factory=MachineDetection)
    outbound: Outbound = Field(default_factory=Outbound)
    actions: Actions = Field(default_factory=Actions)

    @model_validator(mode="before")
    @classmethod
    def _brain_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        brain = data.get("brain", {"type": "semantic"})
        if isinstance(brain, dict) and brain.get("type") == "semantic" and "embedder" not in brain:
            brain = {**brain, "embedder": default_brain_embedder(data.get("language"))}
        data["brain"] = brain
        return data

    @model_validator(mode="after")
    def _handoff(self) -> "AgentConfig":
        if (self.extension is None) != (self.context is None):
            missing = "context" if self.context is None else "extension"
            raise fail(f"extension and context go together; {missing} is missing", "both, or neither", [missing])
        return self
