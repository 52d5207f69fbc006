"""The wait action: stay silent through hold music or an IVR menu; resume when a person speaks or it ends."""
from __future__ import annotations

import re
from typing import Any

from controller.brain.base import Turn
from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext
from controller.esl.speech import parse_heard

# Recorded hold and IVR prompts (French and English): hearing these means "keep waiting", not "a person".
# Whole words only: "merci pour votre appel, Sophie à l'appareil" is a person, "Cordialement" is not "dial".
_RECORDED = re.compile(
    r"\b(veuillez patienter|ne quittez pas|restez en ligne|tous nos (conseillers|op[ée]rateurs)|"
    r"votre appel (est|va|sera)|tapez|appuyez|touche|pour (joindre|contacter|parler)|"
    r"please (hold|wait|stay)|stay on the line|remain on the line|your call is important|all (of )?our "
    r"(agents|representatives|operators)|press|dial|for .* say)\b", re.IGNORECASE)
MENU_SILENCE_S = 3.0


@register
class WaitAction(Action):
    """Silent until: a person speaks (speech that is not a recorded prompt), the menu ends (a recorded prompt
    followed by `MENU_SILENCE_S` of silence), the far end takes us off hold (CHANNEL_UNHOLD), or `max_wait_s`."""

    type = "wait"

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        clock = ctx.clock
        resume_on = set(self.config.resume_on)
        ctx.wait_quiet()
        deadline = clock.monotonic() + clock.scaled(self.config.max_wait_s)
        menu_heard_at: float | None = None
        prompts: list[str] = []
        while True:
            now = clock.monotonic()
            limits = [deadline - now]
            if menu_heard_at is not None and "menu_end" in resume_on:
                menu_end = menu_heard_at + clock.scaled(MENU_SILENCE_S)
                if now >= menu_end:
                    return self._resume(ctx, "menu_end", prompts)
                limits.append(menu_end - now)
            if now >= deadline:
                return self._resume(ctx, "max_wait", prompts)
            frame = ctx.next_event(max(0.0, min(limits)))
            if frame is None:
                continue
            if frame.name == "CHANNEL_UNHOLD" and "unhold" in resume_on:
                return self._resume(ctx, "unhold", prompts)
            if frame.name == "DETECTED_SPEECH" and frame.get("Speech-Type") == "detected-speech":
                heard = parse_heard(frame.body)
                ctx.resume_asr()
                if heard.kind != "speech":
                    continue
                if _RECORDED.search(heard.text):
                    prompts.append(heard.text)
                    menu_heard_at = clock.monotonic()
                    continue
                if "speech" in resume_on:
                    ctx.add_turn("caller", heard.text, confidence=heard.confidence)
                    ctx.push_turn(Turn("speech", heard.text, heard.confidence))
                    return self._resume(ctx, "person_speaking", prompts)

    def _resume(self, ctx: ActionContext, why: str, prompts: list[str]) -> ActionOutcome:
        ctx.restart_silence()
        return ActionOutcome("resumed", say=self.config.message_after or "",
                             detail={"reason": why, "recorded_prompts": prompts[-5:]})
