"""The turn loop: hear the caller, let the brain decide, speak, run the one action it called, repeat.

Speech in is background `detect_speech` only (never `play_and_detect_speech`, which never gets its result with
diverted events), resumed after every result and restarted when it closes; DTMF digits form one turn, ended by
`#` or `dtmf_turn_timeout_s`; no-input is timed here, from the end of the agent's audio. Barge-in: a
`begin-speaking` while the agent talks sends `uuid_break <uuid> all` and fails the executes it flushed.

The conversation is the `ActionContext` its actions run in (actions/context.py): they reach the call only
through it.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Sequence

import gevent
import gevent.queue

from controller.actions.base import ActionOutcome, ActionRefused
from controller.actions.context import Services
from controller.brain.base import ActionCall, BrainContext, Decision, Turn
from controller.call.detection import detect_answerer
from controller.call.loop_guard import LoopGuard
from controller.call.record import ActionLog, CallRecord
from controller.call.version import AgentPieces
from controller.esl import commands
from controller.esl.commands import App
from controller.esl.frames import CallHangup, CommandError, EslError, ExecuteFlushed, Frame
from controller.esl.modules import LoadedModules
from controller.esl.session import EslSession, Execution
from controller.esl.speech import build_speech, parse_heard
from controller.phrases import phrase
from controller.templating import TemplateError, render

MAX_CHAINED_ACTIONS = 3
MAX_HEARING_S = 60.0  # a begin-speaking whose result never comes stops holding the no-input clock after this


class Conversation:
    """One call's dialogue, and the context its actions run in (speak, run apps, wait for events, hand off)."""

    def __init__(self, esl: EslSession, record: CallRecord, pieces: AgentPieces, services: Services,
                 modules: LoadedModules, *, resumed: bool = False) -> None:
        self.esl = esl
        self.record = record
        self.services = services
        self.clock = services.clock
        self.agent = pieces.agent
        self.speech = pieces.agent.speech
        self.brain = pieces.brain
        self.actions = pieces.actions
        self.modules = modules
        self.resumed = resumed
        self.log = record.log
        self.uuid = record.uuid
        self.variables = record.variables
        self.talking: list[Execution] = []
        self.audio_ended_at = self.clock.monotonic()
        self.turn_arrived_at: float | None = None
        self.dtmf = ""
        self.dtmf_deadline: float | None = None
        self.hearing_since: float | None = None  # the caller (or an IVR) speaks: from begin-speaking to its result
        self.pending: list[Turn] = []
        self.counts: dict[str, int] = {}
        self.clarifying: tuple[str, str] | None = None
        self.ending = False
        self.handed_off = False
        self.running: Optional[ActionLog] = None
        self.guard = LoopGuard(self.agent.limits)
        self.tts_on = modules.has(self.speech.tts.module)
        asr = self.speech.asr
        self.asr_on = bool(asr and asr.module and asr.engine and modules.has(asr.module))
        self.deadline = self.clock.monotonic() + self.clock.scaled(self.agent.limits.max_call_s)
        self.language = self.agent.language
        self.subscribed = set(services.extra_events)
        self.hold_s = 0.0

    # ----------------------------------------------------------------- the loop
    def run(self) -> None:
        self.execute(commands.set_variable("playback_terminators", "none"))
        wanted = sorted({name for action in self.actions.values() for name in action.events})
        if wanted:
            self.subscribe(wanted)
        if self.asr_on:
            self.start_asr()
        else:
            why = "not configured" if not (self.speech.asr and self.speech.asr.module) else \
                f"{self.speech.asr.module} not loaded"
            self.log.warning("speech recognition off (%s): DTMF turns only; detect_speech skipped", why)
        if not self.tts_on:
            self.log.error("TTS module %s not loaded: the agent cannot speak; load it in modules.conf.xml",
                           self.speech.tts.module)
        if not detect_answerer(self):  # outbound: a voicemail or an IVR is not greeted (call/detection.py)
            self.say(self._greeting())
        while not self.ending:
            turn = self.next_turn()
            if turn is None:
                self.builtin_hangup("max_call_s", phrase(self.language, "max_duration"))
                break
            self.handle(turn)

    def handle(self, turn: Turn) -> None:
        reason = self.guard.observe(turn)
        if reason:
            self.builtin_hangup(reason, phrase(self.language, "loop_goodbye"))
            return
        decision = self.clarified(turn) or self.decide(turn)
        for _ in range(MAX_CHAINED_ACTIONS):
            if decision.say:
                self.say(decision.say)
            if decision.action is None or self.ending:
                return
            result = self.run_action(decision.action)
            if self.ending:
                return
            decision = self.decide(result)

    def clarified(self, turn: Turn) -> Decision | None:
        """The answer to "which one?": after an action refused an ambiguous argument, the caller's next words are
        tried as that argument first ("Lyon" after "Vers quel service : Lyon ou Paris ?"); if they do not settle
        it, the turn goes to the brain like any other."""
        pending, self.clarifying = self.clarifying, None
        if pending is None or turn.kind != "speech":
            return None
        name, field = pending
        action = self.actions.get(name)
        if action is None or action.resolves(field, turn.text) is False:
            return None
        return Decision(action=ActionCall(name, {field: turn.text}), note=f"clarification of {name}.{field}")

    def decide(self, turn: Turn) -> Decision:
        context = BrainContext(self.uuid, self.agent.id, self.language, self.record.transcript,
                               self.variables, [a.spec(self) for a in self.actions.values() if a.offered])
        decision = self.brain.decide(turn, context)
        if decision.note or decision.detail:
            self.log.info("brain: %s", decision.note or decision.detail)
        if decision.detail.get("error"):
            self.record.add_turn("system", "brain error", error=decision.detail["error"])
        return decision

    def run_action(self, action_call: ActionCall) -> Turn:
        action = self.actions.get(action_call.name)
        if action is None:
            return Turn("refused", result={"action": action_call.name, "reason": "no such action"})
        errors = action.validate(action_call.arguments)
        if errors:
            self.log.warning("action %s refused: %s", action_call.name, "; ".join(errors))
            return Turn("refused", result={"action": action_call.name, "reason": "; ".join(errors)})
        entry = self.running = self.record.start_action("during_call", action.name, action.type,
                                                        arguments=action_call.arguments)
        try:
            outcome = action.run(self, action_call.arguments)
        except ActionRefused as refused:
            outcome = ActionOutcome("refused", detail={"reason": refused.reason, "field": refused.field})
        except CallHangup as hangup:  # an action may attach what it knew (`hangup.outcome`) before re-raising
            known = getattr(hangup, "outcome", None) or ActionOutcome("abandoned")
            self.record.finish_action(entry, known.result, **known.detail)
            raise
        except EslError as exc:
            outcome = ActionOutcome("failed", detail={"error": str(exc)})
        finally:
            self.running = None
        if outcome.handed_off:
            self.ending = True
            return Turn("action_result", result={"action": action.name, "type": action.type,
                                                 "result": outcome.result, "detail": outcome.detail, "say": ""})
        self.record.finish_action(entry, outcome.result, **outcome.detail)
        if outcome.result == "refused" and outcome.detail.get("reason") == "ambiguous" and outcome.detail.get("field"):
            self.clarifying = (action.name, outcome.detail["field"])
        if outcome.progress:
            self.guard.progress()
        if outcome.end_call:
            self.end(outcome.say)
        return Turn("action_result", result={"action": action.name, "type": action.type, "result": outcome.result,
                                             "arguments": action_call.arguments, "detail": outcome.detail,
                                             "say": "" if outcome.end_call else outcome.say})

    # ----------------------------------------------------------------- speech out
    def _greeting(self) -> str:
        """The agent's greeting; to a caller another agent handed on, its `handoff_greeting` if it has one (so the
        caller hears who they now speak to)."""
        text = (self.resumed and self.speech.handoff_greeting) or self.speech.greeting
        try:
            return render(text, self.variables)
        except TemplateError as exc:
            self.log.error("greeting template failed (%s); saying it without variables", exc)
            return re.sub(r"{[{%].*?[}%]}", "", text)

    def say(self, text: str, then: Sequence[App] = ()) -> list[Execution]:
        """Queue `speak engine|voice|<sentence>` executes (in order) and log the turn; returns the executions of
        `then`, apps sent in the same write to run right after (a transfer's bridge, on the wire while it plays)."""
        if not text or not text.strip():
            return self.esl.start_executes(list(then)) if then else []
        spoken = build_speech(text, self.speech.tts.engine, self.speech.tts.voice)
        if spoken.removed:
            self.log.info("speech builder removed %r from the text to speak", "".join(spoken.removed))
        extra: dict[str, Any] = {}
        if self.turn_arrived_at is not None:
            latency = (self.clock.monotonic() - self.turn_arrived_at) * 1000
            self.record.turn_latency(latency)
            extra["latency_ms"] = round(latency, 2)
            self.turn_arrived_at = None
        speaks = [commands.speak(part) for part in spoken.parts] if self.tts_on else []
        executions = self.esl.start_executes(speaks + list(then)) if speaks or then else []
        self.talking.extend(executions[:len(speaks)])
        self.record.add_turn("agent", spoken.text, **extra)
        return executions[len(speaks):]

    def is_talking(self) -> bool:
        if self.talking and all(e.done for e in self.talking):
            self.talking.clear()
            self.audio_ended_at = self.clock.monotonic()
        return bool(self.talking)

    def wait_quiet(self, limit_s: float = 120.0) -> None:
        """Block until the agent's queued audio has played (the agent never talks over its own key presses)."""
        for execution in list(self.talking):
            try:
                execution.wait(self.clock.scaled(limit_s) + 5.0)
            except ExecuteFlushed:
                pass
        self.is_talking()

    def end(self, goodbye: str = "") -> None:
        """Say goodbye, let it play, hang up."""
        self.ending = True
        self.say(goodbye)
        self.wait_quiet()
        self.record.hangup_by = "agent"
        self.esl.hangup("NORMAL_CLEARING")

    def builtin_hangup(self, reason: str, goodbye: str) -> None:
        entry = self.record.start_action("during_call", "builtin_hangup", "hangup", reason=reason)
        self.record.finish_action(entry, "hung_up")
        self.log.warning("built-in hang-up: %s", reason)
        self.end(goodbye)

    # ----------------------------------------------------------------- speech in
    def start_asr(self) -> None:
        """`detect_speech unimrcp {no-input-timeout=5000}builtin:speech/transcribe switchboard` (commands.py)."""
        asr = self.speech.asr
        self.execute(commands.detect_speech(asr.engine, asr.grammar, asr.params))

    def resume_asr(self) -> None:
        if self.asr_on:
            self.execute(commands.detect_speech_control("resume"))

    def next_event(self, timeout_s: float | None) -> Frame | None:
        """The next event of the call (None on timeout); CallHangup when the channel is gone."""
        try:
            frame = self.esl.events.get(timeout=timeout_s)
        except gevent.queue.Empty:
            frame = None
        else:
            if frame is None:
                raise CallHangup(self.esl.hangup_cause or "SOCKET_CLOSED")
        if self.esl.hungup.is_set():
            raise CallHangup(self.esl.hangup_cause or "NORMAL_CLEARING")
        return frame

    def next_turn(self) -> Turn | None:
        """Wait for the caller's next turn: words, digits, silence, or a hold event; None at max_call_s."""
        if self.pending:
            return self.pending.pop(0)
        while True:
            now = self.clock.monotonic()
            if now >= self.deadline:
                return None
            waits = [self.deadline - now]
            if self.dtmf_deadline is not None:
                if now >= self.dtmf_deadline:
                    return self._dtmf_turn()
                waits.append(self.dtmf_deadline - now)
            elif not self.is_talking() and self._hearing(now):
                waits.append(self.hearing_since + self.clock.scaled(MAX_HEARING_S) - now)  # type: ignore[operator]
            elif not self.is_talking():
                silence_at = self.audio_ended_at + self.clock.scaled(self.speech.no_input_s)
                if now >= silence_at:
                    self.audio_ended_at = now
                    return Turn("no_input")
                waits.append(silence_at - now)
            frame = self.next_event(max(0.0, min(waits)))
            if frame is not None:
                turn = self.on_event(frame)
                if turn is not None:
                    return turn

    def on_event(self, frame: Frame) -> Turn | None:
        """Turn an event into a caller turn when it is one; keep speech recognition and barge-in going."""
        name = frame.name
        if name == "DETECTED_SPEECH":
            kind = frame.get("Speech-Type", "")
            if kind == "begin-speaking":
                self.hearing_since = self.clock.monotonic()
                if self.speech.barge_in and self.is_talking():
                    dropped = self.esl.break_all()
                    self.talking.clear()
                    self.audio_ended_at = self.clock.monotonic()
                    self.log.info("barge-in: agent stopped (%d queued sentence(s) dropped)", len(dropped))
                    self.record.add_turn("system", "barge-in")
                return None
            if kind in ("detected-speech", "closed"):
                self.hearing_since = None
                self.audio_ended_at = self.clock.monotonic()
            if kind == "detected-speech":
                self.turn_arrived_at = self.clock.monotonic()
                heard = parse_heard(frame.body)
                if self.asr_on:  # not waited for (it runs a media frame later): the answer's speaks queue after it
                    self.start_execute(commands.detect_speech_control("resume"))
                if heard.kind == "speech":
                    self.record.add_turn("caller", heard.text, confidence=heard.confidence)
                    return Turn("speech", heard.text, heard.confidence)
                return Turn(heard.kind)
            if kind == "closed" and self.asr_on:
                self.log.info("speech recognition closed; starting it again")
                self.start_asr()
            return None
        if name == "DTMF":
            digit = frame.get("DTMF-Digit", "")
            self.turn_arrived_at = self.clock.monotonic()
            if digit == "#":
                return self._dtmf_turn()
            self.dtmf += digit
            self.dtmf_deadline = self.clock.monotonic() + self.clock.scaled(self.speech.dtmf_turn_timeout_s)
            return None
        if name in ("CHANNEL_HOLD", "CHANNEL_UNHOLD"):
            return Turn("event", "hold" if name == "CHANNEL_HOLD" else "unhold")
        return None

    def _hearing(self, now: float) -> bool:
        """Whether someone speaks now (no silence is counted meanwhile), for at most MAX_HEARING_S of one result."""
        return self.hearing_since is not None and now - self.hearing_since < self.clock.scaled(MAX_HEARING_S)

    def _dtmf_turn(self) -> Turn:
        digits, self.dtmf, self.dtmf_deadline = self.dtmf, "", None
        self.record.add_turn("caller", digits, dtmf=True)
        return Turn("dtmf", digits)

    # ----------------------------------------------------------------- the rest of the action context
    def has_module(self, module: str) -> bool:
        return self.modules.has(module)

    def execute(self, app: App, timeout_s: Optional[float] = None) -> Frame:
        timeout = self.services.execute_timeout if timeout_s is None else timeout_s
        return self.esl.execute(app.name, app.arg, timeout=timeout)

    def start_execute(self, app: App) -> Execution:
        return self.esl.start_execute(app.name, app.arg)

    def api(self, command: str) -> str:
        return self.esl.api(command)

    def listen(self) -> gevent.queue.Queue:
        return self.esl.listen()

    def unlisten(self, queue: gevent.queue.Queue) -> None:
        self.esl.unlisten(queue)

    def wait_hangup(self, timeout_s: float) -> bool:
        return self.esl.hungup.wait(timeout=timeout_s)

    def hangup_cause(self) -> str:
        return self.esl.hangup_cause or "NORMAL_CLEARING"

    def add_turn(self, who: str, text: str, **extra: Any) -> dict[str, Any]:
        return self.record.add_turn(who, text, **extra)

    def count(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def push_turn(self, turn: Turn) -> None:
        self.pending.append(turn)

    def restart_silence(self) -> None:
        self.audio_ended_at = self.clock.monotonic()
        self.guard.silences = 0  # silences before a wait were not the caller's (a hold has no caller)

    def subscribe(self, events: Sequence[str]) -> None:
        new = [name for name in events if name not in self.subscribed]
        if new:
            self.esl.command(commands.event_plain(new))
            self.subscribed.update(new)

    def unicast(self, local_port: int, remote_port: int) -> None:
        self.esl.unicast(commands.unicast(local_port, remote_port))

    def held(self, seconds: float) -> float:
        self.hold_s += seconds
        return self.hold_s

    def ended_by_agent(self) -> None:
        self.record.hangup_by = "agent"

    def hand_off(self, command: str, agent_id: str, detail: dict[str, Any]) -> None:
        """Store everything the next agent's session reads at connect, then `api uuid_transfer ...`, then let go.

        The snapshot (with `handoff_to`) goes before uuid_transfer, the action's result right after FreeSWITCH's
        `+OK`, then `release()` closes our end. No `exit`: an old session that ends after the new one has parked
        ends the new `socket` app, and the dialplan hangs the caller up (capture 18).
        """
        entry, store = self.running, self.services.store
        if entry is None:
            raise RuntimeError("hand_off outside an action run")
        entry.result, entry.ended_at = "handed_off", self.clock.wall()
        entry.detail.update(detail)
        store.update_call(self.uuid, handoff_to=agent_id, **self.record.snapshot())
        store.flush()  # in Redis now, not written behind: the next session may be another serve's
        with self.esl.gate.leaving():
            try:
                self.api(command)
            except CommandError:
                entry.result = "running"  # the conversation finishes it with the take-back's result
                store.update_call(self.uuid, handoff_to="")
                raise
            self.record.finish_action(entry, "handed_off", **detail)
            store.flush()
            self.handed_off = True
            self.esl.release()
