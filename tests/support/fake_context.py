"""A scripted `ActionContext` for testing one during-call action at a time, without a socket or a simulator.

One fake per seam (like livekit agents' fake session, greenswitch's fake ESL server): the action runs against
the narrow interface it sees in production (controller/actions/context.py), and the fake keeps the
conversation's semantics (controller/call/conversation.py) where an action could tell the difference:

- apps go to a "channel" greenlet that runs them in order, like FreeSWITCH runs queued sendmsg executes:
  CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE; the real `Execution` objects are resolved from those
  frames on Application-UUID, as esl/session.py resolves them, and every frame reaches the conversation's
  inbox (`next_event`) and every `listen` queue;
- a `bridge` rings as `Bridge` says, then completes with `variable_originate_disposition`; `uuid_kill` of its
  leg ends it with the kill's cause (a FreeSWITCH that never reports, and the transfer guard);
- api replies are scripted by command prefix; a reply starting with -ERR raises CommandError as
  `EslSession.api` does; after a hand-off FreeSWITCH accepted, every command raises CallHangup (socket released);
- frames come from tests/support/event_frames.py: built as FreeSWITCH writes them, parsed by the product's FrameReader.

What the action did is kept in plain lists (`said`, `apps`, `apis`, `transcript`, `pushed`, `hand_offs`) and a
readable `timeline`. Every wait is bounded: the action's by its own timeouts (as in production), the channel's
by the hang-up, a kill, `close()` or `STUCK_S`.
"""
from __future__ import annotations

import logging
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import gevent
import gevent.event
import gevent.queue

from controller.actions.context import LoadedSource, Services
from controller.brain.base import Turn
from controller.call.record import iso
from controller.clock import Clock
from controller.config.agent import AgentConfig
from controller.config.schema import Config
from controller.esl import commands
from controller.esl.commands import App
from controller.esl.frames import HANGUP_EVENTS, CallHangup, CommandError, ExecuteFlushed, Frame
from controller.esl.execution import Execution, follow_executions
from controller.esl.speech import build_speech
from controller.log import call_logger
from controller.state.store import Store
from tests.support.event_frames import FAKE_UUID, channel_event, event_frame, speech_event

STUCK_S = 3600.0  # call seconds a bridge that never reports rings before the channel gives up on it
OK = "+OK\n"
NO_SUCH_CHANNEL = "-ERR No such channel!\n"
_ORIGINATION_UUID = re.compile(r"origination_uuid=([0-9a-fA-F-]{36})")

Scripted = Union[Frame, tuple[float, Frame]]


# ---------------------------------------------------------------- frames as FreeSWITCH writes them
@dataclass(frozen=True)
class Bridge:
    """How the next `bridge` ends. `disposition` travels as `variable_originate_disposition` on its completion.

    `answered` (default: disposition SUCCESS) adds CHANNEL_BRIDGE after `ring_s` and CHANNEL_UNBRIDGE after
    `talk_s`; `reports=False` rings until `uuid_kill <leg> <CAUSE>`, which completes it with that cause.
    Times are call seconds (the clock's time_scale applies)."""

    disposition: str = "SUCCESS"
    ring_s: float = 1.0
    answered: Optional[bool] = None
    talk_s: float = 1.0
    reports: bool = True

    @property
    def answers(self) -> bool:
        return self.disposition == "SUCCESS" if self.answered is None else self.answered


@dataclass
class HandOff:
    """One `hand_off` call; `accepted` once FreeSWITCH replied +OK to its uuid_transfer."""

    command: str
    agent_id: str
    detail: dict[str, Any]
    accepted: bool = False


def services_for(config: Config, clock: Clock, sources: Optional[Mapping[str, LoadedSource]] = None) -> Services:
    """The Services of one configuration version with a Store that is never started: no action reaches Redis
    (a hand-off goes through the context), and an unstarted Store skips writes instead of connecting."""
    return Services(config, Store(config.redis, config.server.state_dir, clock), clock, sources or {})


