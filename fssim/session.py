"""The caller channel's session thread: FreeSWITCH runs all of a channel's work on one thread, in order.

A single greenlet plays it: it parks, runs queued `sendmsg` commands one at a time in order (executes and
hangups), performs transfers, ends the socket app, and runs the hang-up sequence. Sessions, the api, the
caller's script and the watchdog only queue work or interrupt the running app, so every event leaves in the
order FreeSWITCH fires it (captures 04, 06, 07, 12).
"""
from __future__ import annotations

import uuid as uuidlib
from collections import deque
from dataclasses import dataclass, field

from gevent.event import Event

from fssim import wire
from fssim.apps import APPS
from fssim.hangup import hang_up_states
from fssim.ports import AppHandler, CallPort, SessionItem
from fssim.transfer import transfer

MEDIA_APPS = frozenset({"speak", "playback"})
BREAKABLE_APPS = frozenset({"speak", "playback", "sleep"})


@dataclass
class RunningApp:
    """The app the thread is in; `broken` is set when uuid_break, a transfer or a hang-up cuts it short."""

    name: str
    broken: Event = field(default_factory=Event)


class SessionThread:
    """The queue of work for the channel, and the loop that runs it until the channel is down."""

    def __init__(self, call: CallPort) -> None:
        self.call = call
        self.current: RunningApp | None = None
        self._items: deque[SessionItem] = deque()
        self._urgent: deque[SessionItem] = deque()
        self._wake = Event()

    @property
    def app(self) -> str | None:
        """The app running now; None while the channel is parked."""
        return None if self.current is None else self.current.name

    @property
    def agent_talking(self) -> bool:
        return self.current is not None and self.current.name in MEDIA_APPS

    @property
    def idle(self) -> bool:
        """No app running and no command waiting: the controller has gone quiet."""
        return self.current is None and not self._items

    def push(self, item: SessionItem) -> None:
        self._items.append(item)
        self._wake.set()

    def push_urgent(self, item: SessionItem) -> None:
        """Work that goes before queued commands: a transfer, the end of the socket app."""
        self._urgent.append(item)
        self._wake.set()

    def flush(self) -> list[str]:
        """`uuid_break all`: queued sendmsg commands are dropped and never complete (capture 11)."""
        dropped = [item[1].app or item[1].header("call-command") or "?" for item in self._items]
        self._items.clear()
        return dropped

    def break_app(self) -> None:
        """`uuid_break`: only media and sleep return early; other apps run on."""
        if self.current is not None and self.current.name in BREAKABLE_APPS:
            self.current.broken.set()

    def interrupt(self) -> None:
        """Cut short whatever app runs (a uuid_transfer, a uuid_kill of the bridged leg, a hang-up)."""
        if self.current is not None:
            self.current.broken.set()

    def wake(self) -> None:
        """Have the parked thread look at the channel again (it has just hung up)."""
        self._wake.set()

    def _next(self) -> SessionItem | None:
        while True:
            if self._urgent:
                return self._urgent.popleft()
            if not self.call.channel.up:
                return None
            if self._items:
                return self._items.popleft()
            self._wake.clear()
            self._wake.wait()

    def run(self) -> None:
        """The thread's life: park, run what comes, then the hang-up sequence once the channel is down."""
        call = self.call
        while (item := self._next()) is not None:
            kind = item[0]
            if kind == "execute":
                self._execute(item[1])
            elif kind == "hangup":
                call.tick()
                call.hangup(item[1].header("hangup-cause") or "NORMAL_CLEARING", "controller")
            elif kind == "transfer":
                transfer(call, *item[1:])
            elif kind == "socket_end":
                self._socket_end(item[1])
            if kind in ("execute", "hangup") and item[2] is not None:
                item[2].set()  # a static session's sendmsg replies once its command has run
            call.asr.deliver_pending()
            call.notify()
        hang_up_states(call)
        call.channel_gone()

    def _execute(self, command: wire.Command) -> None:
        call = self.call
        app = (command.app or "").strip()
        arg = command.app_arg or ""
        app_uuid = command.header("Event-UUID") or str(uuidlib.uuid4())
        if (command.header("event-lock") or "").lower() not in ("true", "yes", "on", "1"):
            call.note(f"execute {app} without event-lock: FreeSWITCH may run it inside a running playback")
        call.tick()
        if not call.channel.up:
            return
        spec = APPS.get(app)
        if spec is None or spec.module not in call.scenario.modules:
            where = f"module {spec.module} is not loaded" if spec else "no such application"
            call.note(f"execute {app}: {where}: FreeSWITCH hangs up with DESTINATION_OUT_OF_ORDER (capture 06)")
            call.hangup("DESTINATION_OUT_OF_ORDER", "simulator")
            return
        self.run_app(app, arg, app_uuid, spec.handler)

    def run_app(self, app: str, arg: str, app_uuid: str, handler: AppHandler, by_controller: bool = True) -> None:
        """switch_core_session_exec: variables, CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE.
        Apps the dialplan runs (after a transfer) are not counted as the controller's."""
        call = self.call
        ch = call.channel
        ch.set_var("current_application_response", None)
        ch.set_var("current_loop", "1")
        ch.set_var("total_loops", "1")
        ch.set_var("current_application", app)
        ch.set_var("current_application_data", arg)
        described = [("Application", app)] + ([("Application-Data", arg)] if arg else [])
        if by_controller:
            call.rec.executed_apps.append((app, arg or None))
            call.started_apps[app] += 1
        call.stop_unicast()  # any app ends a unicast stream for good (capture 15)
        call.fire("CHANNEL_EXECUTE", after=[*described, ("Application-UUID", app_uuid)])
        ch.set_var("current_application", app)
        self.current = RunningApp(app)
        call.notify()
        try:
            response = handler(call, arg) or "_none_"
        finally:
            self.current = None
        if response != "_none_":
            ch.set_var("current_application_response", response)
        call.fire("CHANNEL_EXECUTE_COMPLETE",
                  after=[*described, ("Application-Response", response), ("Application-UUID", app_uuid)])
        call.notify()

    def wait_app(self, seconds: float) -> bool:
        """Run the current app for `seconds`; False when uuid_break or a hang-up cut it short."""
        running = self.current
        if running is None or not self.call.channel.up:
            return False
        return not running.broken.wait(self.call.clock.scaled(seconds))

    def _socket_end(self, socket_app: str) -> None:
        """A session's end finished the socket app `socket_app`: it returns and the dialplan runs its next action,
        `hangup` (captures 06, 18). Checked when the session thread gets to it: a uuid_transfer that came first has
        already ended that app and started the next agent's, which an old session's end before its park spares."""
        call = self.call
        if socket_app != call.socket_app or not call.channel.up:
            return
        conn = call.controlling
        call.note(f"the socket app of {conn.id if conn else '?'} ended while the call was up: the dialplan hangs up")
        call.end_socket_app(unpark=conn is None or conn.async_mode)
        self.run_app("hangup", "", str(uuidlib.uuid4()), lambda call, arg: call.hangup("NORMAL_CLEARING", "dialplan"),
                     by_controller=False)
