"""Machine detection, the step before the greeting of an answered outbound call: listen, decide, then act.

The agent stays quiet while it listens, so it never greets over a voicemail or an IVR menu. It subscribes to
`CUSTOM avmd::beep avmd::start avmd::stop` before `avmd_start` (capture 14: avmd::start is seen only then), with
the argument the channel's direction needs, and feeds the greeting detector (call/answering.py) what the
recogniser returns and the beep. avmd::start and ::stop arrive twice with one Event-Sequence: deduped here.
Then: a person (or nobody decisive) gets the greeting, and words that were more than a hello become the first
caller turn; a machine runs the agent's hang-up action with `answered_by: [machine]` (its `leave_message` after
the beep) or, without one, the brain gets Turn("event", "machine"); an IVR's words reach the brain as speech.
"""
from __future__ import annotations

from typing import Any, Optional

from controller.actions.base import Action
from controller.brain.base import Turn
from controller.call.answering import GreetingDetector, Verdict
from controller.esl import commands
from controller.esl.frames import CommandError, EslError, Frame
from controller.esl.speech import parse_heard
from controller.templating import TemplateError, render

AVMD = "mod_avmd"
BEEP_SILENCE_S = 1.0  # without avmd: the end of a voicemail's greeting, then this much quiet, stands for the beep


