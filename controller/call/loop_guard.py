"""The built-in hang-up that ends loops: too many silences, the same words again, turns without progress."""
from __future__ import annotations

from controller.brain.base import Turn
from controller.config.agent import Limits
from controller.text import fold_words


class LoopGuard:
    """Counts the caller's turns against the agent's `limits`; `observe` names the limit a turn reached."""

    def __init__(self, limits: Limits) -> None:
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
            text = fold_words(turn.text)
            self.repeats = self.repeats + 1 if text and text == self.last_text else 1
            self.last_text = text
            if self.repeats >= self.limits.max_repeated_turns:
                return "repeated_turns"
        if self.without_progress >= self.limits.max_turns_without_progress:
            return "turns_without_progress"
        return None

    def progress(self) -> None:
        self.without_progress = 0