# ---------------------------------------------------------------- the fake
class FakeContext:
    """Implements every member of ActionContext; see the module docstring for what is scripted and recorded.

    `events`: Frames already in the inbox when the action starts, or `(at, frame)` delivered at call second `at`
    (to the inbox and every listen queue). `api_replies`: reply body by command prefix (longest wins; +OK
    otherwise). `modules`: what `has_module` finds (default: dptools, commands, sofia and the agent's TTS/ASR).
    `asr`: force `asr_on` (default: derived as the conversation does). `refuse_hand_off`: the -ERR reply to
    uuid_transfer. `speak_s`: call seconds each `speak` plays. `hangup_at`: call second the caller hangs up.
    """

    def __init__(self, agent: AgentConfig, services: Services, *, events: Sequence[Scripted] = (),
                 api_replies: Optional[Mapping[str, str]] = None, bridge: Bridge = Bridge(),
                 modules: Optional[Iterable[str]] = None, asr: Optional[bool] = None,
                 refuse_hand_off: str = "", speak_s: float = 0.0, hangup_at: Optional[float] = None,
                 variables: Optional[dict[str, Any]] = None, uuid: str = FAKE_UUID) -> None:
        self.uuid = uuid
        self.agent = agent
        self.language = agent.language
        self.services = services
        self.clock = services.clock
        self.log: logging.LoggerAdapter = call_logger(uuid, "switchboard.call")
        self.variables: dict[str, Any] = variables if variables is not None else {}
        speech = agent.speech
        self.modules = set(modules) if modules is not None else \
            {"mod_dptools", "mod_commands", "mod_sofia", speech.tts.module} | \
            ({speech.asr.module} if speech.asr and speech.asr.module else set())
        configured = bool(speech.asr and speech.asr.module and speech.asr.engine and self.has_module(speech.asr.module))
        self.asr_on = configured if asr is None else asr  # as Conversation derives it, unless the test says
        self.tts_on = self.has_module(speech.tts.module)
        self.deadline = self.clock.monotonic() + self.clock.scaled(agent.limits.max_call_s)
        self.bridge = bridge
        self.speak_s = speak_s
        self.api_replies = dict(api_replies or {})
        if refuse_hand_off:
            self.api_replies["uuid_transfer"] = refuse_hand_off
        # what the action did
        self.said: list[str] = []
        self.apps: list[App] = []
        self.apis: list[str] = []
        self.transcript: list[dict[str, Any]] = []
        self.pushed: list[Turn] = []
        self.counts: dict[str, int] = {}
        self.hand_offs: list[HandOff] = []
        self.silence_restarts = 0
        self.subscribed: list[str] = []  # `event plain` names, each once
        self.unicasts: list[tuple[int, int]] = []  # (local_port, remote_port) of every unicast asked
        self.hold_s = 0.0
        self.builtin_hangups: list[tuple[str, str]] = []  # (reason, goodbye)
        self.quiet_waits = 0
        self.agent_ended = False
        self.timeline: list[str] = []  # `sent speak ...`, `got CHANNEL_EXECUTE bridge`, `api uuid_kill ...`
        self.frames: list[Frame] = []  # every frame delivered, in order
        # the channel
        self.inbox: gevent.queue.Queue = gevent.queue.Queue()
        self.listeners: list[gevent.queue.Queue] = []
        self.talking: list[Execution] = []
        self.released = False
        self.cause: Optional[str] = None
        self.hungup = gevent.event.Event()
        self._executions: dict[str, Execution] = {}
        self._queued: gevent.queue.Queue = gevent.queue.Queue()
        self._kill: Optional[tuple[str, gevent.event.AsyncResult]] = None
        self._greenlets: list[gevent.Greenlet] = [gevent.spawn(self._channel)]
        for item in events:
            at, frame = item if isinstance(item, tuple) else (None, item)
            if at is None:
                self._dispatch(frame)
            else:
                self._greenlets.append(gevent.spawn_later(self.clock.scaled(at), self._dispatch, frame))
        if hangup_at is not None:
            self._greenlets.append(gevent.spawn_later(self.clock.scaled(hangup_at), self.hang_up))

    def __enter__(self) -> "FakeContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the channel and the scheduled events (a test's teardown)."""
        gevent.killall(self._greenlets, block=True, timeout=1.0)

    # ---------------------------------------------------------------- what tests read
    def app_names(self) -> list[str]:
        return [app.name for app in self.apps]

    def sent(self, name: str) -> list[Optional[str]]:
        """The arguments of every `name` app the action queued, in order."""
        return [app.arg for app in self.apps if app.name == name]

    def hang_up(self, cause: str = "NORMAL_CLEARING") -> None:
        """The caller hangs up: CHANNEL_HANGUP reaches every queue and every pending execution fails."""
        self._dispatch(channel_event("CHANNEL_HANGUP", self.uuid, Hangup_Cause=cause))

    # ---------------------------------------------------------------- ActionContext
    def has_module(self, module: str) -> bool:
        return not module or module in self.modules  # Features.has: no module needed is always there

    def say(self, text: str, then: Sequence[App] = ()) -> list[Execution]:
        if not text or not text.strip():
            return self._queue(list(then)) if then else []
        tts = self.agent.speech.tts
        spoken = build_speech(text, tts.engine, tts.voice)
        speaks = [commands.speak(part) for part in spoken.parts] if self.tts_on else []
        executions = self._queue(speaks + list(then)) if speaks or then else []
        self.talking.extend(executions[:len(speaks)])
        self.said.append(spoken.text)
        self.add_turn("agent", spoken.text)
        return executions[len(speaks):]

    def wait_quiet(self, limit_s: float = 120.0) -> None:
        self.quiet_waits += 1
        self.timeline.append("wait_quiet")
        for execution in list(self.talking):
            try:
                execution.wait(self.clock.scaled(limit_s) + 5.0)
            except ExecuteFlushed:
                pass
        self.talking = [e for e in self.talking if not e.done]

    def execute(self, app: App, timeout_s: Optional[float] = None) -> Frame:
        timeout = self.services.execute_timeout if timeout_s is None else timeout_s
        return self._queue([app])[0].wait(timeout)

    def start_execute(self, app: App) -> Execution:
        return self._queue([app])[0]

    def api(self, command: str) -> str:
        if "\n" in command or "\r" in command:
            raise ValueError("line break in api command")
        self._check_connected()
        self.apis.append(command)
        self.timeline.append(f"api {command}")
        body = self._reply(command)
        if body.startswith("-ERR"):
            raise CommandError(f"api {command.split(' ', 1)[0]} failed: {body.strip()}")
        return body

    def listen(self) -> gevent.queue.Queue:
        queue: gevent.queue.Queue = gevent.queue.Queue()
        self.listeners.append(queue)
        if self.released:
            queue.put(None)
        return queue

    def unlisten(self, queue: gevent.queue.Queue) -> None:
        if queue in self.listeners:
            self.listeners.remove(queue)

    def next_event(self, timeout_s: Optional[float]) -> Optional[Frame]:
        try:
            frame = self.inbox.get(timeout=timeout_s)
        except gevent.queue.Empty:
            frame = None
        else:
            if frame is None:
                raise CallHangup(self.cause or "SOCKET_CLOSED")
        if self.hungup.is_set():
            raise CallHangup(self.cause or "NORMAL_CLEARING")
        return frame

    def wait_hangup(self, timeout_s: float) -> bool:
        return self.hungup.wait(timeout=timeout_s)

    def hangup_cause(self) -> str:
        return self.cause or "NORMAL_CLEARING"

    def resume_asr(self) -> None:
        if self.asr_on:
            self.execute(commands.detect_speech_control("resume"))

    def add_turn(self, who: str, text: str, **extra: Any) -> dict[str, Any]:
        turn = {"who": who, "text": text, "at": iso(self.clock.wall()), **extra}
        self.transcript.append(turn)
        return turn

    def count(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def push_turn(self, turn: Turn) -> None:
        self.pushed.append(turn)

    def restart_silence(self) -> None:
        self.silence_restarts += 1

    def subscribe(self, events: Sequence[str]) -> None:
        self.subscribed += [name for name in events if name not in self.subscribed]

    def unicast(self, local_port: int, remote_port: int) -> None:
        self._check_connected()
        self.unicasts.append((local_port, remote_port))
        self.timeline.append(f"unicast {local_port}->{remote_port}")

    def held(self, seconds: float) -> float:
        self.hold_s += seconds
        return self.hold_s

    def builtin_hangup(self, reason: str, goodbye: str) -> None:
        self.builtin_hangups.append((reason, goodbye))
        self.say(goodbye)
        self.hang_up()

    def ended_by_agent(self) -> None:
        self.agent_ended = True

    def hand_off(self, command: str, agent_id: str, detail: dict[str, Any]) -> None:
        """As the conversation's: `api <command>` (CommandError on -ERR, the call stays), then let go."""
        handoff = HandOff(command, agent_id, dict(detail))
        self.hand_offs.append(handoff)
        self.api(command)
        handoff.accepted = True
        self.released = True
        self.timeline.append("released")
        self._connection_lost("SOCKET_CLOSED")  # FreeSWITCH closes its end once the session let go

    # ---------------------------------------------------------------- the session side
    def _check_connected(self) -> None:
        if self.released:
            raise CallHangup("SOCKET_CLOSED")

    def _queue(self, apps: list[App]) -> list[Execution]:
        """start_executes: refused once hung up or released; otherwise queued on the channel, in order."""
        if self.hungup.is_set():
            raise CallHangup(self.cause or "NORMAL_CLEARING")
        self._check_connected()
        executions = []
        for app in apps:
            execution = Execution(app.name, app.arg, str(uuidlib.uuid4()))
            self._executions[execution.app_uuid] = execution
            self.apps.append(App(app.name, app.arg))
            self.timeline.append(f"sent {app.name} {app.arg or ''}".rstrip())
            executions.append(execution)
        for execution in executions:
            self._queued.put(execution)
        return executions

    def _reply(self, command: str) -> str:
        word, _, rest = command.partition(" ")
        if word == "uuid_kill":
            leg, _, cause = rest.partition(" ")
            if self._kill is not None and self._kill[0] == leg and not self._kill[1].ready():
                self._kill[1].set(cause or "NORMAL_CLEARING")
                return self._scripted(command, OK)
            return self._scripted(command, NO_SUCH_CHANNEL)
        return self._scripted(command, OK)

    def _scripted(self, command: str, default: str) -> str:
        matches = [prefix for prefix in self.api_replies if command.startswith(prefix)]
        return self.api_replies[max(matches, key=len)] if matches else default

    def _dispatch(self, frame: Frame) -> None:
        """EslSession._dispatch: executions resolved on Application-UUID, hang-up marked, then every queue."""
        name = frame.name
        mine = frame.get("Unique-ID") in ("", None, self.uuid)
        if not follow_executions(self._executions, frame) and name in HANGUP_EVENTS and mine:
            self._mark_hangup(frame.get("Hangup-Cause") or "NORMAL_CLEARING")
        detail = frame.get("Application") or frame.get("Speech-Type") or frame.get("Hangup-Cause") or ""
        self.timeline.append(f"got {name} {detail}".rstrip())
        self.frames.append(frame)
        self.inbox.put(frame)
        for queue in list(self.listeners):
            queue.put(frame)

    def _mark_hangup(self, cause: str) -> None:
        if self.hungup.is_set():
            return
        self.cause = cause
        self.hungup.set()
        for execution in list(self._executions.values()):
            if not execution.done:
                execution.result.set_exception(CallHangup(cause))
        self._executions.clear()

    def _connection_lost(self, reason: str) -> None:
        self._mark_hangup(self.cause or reason)
        self.inbox.put(None)
        for queue in list(self.listeners):
            queue.put(None)

    def _channel(self) -> None:
        """FreeSWITCH's session thread: queued apps run one after the other until the caller hangs up."""
        while not self.hungup.is_set():
            execution = self._queued.get()
            if execution.done or self.hungup.is_set():
                continue
            self._run(execution)

    def _run(self, execution: Execution) -> None:
        described = [("Application", execution.app)] + ([("Application-Data", execution.arg)] if execution.arg else [])
        self._dispatch(event_frame("CHANNEL_EXECUTE", [*described, ("Application-UUID", execution.app_uuid)],
                                   uuid=self.uuid))
        extra: list[tuple[str, str]] = []
        if execution.app == "bridge":
            extra = self._ring(execution.arg or "")
        elif execution.app == "speak" and self.speak_s:
            self.hungup.wait(self.clock.scaled(self.speak_s))
        if self.hungup.is_set():
            return
        self._dispatch(event_frame("CHANNEL_EXECUTE_COMPLETE", [*described, ("Application-Response", "_none_"),
                                                                ("Application-UUID", execution.app_uuid), *extra],
                                   uuid=self.uuid))
        if execution.app == "detect_speech" and execution.arg == "stop":
            self._dispatch(speech_event("closed", self.uuid))  # queued while the app ran (fssim/asr.py)

    def _ring(self, arg: str) -> list[tuple[str, str]]:
        """The bridge app as scripted: ring, maybe answer and talk, then the disposition (or a kill's cause)."""
        script = self.bridge
        found = _ORIGINATION_UUID.search(arg)
        leg = found.group(1) if found else str(uuidlib.uuid4())
        killed: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._kill = (leg, killed)
        try:
            if self._hold(script.ring_s if script.reports else STUCK_S, killed):
                return [("variable_originate_disposition", killed.get())]
            if not script.reports:
                return [("variable_originate_disposition", "NONE")]
            if not script.answers:
                return [("variable_originate_disposition", script.disposition)]
            self._dispatch(channel_event("CHANNEL_BRIDGE", self.uuid, Other_Leg_Unique_ID=leg))
            self._hold(script.talk_s, killed)
            if self.hungup.is_set():
                return []
            self._dispatch(channel_event("CHANNEL_UNBRIDGE", self.uuid, Other_Leg_Unique_ID=leg))
            return [("variable_originate_disposition", "SUCCESS")]
        finally:
            self._kill = None

    def _hold(self, seconds: float, killed: gevent.event.AsyncResult) -> bool:
        """Wait `seconds` of call time, less if the caller hangs up; True when a uuid_kill of the leg came."""
        gevent.wait([killed, self.hungup], timeout=self.clock.scaled(seconds), count=1)
        return killed.ready()
