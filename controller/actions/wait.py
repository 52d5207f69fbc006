"""The wait action: stay silent through hold music or an IVR menu; resume when a person speaks or it ends.

It hears two things: the recogniser's words (a person, or a recorded prompt: the words decide) and the audio
itself, streamed out of FreeSWITCH with `unicast` and labelled each second (hold_audio.py): music, silence
and noise mean "keep waiting"; a menu is over once no voice has been heard for `MENU_SILENCE_S` after it.
"""
from __future__ import annotations

import re
from typing import Any

from controller.brain.base import Turn
from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext
from controller.actions.hold_audio import HoldAudio
from controller.esl.speech import parse_heard
from controller.phrases import phrase

# Recorded prompts (French and English): hearing these means "keep waiting", not "a person". Whole words only:
# "merci pour votre appel, Sophie à l'appareil" is a person, "Cordialement" is not "dial". A menu prompt
# (keys to press) becomes a turn once it ends; a hold prompt does not.
_MENU = re.compile(r"\b(tapez|appuyez|touche|pour (joindre|contacter|parler)|press|dial|for .* say)\b", re.IGNORECASE)
_HOLD = re.compile(
    r"\b(veuillez patienter|ne quittez pas|restez en ligne|tous nos (conseillers|op[ée]rateurs)|"
    r"votre appel (est|va|sera)|please (hold|wait|stay)|stay on the line|remain on the line|"
    r"your call is important|all (of )?our (agents|representatives|operators))\b", re.IGNORECASE)
HOLD_EVENTS = ("CHANNEL_HOLD", "CHANNEL_UNHOLD")
MENU_SILENCE_S = 3.0
POLL_S = 0.5  # call seconds between looks at the audio
VOICE_S = 2  # seconds of voice in a row that end a wait when no recogniser tells words apart (asr off)


@register
class WaitAction(Action):
    """Silent until: a person speaks (speech that is not a recorded prompt), the menu ends (a menu prompt then
    `MENU_SILENCE_S` without voice: the menu goes to the brain as a speech turn), the far end takes us off hold
    (CHANNEL_UNHOLD), or `max_wait_s` (a `wait_timeout` event turn). The call's total time waiting is capped by
    the agent's `limits.max_hold_s`: past it the call ends with the built-in hang-up."""

    type = "wait"
    events = HOLD_EVENTS  # hold hints on by default: the call hears a hold before any wait runs

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        clock = ctx.clock
        ctx.subscribe(HOLD_EVENTS)
        ctx.wait_quiet()
        started = clock.monotonic()
        try:
            with HoldAudio(ctx) as audio:
                audio.start()
                return self._wait(ctx, audio, started)
        finally:
            ctx.held((clock.monotonic() - started) / clock.time_scale)

    def _wait(self, ctx: ActionContext, audio: HoldAudio, started: float) -> ActionOutcome:
        clock = ctx.clock
        resume_on = set(self.config.resume_on)
        deadline = started + clock.scaled(self.config.max_wait_s)
        hold_end = started + clock.scaled(max(0.0, ctx.agent.limits.max_hold_s - ctx.held(0.0)))
        menu: list[str] = []
        menu_at = 0.0
        prompts: list[str] = []
        voice_at: float | None = None  # when the last second of voice was heard after the menu
        voiced = 0  # seconds of voice in a row
        while True:
            now = clock.monotonic()
            for heard_label in audio.poll():
                voiced = voiced + 1 if heard_label == "speech" else 0
                if heard_label == "speech":
                    voice_at = now
            if now >= hold_end:
                return self._max_hold(ctx, audio, prompts)
            if not ctx.asr_on and voiced >= VOICE_S and "speech" in resume_on:
                return self._resume(ctx, "voice", prompts, audio)
            limits = [deadline - now, hold_end - now, clock.scaled(POLL_S)]
            if menu and "menu_end" in resume_on:
                menu_end = max(menu_at, voice_at or 0.0) + clock.scaled(MENU_SILENCE_S)
                if now >= min(menu_end, deadline):  # a menu heard is passed on, even at max_wait_s
                    text = " ".join(menu)
                    ctx.add_turn("caller", text, recorded_prompt=True)
                    ctx.push_turn(Turn("speech", text))
                    return self._resume(ctx, "menu_end", prompts, audio)
                limits.append(menu_end - now)
            if now >= deadline:
                ctx.restart_silence()
                ctx.push_turn(Turn("event", "wait_timeout", result={
                    "audio": audio.last, "waited_s": self.config.max_wait_s}))
                return ActionOutcome("timed_out", detail={"reason": "max_wait", "recorded_prompts": prompts[-5:],
                                                          **audio.summary()}, progress=False)
            frame = ctx.next_event(max(0.0, min(limits)))
            if frame is None:
                continue
            if frame.name == "CHANNEL_UNHOLD" and "unhold" in resume_on:
                return self._resume(ctx, "unhold", prompts, audio)
            if frame.name == "DETECTED_SPEECH" and frame.get("Speech-Type") == "detected-speech":
                heard = parse_heard(frame.body)
                ctx.resume_asr()
                if ctx.asr_on:
                    audio.start()  # detect_speech resume is an app: it ended the stream
                if heard.kind != "speech":
                    continue
                is_menu = bool(_MENU.search(heard.text))
                if is_menu or _HOLD.search(heard.text):
                    prompts.append(heard.text)
                    if is_menu:
                        menu.append(heard.text)
                        menu_at, voice_at = clock.monotonic(), None
                    continue
                if "speech" in resume_on:
                    ctx.add_turn("caller", heard.text, confidence=heard.confidence)
                    ctx.push_turn(Turn("speech", heard.text, heard.confidence))
                    return self._resume(ctx, "person_speaking", prompts, audio)

    def _resume(self, ctx: ActionContext, why: str, prompts: list[str], audio: HoldAudio) -> ActionOutcome:
        ctx.restart_silence()
        return ActionOutcome("resumed", say=self.config.message_after or "",
                             detail={"reason": why, "recorded_prompts": prompts[-5:], **audio.summary()})

    def _max_hold(self, ctx: ActionContext, audio: HoldAudio, prompts: list[str]) -> ActionOutcome:
        ctx.builtin_hangup("max_hold_s", phrase(ctx.language, "max_hold"))
        return ActionOutcome("max_hold", detail={"reason": "max_hold_s", "max_hold_s": ctx.agent.limits.max_hold_s,
                                                 "recorded_prompts": prompts[-5:], **audio.summary()},
                             progress=False)
