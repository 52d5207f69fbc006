"""The hang-up action: the brain judged the operator's condition met; after `min_attempts` times, end the call."""
from __future__ import annotations

from typing import Any

from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext
from controller.phrases import phrase


@register
class HangupAction(Action):
    """Ends the call once its natural-language condition has been met `min_attempts` times in this call.

    Below the count the agent does not hang up: it asks whether it can do anything else, so a caller who said
    "au revoir" by mistake is not cut off when the operator asked for two confirmations.
    """

    type = "hangup"

    @property
    def offered(self) -> bool:
        """Without a condition it is machine detection's alone (`answered_by`), never the brain's."""
        return self.config.condition is not None

    def description(self) -> str:
        return f"{self.config.description} (condition: {self.config.condition})"

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        met, needed = ctx.count(f"hangup:{self.name}"), self.config.min_attempts
        if met < needed:
            return ActionOutcome("condition_met", say=phrase(ctx.language, "not_yet"),
                                 detail={"attempt": met, "min_attempts": needed}, progress=False)
        goodbye = self.config.message or phrase(ctx.language, "goodbye")
        return ActionOutcome("hung_up", say=goodbye, detail={"attempt": met, "min_attempts": needed},
                             end_call=True)
