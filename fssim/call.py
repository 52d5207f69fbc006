"""One simulated call: the caller's channel, the event-socket sessions its `socket` app opens, and its end.

SimCall holds the call's state and is what every handler acts on, through fssim.ports.CallPort: the channel and
the events fired from it, the sessions (one more per transfer), answer and hang-up, and the waits the caller's
script and the apps block in. The channel's work runs in order on its session thread (session.py).
"""
from __future__ import annotations

import uuid as uuidlib
from collections import Counter
from typing import Callable, Iterable

import gevent
from gevent.event import Event

from controller.clock import Clock
from controller.log import call_logger
from fssim import wire
from fssim.asr import Recogniser
from fssim.causes import CAUSES
from fssim.channel import CALL_STATE_NUMBERS, Header, Switch, caller_channel
from fssim.connection import CONNECT_TIMEOUT_S, Connection
from fssim.ports import ConnectionPort
from fssim.recording import CallRecording
from fssim.scenario import Scenario
from fssim.script import CallerScript
from fssim.session import SessionThread
from fssim.unicast import UnicastStream, start_unicast


class SimCall:
    """Everything about one call: channel, sessions, session thread, recogniser, caller script, recording."""

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
        self.divert = False
        self.asr = Recogniser(self)
        self.avmd_running = False
        self.held = False
        self.far_audio = "silence"  # what the far end plays now (fssim.sounds.SOUNDS), streamed by unicast
        self.unicast: UnicastStream | None = None
        self.peers: dict[str, dict[str, str]] = {}
        self.peer_kills: dict[str, str] = {}
        self.started_apps: Counter[str] = Counter()
        self.answered = Event()
        if scenario.answered:
            self.answered.set()
        self.finished = Event()
        self.session = SessionThread(self)
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
        """A line in the recording's timeline (`~~`) and in the log."""
        self.rec.note(self.now(), text)
        self.log.info(text)

    def spawn(self, run: Callable[..., object], *args: object) -> None:
        """A greenlet of this call's, killed when `run()` returns."""
        self._greenlets.append(gevent.spawn(run, *args))

    # -- lifecycle ----------------------------------------------------------------------------------
    def run(self) -> CallRecording:
        """Dial the controller, play the call to its end (bounded by max_duration_s), return the recording."""
        self.spawn(self.session.run)
        if self.open_connection(self.socket_data) is None:
            self.hangup("NORMAL_CLEARING", "dialplan")
        self.spawn(CallerScript(self).run)
        self.spawn(self._watchdog)
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
        self.spawn(self._connect_deadline, conn)
        return conn

    def _connect_deadline(self, conn: Connection) -> None:
        self.sleep(CONNECT_TIMEOUT_S)
        if not conn.connected and not conn.closed:
            self.note(f"{conn.id}: no `connect` within {CONNECT_TIMEOUT_S:.0f} s: socket app gives up")
            self.rec.error = self.rec.error or f"the socket app gave up after {CONNECT_TIMEOUT_S:.0f} s"
            conn.close()
            self.connection_closed(conn)

    @property
    def parked_by(self) -> Connection | None:
        """The session whose `socket` app is parked on the channel (CF_CONTROLLED): an async one, once connected."""
        conn = self.controlling
        if self.socket_app is None or conn is None or not conn.connected or not conn.async_mode:
            return None
        return conn

    def parked(self, conn: ConnectionPort) -> None:
        """The socket app parks (CHANNEL_PARK) once the session is connected; FreeSWITCH fires it while the
        controller subscribes, so the simulator fires it a frame after the first command that follows `connect`
        and a controller that starts with `myevents` always sees it (captures 07, 09, 12)."""
        def park() -> None:
            self.tick()
            if self.channel.up and conn is self.parked_by:
                self.fire("CHANNEL_PARK")
        self.spawn(park)

    def connection_closed(self, conn: ConnectionPort) -> None:
        """A session ended (`exit`, or its socket closed): mod_event_socket clears the channel's CF_CONTROLLED.

        That ends this session's own `socket` app, and equally the one another session has parked on the channel
        since a uuid_transfer (capture 18: the old session's `exit` cut the next agent off). A socket app whose
        session has not sent `connect` yet has not parked, so it is not hurt: it parks (and sets the flag) later.
        """
        if self.channel.up and self.socket_app is not None and (conn is self.controlling or self.parked_by):
            self.session.push_urgent(("socket_end", self.socket_app))
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
    def fire(self, name: str, before: Iterable[Header] = (), after: Iterable[Header] = (),
             variables: bool | None = None, subclass: str | None = None, body: str | None = None,
             headers: list[Header] | None = None) -> None:
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
        """switch_channel_set_callstate: CHANNEL_CALLSTATE, only when the call state changes."""
        old, self.channel.call_state = self.channel.call_state, new
        if old != new:
            self.fire("CHANNEL_CALLSTATE", before=[("Original-Channel-Call-State", old),
                                                    ("Channel-Call-State-Number", str(CALL_STATE_NUMBERS[new]))])

    def end_socket_app(self, unpark: bool) -> None:
        """The socket app returns: CHANNEL_UNPARK when it had parked the channel, then its CHANNEL_EXECUTE_COMPLETE,
        whose response is whatever the last app left (capture 12: FILE PLAYED)."""
        if unpark:
            self.fire("CHANNEL_UNPARK")
        data = self.controlling.socket_data if self.controlling else self.socket_data
        self.fire("CHANNEL_EXECUTE_COMPLETE", after=[
            ("Application", "socket"), ("Application-Data", data),
            ("Application-Response", self.channel.get_var("current_application_response") or "_none_"),
            ("Application-UUID", self.socket_app or "")])
        self.socket_app = None

    # -- waiting, for the script and the apps ---------------------------------------------------------
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

    # -- answer and hang-up -------------------------------------------------------------------------
    def start_unicast(self, command: wire.Command) -> None:
        self.stop_unicast()
        self.unicast = start_unicast(self, command)
        self.notify()  # a script may wait for it (`wait_for: {unicast: N}`)

    def stop_unicast(self) -> None:
        """An app runs (or the channel is gone): the stream ends for good (capture 15)."""
        if self.unicast is not None:
            self.unicast.stop()
            self.rec.unicast_packets.append(self.unicast.sent)
            self.unicast = None

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
        self.session.interrupt()
        self.session.wake()
        self.notify()

    def channel_gone(self) -> None:
        """After CHANNEL_HANGUP_COMPLETE: every session lingers or says goodbye; the call is finished once all
        of them are closed."""
        self._torn_down = True
        self.stop_unicast()
        for conn in list(self.connections):
            conn.channel_down()
        self.notify()
        self._check_finished()
