"""One simulated call: FreeSWITCH's session thread for the caller's channel.

A single executor greenlet plays the session: it parks, runs queued `sendmsg` commands one at a time in
order (executes and hangups), performs transfers, and runs the hang-up sequence. Connections, the API,
the caller's script and the watchdog only queue work or interrupt the running app, so every event leaves
in the order FreeSWITCH fires it (captures 04, 06, 07, 12).
"""
from __future__ import annotations

import uuid as uuidlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

import gevent
from gevent.event import Event

from controller.clock import Clock
from controller.log import call_logger
from fssim import apps, wire
from fssim.asr import Recogniser
from fssim.causes import CAUSES
from fssim.channel import CALL_STATE_NUMBERS, Switch, caller_channel
from fssim.connection import CONNECT_TIMEOUT_S, Connection
from fssim.recording import CallRecording
from fssim.scenario import Scenario
from fssim.script import CallerScript

MEDIA_APPS = frozenset({"speak", "playback"})
BREAKABLE_APPS = frozenset({"speak", "playback", "sleep"})


@dataclass
class RunningApp:
    name: str
    arg: str
    app_uuid: str
    broken: Event = field(default_factory=Event)


class SimCall:
    """Everything about one call: channel, connections, queue, caller script, recording."""

    def __init__(self, scenario: Scenario, controller_addr: tuple[str, int], clock: Clock, switch: Switch,
                 socket_data: str | None = None) -> None:
        self.scenario = scenario
        self.addr = controller_addr
        # the `socket` app's argument: the dialplan's `host:port async full`, or what an originate's `&socket(...)`
        # left of it (capture 13: unquoted, only `host:port`, so the session is static and single-channel)
        self.socket_data = socket_data or f"{controller_addr[0]}:{controller_addr[1]} async full"
        self.clock = clock
        self.switch = switch
        self.uuid = scenario.uuid or str(uuidlib.uuid4())
        self.rec = CallRecording(scenario.name, self.uuid)
        self.log = call_logger(self.uuid, "switchboard.simulator", scenario=scenario.name)
        self._m0 = clock.monotonic()
        self._wall0 = clock.wall()
        self.channel = caller_channel(switch, scenario, self.uuid, controller_addr, self.now_us, self.socket_data)
        self.connections: list[Connection] = []
        self.controlling: Connection | None = None
        self.socket_app: str | None = None
        self.current: RunningApp | None = None
        self.divert = False
        self.asr = Recogniser(self)
        self.avmd_running = False
        self.held = False
        self.peers: dict[str, dict[str, str]] = {}
        self.peer_kills: dict[str, str] = {}
        self.started_apps: Counter[str] = Counter()
        self.answered = Event()
        if scenario.answered:
            self.answered.set()
        self.finished = Event()
        self._items: deque = deque()
        self._urgent: deque = deque()
        self._wake = Event()
        self._waiters: list[tuple[Callable[[], bool], Event]] = []
        self._malformed = scenario.malformed
        self._greenlets: list[gevent.Greenlet] = []
        self._torn_down = False

    # -- time ---------------------------------------------------------------------------------------
    def now(self) -> float:
        """Call seconds since the call started (unscaled)."""
        return (self.clock.monotonic() - self._m0) / self.clock.time_scale

    def now_us(self) -> int:
        return int((self._wall0 + self.now()) * 1e6)

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    def tick(self) -> None:
        """FreeSWITCH's 20 ms frame: the park loop picks queued commands up once per frame."""
        self.clock.sleep(0.02)

    def note(self, text: str) -> None:
        self.rec.note(self.now(), text)
        self.log.info(text)

    # -- lifecycle ----------------------------------------------------------------------------------
    def run(self) -> CallRecording:
        """Dial the controller, play the call to its end (bounded by max_duration_s), return the recording."""
        self._greenlets.append(gevent.spawn(self._executor))
        if self.open_connection(self.socket_data) is None:
            self.hangup("NORMAL_CLEARING", "dialplan")
        self._greenlets.append(gevent.spawn(CallerScript(self).run))
        self._greenlets.append(gevent.spawn(self._watchdog))
        bound = self.clock.scaled(self.scenario.max_duration_s + CONNECT_TIMEOUT_S + 60.0)
        if not self.finished.wait(bound):
            self.note("the call did not finish in time: closing every connection")
            self.rec.error = self.rec.error or "did not finish"
        for conn in list(self.connections):
            conn.close(send_notice=False)
        gevent.killall(self._greenlets, block=True, timeout=1.0)
        return self.rec

    def open_connection(self, socket_data: str) -> Connection | None:
        """What the `socket` app does with its argument `socket_data`: connect to the controller, in the modes
        its words ask for (`async`, `full`); the controller must send `connect`."""
        conn = Connection(self, f"conn{len(self.connections) + 1}", socket_data.split(" ")[1:])
        error = conn.open(self.addr)
        if error:
            self.note(f"socket app could not connect to {self.addr[0]}:{self.addr[1]}: {error}")
            self.rec.error = f"connect failed: {error}"
            return None
        self.connections.append(conn)
        self.rec.connections.append(conn.id)
        self.controlling = conn
        self.socket_app = str(uuidlib.uuid4())
        self._greenlets.append(gevent.spawn(self._connect_deadline, conn))
        return conn

    def _connect_deadline(self, conn: Connection) -> None:
        self.sleep(CONNECT_TIMEOUT_S)
        if not conn.connected and not conn.closed:
            self.note(f"{conn.id}: no `connect` within {CONNECT_TIMEOUT_S:.0f} s: socket app gives up")
            conn.close()
            self.connection_closed(conn)

    @property
    def parked_by(self) -> Connection | None:
        """The session whose `socket` app is parked on the channel (CF_CONTROLLED): an async one, once connected."""
        conn = self.controlling
        if self.socket_app is None or conn is None or not conn.connected or not conn.async_mode:
            return None
        return conn

    def parked(self, conn: Connection) -> None:
        """The socket app parks (CHANNEL_PARK) once the session is connected; FreeSWITCH fires it while the
        controller subscribes, so the simulator fires it a frame after the first command that follows `connect`
        and a controller that starts with `myevents` always sees it (captures 07, 09, 12)."""
        def park() -> None:
            self.tick()
            if self.channel.up and conn is self.parked_by:
                self.fire("CHANNEL_PARK")
        self._greenlets.append(gevent.spawn(park))

    def connection_closed(self, conn: Connection) -> None:
        """A session ended (`exit`, or its socket closed): mod_event_socket clears the channel's CF_CONTROLLED.

        That ends this session's own `socket` app, and equally the one another session has parked on the channel
        since a uuid_transfer (capture 18: the old session's `exit` cut the next agent off). A socket app whose
        session has not sent `connect` yet has not parked, so it is not hurt: it parks (and sets the flag) later.
        """
        if self.channel.up and self.socket_app is not None and (conn is self.controlling or self.parked_by):
            self.push_urgent(("socket_end", self.socket_app))
        self._check_finished()
        self.notify()

    def _check_finished(self) -> None:
        if self._torn_down and all(conn.closed for conn in self.connections):
            self.finished.set()

    def _watchdog(self) -> None:
        self.sleep(self.scenario.max_duration_s)
        if self.channel.up:
            self.note(f"max_duration_s={self.scenario.max_duration_s:g} reached: the simulator hangs up")
            self.hangup("NORMAL_CLEARING", "simulator")
        self.sleep(30.0)
        for conn in list(self.connections):
            if not conn.closed:
                self.note(f"{conn.id} still open 30 s after max_duration_s: closing it")
                conn.close()
        self._check_finished()

    # -- events -------------------------------------------------------------------------------------
    def fire(self, name: str, before=(), after=(), variables: bool | None = None, subclass: str | None = None,
             body: str | None = None, headers: list | None = None) -> None:
        """Serialise one event and hand it to every connection subscribed to it."""
        if headers is None:
            headers = self.channel.event(name, before, after, variables, subclass)
        frame = wire.event_plain(headers, body)
        if self._malformed and self._malformed.event == name:
            frame = wire.corrupt(frame, self._malformed.fault)
            self.note(f"sent a malformed {name} frame ({self._malformed.fault})")
            self._malformed = None
        values = dict(headers)
        for conn in list(self.connections):
            if conn.wants(name, subclass, values):
                conn.send_event(frame)
        for sink in list(self.switch.sinks):
            sink(name, values, frame)

    def fire_callstate(self, new: str) -> None:
        old, self.channel.call_state = self.channel.call_state, new
        if old != new:
            self.fire("CHANNEL_CALLSTATE", before=[("Original-Channel-Call-State", old),
                                                    ("Channel-Call-State-Number", str(CALL_STATE_NUMBERS[new]))])

    def socket_app_headers(self) -> list:
        """The socket app's completion; its response is whatever the last app left (capture 12: FILE PLAYED)."""
        data = self.controlling.socket_data if self.controlling else self.socket_data
        return [("Application", "socket"), ("Application-Data", data),
                ("Application-Response", self.channel.get_var("current_application_response") or "_none_"),
                ("Application-UUID", self.socket_app or "")]

    # -- waiting helpers for the script -------------------------------------------------------------
    def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Block until `predicate()` holds (re-checked on every app start/end and hang-up)."""
        if predicate():
            return True
        event = Event()
        self._waiters.append((predicate, event))
        try:
            return event.wait(None if timeout_s is None else self.clock.scaled(timeout_s)) or predicate()
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not event]

    def notify(self) -> None:
        """Wake the `wait_until`s whose condition now holds (apps, hang-ups, sessions connecting or closing)."""
        for predicate, event in list(self._waiters):
            if predicate():
                event.set()

    @property
    def agent_talking(self) -> bool:
        return self.current is not None and self.current.name in MEDIA_APPS

    # -- the session thread --------------------------------------------------------------------------
    def push(self, item: tuple) -> None:
        self._items.append(item)
        self._wake.set()

    def push_urgent(self, item: tuple) -> None:
        self._urgent.append(item)
        self._wake.set()

    def flush(self) -> list[str]:
        """`uuid_break all`: queued sendmsg commands are dropped and never complete (capture 11)."""
        dropped = [item[1].app or item[1].header("call-command") or "?" for item in self._items]
        self._items.clear()
        return dropped

    def break_app(self) -> None:
        if self.current is not None and self.current.name in BREAKABLE_APPS:
            self.current.broken.set()

    def _next(self) -> tuple | None:
        while True:
            if self._urgent:
                return self._urgent.popleft()
            if not self.channel.up:
                return None
            if self._items:
                return self._items.popleft()
            self._wake.clear()
            self._wake.wait()

    def _executor(self) -> None:
        while (item := self._next()) is not None:
            kind = item[0]
            if kind == "execute":
                self._execute(item[1])
            elif kind == "hangup":
                self.tick()
                self.hangup(item[1].header("hangup-cause") or "NORMAL_CLEARING", "controller")
            elif kind == "transfer":
                apps.do_transfer(self, *item[1:])
            elif kind == "socket_end":
                self._socket_end(item[1])
            if kind in ("execute", "hangup") and item[2] is not None:
                item[2].set()  # a static session's sendmsg replies once its command has run
            self.asr.deliver_pending()
            self.notify()
        self._teardown()

    def _execute(self, command: wire.Command) -> None:
        app = (command.app or "").strip()
        arg = command.app_arg or ""
        app_uuid = command.header("Event-UUID") or str(uuidlib.uuid4())
        if (command.header("event-lock") or "").lower() not in ("true", "yes", "on", "1"):
            self.note(f"execute {app} without event-lock: FreeSWITCH may run it inside a running playback")
        self.tick()
        if not self.channel.up:
            return
        spec = apps.APPS.get(app)
        if spec is None or spec.module not in self.scenario.modules:
            where = f"module {spec.module} is not loaded" if spec else "no such application"
            self.note(f"execute {app}: {where}: FreeSWITCH hangs up with DESTINATION_OUT_OF_ORDER (capture 06)")
            self.hangup("DESTINATION_OUT_OF_ORDER", "simulator")
            return
        self.run_app(app, arg, app_uuid, spec.handler)

    def run_app(self, app: str, arg: str, app_uuid: str, handler, by_controller: bool = True) -> None:
        """switch_core_session_exec: variables, CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE.
        Apps the dialplan runs (after a transfer) are not counted as the controller's."""
        ch = self.channel
        ch.set_var("current_application_response", None)
        ch.set_var("current_loop", "1")
        ch.set_var("total_loops", "1")
        ch.set_var("current_application", app)
        ch.set_var("current_application_data", arg)
        described = [("Application", app)] + ([("Application-Data", arg)] if arg else [])
        if by_controller:
            self.rec.executed_apps.append((app, arg or None))
            self.started_apps[app] += 1
        self.fire("CHANNEL_EXECUTE", after=[*described, ("Application-UUID", app_uuid)])
        ch.set_var("current_application", app)
        self.current = RunningApp(app, arg, app_uuid)
        self.notify()
        try:
            response = handler(self, arg) or "_none_"
        finally:
            self.current = None
        if response != "_none_":
            ch.set_var("current_application_response", response)
        self.fire("CHANNEL_EXECUTE_COMPLETE",
                  after=[*described, ("Application-Response", response), ("Application-UUID", app_uuid)])
        self.notify()

    def wait_app(self, seconds: float) -> bool:
        """Run the current app for `seconds`; False when uuid_break or a hang-up cut it short."""
        running = self.current
        if running is None or not self.channel.up:
            return False
        return not running.broken.wait(self.clock.scaled(seconds))

    def answer(self) -> None:
        """switch_channel_answer: CHANNEL_ANSWER (still RINGING), then the call state turns ACTIVE."""
        ch = self.channel
        if ch.answer_state == "answered" or not ch.up:
            return
        ch.set_var("endpoint_disposition", "ANSWER")
        ch.answer_state = "answered"
        ch.mark("answered")
        self.fire("CHANNEL_ANSWER")
        self.fire_callstate("ACTIVE")
        self.answered.set()
        self.notify()

    def hangup(self, cause: str, by: str) -> None:
        """switch_channel_hangup: CHANNEL_HANGUP now; the session thread finishes the sequence."""
        ch = self.channel
        if not ch.up:
            return
        if cause not in CAUSES:
            self.note(f"unknown hangup cause {cause!r}: using NORMAL_CLEARING")
            cause = "NORMAL_CLEARING"
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.state_number = 10
        self.rec.hangup_cause, self.rec.hangup_by = cause, by
        self.note(f"hangup {cause} by {by}")
        self.fire("CHANNEL_HANGUP")
        for conn in list(self.connections):  # a static session runs in the channel's thread: it ends right here
            if not conn.async_mode and not conn.closed and conn.linger is None:
                conn.close()
                self.connection_closed(conn)
        if self.current is not None:
            self.current.broken.set()
        self._wake.set()
        self.notify()

    def _socket_end(self, socket_app: str) -> None:
        """A session's end finished the socket app `socket_app`: it returns and the dialplan runs its next action,
        `hangup` (captures 06, 18). Checked when the session thread gets to it: a uuid_transfer that came first has
        already ended that app and started the next agent's, which an old session's end before its park spares."""
        if socket_app != self.socket_app or not self.channel.up:
            return
        conn = self.controlling
        self.note(f"the socket app of {conn.id if conn else '?'} ended while the call was up: the dialplan hangs up")
        if conn is None or conn.async_mode:
            self.fire("CHANNEL_UNPARK")
        self.fire("CHANNEL_EXECUTE_COMPLETE", after=self.socket_app_headers())
        self.socket_app = None
        self.run_app("hangup", "", str(uuidlib.uuid4()), lambda call, arg: call.hangup("NORMAL_CLEARING", "dialplan"),
                     by_controller=False)

    def _teardown(self) -> None:
        ch = self.channel
        if self.socket_app is not None and self.controlling is not None:
            if self.controlling.async_mode:
                self.fire("CHANNEL_UNPARK")
            self.fire("CHANNEL_EXECUTE_COMPLETE", after=self.socket_app_headers())
            self.socket_app = None
        ch.state = "CS_HANGUP"
        self.fire("CHANNEL_STATE")
        self.fire_callstate("HANGUP")
        ch.mark("hangup")
        ch.state, ch.state_number = "CS_REPORTING", 11
        self.fire("CHANNEL_STATE")
        apps.set_cdr_variables(self)
        self.fire("CHANNEL_HANGUP_COMPLETE", before=[("Hangup-Cause", ch.hangup_cause or "NORMAL_CLEARING")])
        self._torn_down = True
        for conn in list(self.connections):
            conn.channel_down()
        self.notify()
        self._check_finished()
