"""The caller: waits for the answer, then plays the scenario's script step by step.

A `say` waits for a pause of `after` seconds (default 1.0) in the agent's audio, like a person waiting for
the prompt to end; with `barge_in: true` it starts `after` seconds (default 0.5) into the agent's next
prompt instead; with `talk_over: true` (a voicemail's greeting) it starts `after` seconds (default 0) after the
previous step, whatever the agent does. The words reach the controller only if `detect_speech` is listening: begin-speaking, then
detected-speech after the speaking time; after a result the recogniser waits for `detect_speech resume`.
Other steps wait `after` seconds (default 0.5) first. When the script ends the caller hangs up once the
agent has been idle for `end_after_s`, unless the scenario says `end: wait`.
"""
from __future__ import annotations

import json
from typing import Callable
from xml.sax.saxutils import escape

from fssim.avmd import avmd_beep, hears_far_end
from fssim.ports import CallPort
from fssim.scenario import Step

DTMF_GAP_S = 0.1


class CallerScript:
    """The person on the caller's leg: one per call, running in its own greenlet."""

    def __init__(self, call: CallPort) -> None:
        self.call = call

    @property
    def up(self) -> bool:
        return self.call.channel.up

    def run(self) -> None:
        """Wait for the answer, play every step, then hang up once the agent is quiet (unless `end: wait`)."""
        call = self.call
        call.wait_until(lambda: call.answered.is_set() or not self.up)
        for step in call.scenario.script:
            if not self.up:
                return
            getattr(self, f"_{step.action}")(step)
        if self.up and call.scenario.end == "hangup":
            self._wait_still(call.scenario.end_after_s, lambda: call.session.idle)
            if self.up:
                call.note("the caller hangs up at the end of the script")
                call.hangup("NORMAL_CLEARING", "caller")

    def _wait_still(self, seconds: float, idle: Callable[[], bool]) -> None:
        """Wait until `idle()` has held for `seconds` in a row."""
        call = self.call
        while self.up:
            call.wait_until(lambda: idle() or not self.up)
            if not call.wait_until(lambda: not idle() or not self.up, timeout_s=seconds):
                return

    def _pause(self, step: Step, default: float = 0.5) -> None:
        self.call.sleep(default if step.after is None else step.after)

    def _say(self, step: Step) -> None:
        call = self.call
        if step.talk_over:
            self._pause(step, 0.0)
        elif step.barge_in:
            call.wait_until(lambda: call.session.agent_talking or not self.up)
            self._pause(step, 0.5)
        else:
            self._wait_still(1.0 if step.after is None else step.after, lambda: not call.session.agent_talking)
        if not self.up:
            return
        text = step.value
        speaking = len(text) * call.scenario.caller_seconds_per_char
        if not call.asr.listening:
            call.note(f"caller says {text!r}: nobody listens (detect_speech not running or not resumed)")
            call.rec.heard.append((text, False))
            call.sleep(speaking)
            return
        call.note(f"caller says {text!r}")
        playing, call.far_audio = call.far_audio, "speech"
        try:
            self._speak(text, speaking)
        finally:
            call.far_audio = playing

    def _speak(self, text: str, speaking: float) -> None:
        call = self.call
        self._deliver("begin-speaking")
        if call.scenario.speech_partials:
            call.sleep(speaking / 2)
            words = text.split()
            self._deliver("detected-partial-speech", self._result(" ".join(words[: max(1, len(words) // 2)])))
            call.sleep(speaking / 2)
        else:
            call.sleep(speaking)
        if not self.up:
            return
        if not call.asr.listening:
            call.note(f"recognition of {text!r} was paused or stopped before the caller finished")
            call.rec.heard.append((text, False))
            return
        outcome = self._deliver("detected-speech", self._result(text))
        call.asr.listening = False
        call.rec.heard.append((text, outcome != "lost"))

    def _deliver(self, speech_type: str, body: str | None = None) -> str:
        outcome = self.call.asr.deliver(speech_type, body)
        if outcome == "lost":
            self.call.note(f"DETECTED_SPEECH {speech_type} lost: {self._why_lost()}")
        return outcome

    def _why_lost(self) -> str:
        if self.call.divert:
            return "divert_events is on but the controlling connection listens to no events"
        return "divert_events is off and speak/playback was running (capture 11)"

    def _result(self, text: str) -> str:
        scenario = self.call.scenario
        if scenario.speech_format == "json":
            return json.dumps({"text": text, "confidence": scenario.speech_confidence / 100})
        grammar = escape(self.call.asr.grammar, {'"': "&quot;"})
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<result grammar="{grammar}">\n'
                f'  <interpretation grammar="{grammar}" confidence="{scenario.speech_confidence}">\n'
                f'    <input mode="speech">{escape(text)}</input>\n'
                f'    <instance>{escape(text)}</instance>\n'
                '  </interpretation>\n'
                '</result>')

    def _dtmf(self, step: Step) -> None:
        self._pause(step)
        self.call.note(f"caller presses {step.value}")
        for digit in step.value:
            if not self.up:
                return
            self.call.fire("DTMF", after=[("DTMF-Digit", digit.upper()), ("DTMF-Duration", "2000"),
                                          ("DTMF-Source", "RTP")])
            self.call.sleep(DTMF_GAP_S)

    def _hold(self, step: Step) -> None:
        seconds, audio = step.value
        self._pause(step)
        self._set_hold(True)
        if audio is not None:
            self.call.far_audio = audio
        if seconds is not None:
            self.call.sleep(seconds)
            self._set_hold(False)
            if audio is not None:
                self.call.far_audio = "silence"

    def _audio(self, step: Step) -> None:
        sound, seconds = step.value
        self._pause(step, 0.0)
        self.call.note(f"the far end plays {sound}")
        self.call.far_audio = sound
        if seconds is not None:
            self.call.sleep(seconds)
            self.call.far_audio = "silence"

    def _unhold(self, step: Step) -> None:
        self._pause(step, 0.0)
        self._set_hold(False)

    def _set_hold(self, on: bool) -> None:
        call, ch = self.call, self.call.channel
        if not self.up or call.held == on:
            return
        call.held = on
        if on:
            ch.mark("last-hold")
        else:
            held_for = call.now_us() - ch.profile.times.get("last-hold", call.now_us())
            ch.profile.times["hold-accum"] = ch.profile.times.get("hold-accum", 0) + held_for
        call.note("caller puts the call on hold" if on else "caller takes the call off hold")
        call.fire_callstate("HELD" if on else "ACTIVE")
        call.fire("CHANNEL_HOLD" if on else "CHANNEL_UNHOLD")

    def _silence(self, step: Step) -> None:
        self.call.sleep(step.value)

    def _hangup(self, step: Step) -> None:
        self._pause(step)
        if self.up:
            self.call.hangup(step.value, "caller")

    def _wait_for(self, step: Step) -> None:
        call = self.call
        app, count = step.value
        if app == "unicast":  # not an app: the controller's `sendmsg call-command: unicast` requests
            call.wait_until(lambda: self._unicasts() >= count or not self.up)
        else:
            call.wait_until(lambda: call.started_apps[app] >= count or not self.up)
        self._pause(step, 0.0)

    def _unicasts(self) -> int:
        return sum(1 for c in self.call.rec.commands if c.name == "sendmsg"
                   and (c.headers.get("call-command") or "").lower() == "unicast")

    def _beep(self, step: Step) -> None:
        self._pause(step)
        call = self.call
        if not call.avmd_running:
            call.note("voicemail beep: avmd is not running, nothing detects it")
            return
        if not hears_far_end(call):
            call.note("voicemail beep: avmd on this inbound channel taps only what the leg plays (capture 14)")
            return
        avmd_beep(call)
