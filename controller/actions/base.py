"""What every during-call action shares: the registry, the typed outcome, the loop guard.

An action validates its configuration in its config model and executes through the conversation (which
speaks, waits for events and owns the ESL session). The registry refuses two actions of the same type.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from controller.brain.base import ActionSpec, Turn
from controller.brain.tools import validate_arguments

if TYPE_CHECKING:
    from controller.call.session import CallSession
    from controller.call.conversation import Conversation

REGISTRY: dict[str, type["Action"]] = {}


def register(cls: type["Action"]) -> type["Action"]:
    """Class decorator: one class per action type; a duplicate type is a programming error."""
    if cls.type in REGISTRY:
        raise ValueError(f"action type {cls.type!r} registered twice ({REGISTRY[cls.type].__name__}, {cls.__name__})")
    REGISTRY[cls.type] = cls
    return cls


@dataclass
class ActionOutcome:
    """The typed result of one action run: `result` is a short word the brain, record and counters share.

    `handed_off`: the call now belongs to another agent's session; this conversation stops without hanging
    up, and the action has already finished its own record entry (the next session reads it at connect).
    """

    result: str
    say: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    end_call: bool = False
    progress: bool = True
    handed_off: bool = False


class ActionRefused(Exception):
    """A value the action will not use (bad digits, unknown destination...): fails only this action."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class Action:
    """Base of during-call actions: `type`, the argument schema the brain fills, and `run`."""

    type: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    fillable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, runtime: Any, agent: Any) -> None:
        self.config = config
        self.runtime = runtime
        self.agent = agent
        self.name: str = config.name

    def schema(self) -> dict[str, Any]:
        return self.parameters

    def description(self) -> str:
        """What the brain reads to decide when to call this action."""
        return self.config.description

    def base_spec(self) -> ActionSpec:
        """The action as every call sees it (brains embed this once at start)."""
        return ActionSpec(self.name, self.type, self.description(), self.schema(), fillable=self.fillable)

    def spec(self, call: "CallSession") -> ActionSpec:
        """The action as this call sees it now (a transfer adds whether its windows are open)."""
        return self.base_spec()

    def resolves(self, field: str, text: str) -> bool | None:
        """Whether `text` settles argument `field` (None: this action cannot tell before running)."""
        return None

    def validate(self, arguments: dict[str, Any]) -> list[str]:
        return validate_arguments(self.schema(), arguments)

    def run(self, conversation: "Conversation", arguments: dict[str, Any]) -> ActionOutcome:
        raise TypeError(f"{type(self).__name__} must define run()")


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"[^a-z0-9]+", " ", "".join(c for c in text if not unicodedata.combining(c))).strip()


class LoopGuard:
    """The built-in hang-up that ends loops: silences, repeated turns, turns without progress."""

    def __init__(self, limits: Any) -> None:
        self.limits = limits
        self.silences = 0
        self.repeats = 0
        self.last_text = ""
        self.without_progress = 0

    def observe(self, turn: Turn) -> str | None:
        """Count a caller turn; the reason to hang up when a limit is reached."""
        if turn.kind not in ("speech", "dtmf", "no_input", "no_match"):
            return None
        self.without_progress += 1
        if turn.kind == "no_input":
            self.silences += 1
            if self.silences >= self.limits.max_consecutive_silences:
                return "consecutive_silences"
        else:
            self.silences = 0
        if turn.kind == "speech":
            text = _norm(turn.text)
            self.repeats = self.repeats + 1 if text and text == self.last_text else 1
            self.last_text = text
            if self.repeats >= self.limits.max_repeated_turns:
                return "repeated_turns"
        if self.without_progress >= self.limits.max_turns_without_progress:
            return "turns_without_progress"
        return None

    def progress(self) -> None:
        self.without_progress = 0


_PHRASES = {
    "fr": {
        "max_duration": "Nous avons atteint la durée maximale de l'appel. Merci de votre appel, au revoir.",
        "loop_goodbye": "Je ne parviens pas à vous aider pour le moment. Merci de votre appel, au revoir.",
        "not_yet": "Y a-t-il autre chose que je puisse faire pour vous ?",
        "goodbye": "Merci de votre appel, au revoir.",
        "rag_before": "Un instant, je regarde.",
        "rag_no_answer": "Je ne trouve pas cette information.",
    },
    "en": {
        "max_duration": "We have reached the maximum length for this call. Thank you for calling, goodbye.",
        "loop_goodbye": "I am unable to help you right now. Thank you for calling, goodbye.",
        "not_yet": "Is there anything else I can do for you?",
        "goodbye": "Thank you for calling, goodbye.",
        "rag_before": "One moment, I am looking that up.",
        "rag_no_answer": "I could not find that in my documents.",
    },
}


def phrase(language: str, key: str) -> str:
    """A built-in line in the agent's language (English when the language has none)."""
    return _PHRASES.get(language[:2], _PHRASES["en"])[key]
