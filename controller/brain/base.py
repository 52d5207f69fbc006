"""The Brain protocol: what the conversation gives a brain for each turn, and what a brain may answer.

Brains sit above the actions: they see each action as an `ActionSpec` (name, description, argument schema,
state) and answer with words and/or one `ActionCall`, which the conversation validates against the schema before
anything runs. An invalid call is refused and the brain is told why (`Turn.kind == "refused"`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

@dataclass(frozen=True)
class Turn:
    """One thing that happened and needs a decision.

    kind: "speech" (text = the caller's words), "dtmf" (text = the digits), "no_input", "no_match",
    "event" (text = e.g. "hold" / "unhold" / "wait_timeout": a wait reached max_wait_s, `result` holds
    {"audio": the last audio label, "waited_s"}), "action_result" (the result of the last action call:
    `result` holds {"action", "result", "detail", "say"}), "refused" (the last action call was invalid:
    `result` holds {"action", "reason"}).
    """

    kind: str
    text: str = ""
    confidence: float | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActionSpec:
    """An action as the brain sees it.

    state: "open", or "closed" (a transfer outside its windows; `next_opening` is an ISO time or None).
    fillable: the argument names the semantic brain may fill from the turn text (e.g. ["destination"]).
    """

    name: str
    type: str
    description: str
    parameters: dict[str, Any]
    state: str = "open"
    next_opening: str | None = None
    fillable: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """Words to say (may be empty) and/or one action call; `note` explains the choice for the record."""

    say: str = ""
    action: ActionCall | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class BrainContext:
    """What a brain knows of the call besides the turn."""

    uuid: str
    agent_id: str
    language: str
    transcript: list[dict[str, Any]]
    variables: dict[str, Any]
    actions: list[ActionSpec]


class Brain(Protocol):
    name: str

    def decide(self, turn: Turn, context: BrainContext) -> Decision:
        """Blocking for the calling greenlet only: CPU work goes to a worker thread, HTTP is cooperative."""
        ...