class Detection:
    """One call's detection: the avmd state, the events seen, the verdict. `conv` is the call's Conversation
    (typed loosely: the conversation imports this module)."""

    def __init__(self, conv: Any) -> None:
        self.conv = conv
        self.settings = conv.agent.machine_detection
        self.clock = conv.clock
        self.started = self.clock.monotonic()
        self.detector = GreetingDetector(self.settings.max_detect_s)
        self.avmd = False
        self.beeped = False
        self.speaking = False
        self.quiet_since = 0.0
        self.sequences: set[str] = set()
        self.avmd_events: list[str] = []  # distinct avmd:: events, in order: avmd::start says avmd really runs

    def wanted(self) -> bool:
        direction, enabled = self.conv.variables.get("direction", "inbound"), self.settings.enabled
        return not self.conv.resumed and (enabled == "all" or (enabled == "outbound" and direction == "outbound"))

    def at(self) -> float:
        """Call seconds since detection started (the answer, give or take the socket set-up)."""
        return (self.clock.monotonic() - self.started) / self.clock.time_scale

    # ------------------------------------------------------------------ listening
    def start(self) -> bool:
        """avmd on when mod_avmd is loaded; False when there is nothing to listen with (no avmd, no ASR)."""
        conv = self.conv
        if not conv.has_module(AVMD):
            conv.log.warning("machine detection: %s not loaded, the greeting classifier decides alone", AVMD)
        else:
            direction = "outbound" if conv.variables.get("direction") == "outbound" else "inbound"
            try:
                conv.esl.command(commands.event_plain(commands.AVMD_EVENTS), conv.services.command_timeout)
                conv.execute(commands.avmd_start(direction))
                self.avmd = True
            except CommandError as exc:
                conv.log.warning("machine detection: avmd not started (%s); the greeting classifier decides alone",
                                 exc)
        if not self.avmd and not conv.asr_on:
            conv.log.warning("machine detection skipped: neither avmd nor speech recognition is available")
            return False
        self.started = self.clock.monotonic()
        return True

    def stop_avmd(self) -> None:
        if self.avmd:
            self.avmd = False
            try:
                self.conv.execute(commands.avmd_stop())
            except EslError as exc:
                self.conv.log.warning("avmd_stop failed: %s", exc)

    def feed(self, frame: Frame) -> Optional[Verdict]:
        """One event of the call while detecting (or waiting for the beep)."""
        conv, at = self.conv, self.at()
        if frame.name == "CUSTOM" and (frame.get("Event-Subclass") or "").startswith("avmd::"):
            sequence = frame.get("Event-Sequence") or ""
            if sequence in self.sequences:
                return None  # the copy with channel data of avmd::start/stop (capture 14)
            self.sequences.add(sequence)
            self.avmd_events.append(frame.get("Event-Subclass") or "")
            if frame.get("Event-Subclass") == "avmd::beep":
                self.beeped = True
                conv.add_turn("system", "beep")
                return self.detector.beep(at)
            return None
        if frame.name != "DETECTED_SPEECH":
            return None
        kind = frame.get("Speech-Type", "")
        if kind == "begin-speaking":
            self.speaking = True
            self.detector.begin_speaking(at)
        elif kind == "detected-speech":
            self.speaking, self.quiet_since = False, at
            heard = parse_heard(frame.body)
            conv.resume_asr()
            if heard.kind == "speech":
                conv.add_turn("caller", heard.text, confidence=heard.confidence)
                return self.detector.words(heard.text, at)
        elif kind == "detected-partial-speech":
            heard = parse_heard(frame.body)
            if heard.kind == "speech":
                return self.detector.partial(heard.text, at)
        elif kind == "closed" and conv.asr_on:
            conv.start_asr()
        return None

    def listen(self) -> Verdict:
        verdict = None
        while verdict is None:
            wait = self.clock.scaled(max(0.0, self.detector.due() - self.at()))
            frame = self.conv.next_event(wait)
            verdict = self.feed(frame) if frame is not None else None
            verdict = verdict or self.detector.tick(self.at())
        if verdict.how == "length" and self.speaking:  # an IVR reads long menus too: its words may revise it
            deadline = self.at() + self.settings.max_beep_wait_s
            while self.speaking and self.at() < deadline:
                frame = self.conv.next_event(self.clock.scaled(deadline - self.at()))
                if frame is not None:
                    self.feed(frame)
            verdict = self.detector.verdict or verdict
        return verdict

    # ------------------------------------------------------------------ acting on the verdict
    def wait_for_beep(self) -> str:
        """Until avmd's beep, or (without avmd) the end of the greeting and a second of quiet, at most
        `max_beep_wait_s`; returns what ended the wait: beep, silence or max_wait."""
        if self.beeped:
            return "beep"
        deadline = self.at() + self.settings.max_beep_wait_s
        while True:
            now = self.at()
            until = deadline if self.avmd or self.speaking else min(deadline, self.quiet_since + BEEP_SILENCE_S)
            if now >= until:
                return "max_wait" if now >= deadline else "silence"
            frame = self.conv.next_event(self.clock.scaled(until - now))
            if frame is not None:
                self.feed(frame)
                if self.beeped:
                    return "beep"

    def on_machine(self, action: Optional[Action], answered_by: str = "machine") -> None:
        """The answerer's hang-up action (the message after the beep first), or the brain's turn."""
        conv = self.conv
        if action is None:  # the brain's turn once the greeting is over: its words are not a caller's turn
            self.wait_for_beep()
            self.stop_avmd()
            conv.restart_silence()
            conv.handle(Turn("event", "machine"))
            return
        config = action.config
        entry = conv.record.start_action("during_call", action.name, action.type, answered_by=answered_by)
        conv.running = entry
        detail: dict[str, object] = {}
        if config.leave_message and answered_by == "machine":
            detail["waited_for"] = self.wait_for_beep()
            self.stop_avmd()
            try:
                message = render(config.leave_message, conv.variables)
            except TemplateError as exc:
                conv.log.error("leave_message template failed (%s); hanging up without it", exc)
                message = ""
            conv.say(message)
            conv.wait_quiet()
            result = "message_left" if message else "hung_up"
        else:
            self.stop_avmd()
            result = "hung_up"
        conv.running = None
        conv.record.finish_action(entry, result, **detail)
        conv.end()


def machine_action(conv: Any, answered_by: str) -> Optional[Action]:
    """The agent's hang-up action for this answerer (`answered_by: [machine]`), if it has one."""
    return next((a for a in conv.actions.values()
                 if a.type == "hangup" and answered_by in a.config.answered_by), None)


def detect_answerer(conv: Any) -> bool:
    """Run detection when the agent wants it for this call; True when the call was dealt with (no greeting)."""
    detection = Detection(conv)
    if not detection.wanted() or not detection.start():
        return False
    verdict = detection.listen()
    conv.record.answered(verdict.answered_by, how=verdict.how, decision_s=round(verdict.at_s, 2),
                         heard=verdict.heard, avmd_events=list(detection.avmd_events))
    conv.restart_silence()
    if verdict.answered_by == "machine":
        detection.on_machine(machine_action(conv, "machine"))
        return True
    detection.stop_avmd()
    if verdict.answered_by == "ivr":
        action = machine_action(conv, "ivr")
        if action is not None:
            detection.on_machine(action, "ivr")
        else:
            conv.handle(Turn("speech", verdict.heard))
        return True
    if verdict.heard and not verdict.only_hello:
        conv.push_turn(Turn("speech", verdict.heard))
    return False
