"""The keypad action: send DTMF to an IVR (calls the agent places itself), never over the agent's own voice.

The keys come from the configuration (`digits`), from the brain (`digits` argument, the openai brain), or from
the menu heard (`menu` argument, which the semantic brain fills with the IVR's words): the option whose label
serves the action's `goal` (controller/brain/menu.py, menu_goal.py). After pressing, the agent listens without
a word: the IVR's next words (gathered until a pause of MENU_GAP_S) become the caller's next turn, so the next
menu can be answered; no no-input prompt before they come or `listen_after_s` passes.
"""
from __future__ import annotations

from typing import Any

from controller.actions.base import Action, ActionOutcome, ActionRefused, register
from controller.actions.context import ActionContext
from controller.brain.base import Turn
from controller.brain.menu import parse_menu
from controller.brain.menu_goal import choose_option
from controller.esl import commands
from controller.esl.frames import CallHangup
from controller.esl.speech import parse_heard
from controller.esl.values import DialStringError
from controller.templating import TemplateError, render
from controller.text import fold_words

MENU_GAP_S = 1.0  # call seconds of quiet after the IVR's words before they go to the brain as one turn
SPEAKING_LIMIT_S = 60.0  # call seconds words begun before listen_after_s may take to end
PROMPT_CHARS = 300  # how much of a prompt identifies it for the same-keys rule
PRESSED = "keypad_pressed"  # call variable: [{"keys", "prompt"}] of every press, for the same-keys rule
DIGITS_PATTERN = r"^[0-9*#A-DwW]{1,99}(@[0-9]{2,4})?$"


@register
class KeypadAction(Action):
    """Runs `send_dtmf <digits>@<tone_ms>` (e.g. `send_dtmf 1w2#@100`: `w` waits 0.5 s, `W` 1 s), then listens.

    Refusals (typed, no key pressed): `invalid_digits: ...`, `no_menu_heard` (no key stated in the words),
    `no_option_matches` / `ambiguous` (no option serves the goal), `same_keys_twice` (fixed or brain-chosen keys
    already pressed for another prompt, unless `repeat_keys`; keys read from a menu are that menu's own).
    """

    type = "keypad"
    fillable = ("menu",)

    def schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {"menu": {
            "type": "string", "maxLength": 2000,
            "description": "the automated menu's words as heard; the keys for the goal are read from them"}}
        if not self.config.digits:
            properties["digits"] = {"type": "string", "pattern": DIGITS_PATTERN, "description": (
                "keys to press: 0-9 * # A-D, w = 0.5 s pause, W = 1 s, optionally @ms tone length (12@200)")}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        menu = str(arguments.get("menu") or "")
        detail: dict[str, Any] = {}
        if self.config.digits:
            digits, source = self.config.digits, "config"
        elif arguments.get("digits") is not None:
            digits, source = arguments["digits"], "brain"
        else:
            digits, source, detail = self._from_menu(ctx, menu)
        try:
            app = commands.send_dtmf(digits, self.config.tone_ms)
        except DialStringError as exc:
            raise ActionRefused(f"invalid_digits: {exc.reason}", "digits") from None
        prompt = fold_words(menu)[:PROMPT_CHARS]
        pressed: list[dict[str, str]] = ctx.variables.setdefault(PRESSED, [])
        if source != "menu" and not self.config.repeat_keys and any(
                p["keys"] == digits and (not prompt or p["prompt"] != prompt) for p in pressed):
            raise ActionRefused("same_keys_twice", "digits")
        ctx.wait_quiet()
        ctx.execute(app, self.services.execute_timeout + ctx.clock.scaled(0.6 * len(digits)))
        pressed.append({"keys": digits, "prompt": prompt})
        detail = {"digits": digits, "source": source, **detail}
        words: list[str] = []
        try:
            heard = self._listen(ctx, words)
        except CallHangup as hangup:  # the IVR hung up after the keys (a goal reached): they were still sent
            if words:
                ctx.add_turn("caller", " ".join(words))
            hangup.outcome = ActionOutcome(  # type: ignore[attr-defined]
                "sent", detail={**detail, "heard_after": " ".join(words)})
            raise
        return ActionOutcome("sent", detail={**detail, "heard_after": heard})

    def _goal(self, ctx: ActionContext) -> str:
        if not self.config.goal:
            return self.description()
        try:
            return render(self.config.goal, ctx.variables)
        except TemplateError as exc:
            ctx.log.warning("keypad %s: goal template failed (%s); matching the description", self.name, exc)
            return self.description()

    def _from_menu(self, ctx: ActionContext, menu: str) -> tuple[str, str, dict[str, Any]]:
        options = parse_menu(menu)
        if not options:
            raise ActionRefused("no_menu_heard", "menu")
        goal = self._goal(ctx)
        choice = choose_option(options, goal)
        offered = {o.keys: o.label for o in options}
        if choice.option is None:
            ctx.log.info("keypad %s: %s for goal %r among %s", self.name, choice.reason, goal, offered)
            raise ActionRefused(choice.reason, "menu")
        return choice.option.keys, "menu", {"option": choice.option.label, "goal": goal, "offered": offered}

    def _listen(self, ctx: ActionContext, words: list[str]) -> str:
        """The IVR's words after the keys (gathered in `words`, pushed as the next turn), or "" after
        `listen_after_s` of silence.

        Words begun before `listen_after_s` are waited for (at most SPEAKING_LIMIT_S more): a long prompt is heard
        whole instead of being talked over."""
        clock = ctx.clock
        start = clock.monotonic()
        deadline = start + clock.scaled(self.config.listen_after_s)
        limit = deadline + clock.scaled(SPEAKING_LIMIT_S)
        confidences: list[float] = []
        speaking = False
        while True:
            now = clock.monotonic()
            if now >= (limit if speaking else deadline):
                break
            frame = ctx.next_event((limit if speaking else deadline) - now)
            if frame is None or frame.name != "DETECTED_SPEECH":
                continue
            kind = frame.get("Speech-Type")
            speaking = kind == "begin-speaking" or (speaking and kind not in ("detected-speech", "closed"))
            if kind == "closed" and ctx.asr_on:
                asr = ctx.agent.speech.asr
                ctx.execute(commands.detect_speech(asr.engine, asr.grammar, asr.params))
            if kind != "detected-speech":
                continue
            heard = parse_heard(frame.body)
            ctx.resume_asr()
            if heard.kind == "speech" and heard.text.strip():
                words.append(heard.text.strip())
                if heard.confidence is not None:
                    confidences.append(heard.confidence)
                deadline = clock.monotonic() + clock.scaled(MENU_GAP_S)
        ctx.restart_silence()
        if not words:
            return ""
        text = " ".join(words)
        confidence = min(confidences) if confidences else None
        ctx.add_turn("caller", text, confidence=confidence)
        ctx.push_turn(Turn("speech", text, confidence))
        return text
