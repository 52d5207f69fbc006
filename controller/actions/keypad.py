"""The keypad action: send DTMF to an IVR (calls the agent places itself), never over the agent's own voice."""
from __future__ import annotations

from typing import Any

from controller.actions.base import Action, ActionOutcome, ActionRefused, register
from controller.actions.context import ActionContext
from controller.esl.commands import send_dtmf
from controller.esl.values import DialStringError


@register
class KeypadAction(Action):
    """Runs `send_dtmf <digits>@<tone_ms>` (e.g. `send_dtmf 1w2#@100`: `w` waits 0.5 s, `W` 1 s).

    Fixed `digits` in the configuration need no argument (the semantic brain can call it); otherwise the
    brain fills `digits`, which passes through the DTMF validator like every value bound for ESL.
    """

    type = "keypad"

    def schema(self) -> dict[str, Any]:
        if self.config.digits:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        return {"type": "object", "required": ["digits"], "additionalProperties": False,
                "properties": {"digits": {"type": "string", "pattern": "^[0-9*#A-DwW]{1,128}$",
                                          "description": "keys to press: 0-9 * # A-D, w = 0.5 s pause, W = 1 s"}}}

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        digits = self.config.digits or arguments.get("digits", "")
        try:
            app = send_dtmf(digits, self.config.tone_ms)
        except DialStringError as exc:
            raise ActionRefused(exc.reason, "digits") from None
        ctx.wait_quiet()
        ctx.execute(app, self.services.execute_timeout + ctx.clock.scaled(0.6 * len(digits)))
        return ActionOutcome("sent", detail={"digits": digits})
