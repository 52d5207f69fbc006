"""What every during-call action shares: the registry, the typed outcome, the refusal.

An action validates its configuration in its config model and executes through its `ActionContext`
(context.py), never through the call or the process. The registry refuses two actions of the same type.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from controller.actions.context import ActionContext, Services
from controller.brain.base import ActionSpec
from controller.brain.tools import validate_arguments
from controller.config.agent import AgentConfig
from controller.config.base import ActionBase

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
    up, and the call has already finished the action's record entry (the next session reads it at connect).
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
    """Base of during-call actions: `type`, the argument schema the brain fills, and `run`.

    Built once per configuration version, with that version's services: a live call keeps its actions.
    """

    type: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    fillable: ClassVar[tuple[str, ...]] = ()
    events: ClassVar[tuple[str, ...]] = ()  # event types the call subscribes at its start for this action

    def __init__(self, config: ActionBase, agent: AgentConfig, services: Services) -> None:
        self.config = config
        self.agent = agent
        self.services = services
        self.name: str = config.name

    @property
    def offered(self) -> bool:
        """Whether brains see this action (one that only machine detection runs is not theirs to call)."""
        return True

    def schema(self) -> dict[str, Any]:
        return self.parameters

    def description(self) -> str:
        """What the brain reads to decide when to call this action."""
        return self.config.description

    def base_spec(self) -> ActionSpec:
        """The action as every call sees it (brains embed this once at start)."""
        return ActionSpec(self.name, self.type, self.description(), self.schema(), fillable=self.fillable)

    def spec(self, ctx: ActionContext) -> ActionSpec:
        """The action as this call sees it now (a transfer adds whether its windows are open)."""
        return self.base_spec()

    def resolves(self, field: str, text: str) -> bool | None:
        """Whether `text` settles argument `field` (None: this action cannot tell before running)."""
        return None

    def validate(self, arguments: dict[str, Any]) -> list[str]:
        return validate_arguments(self.schema(), arguments)

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        raise TypeError(f"{type(self).__name__} must define run()")
