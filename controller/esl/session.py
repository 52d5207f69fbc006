"""The only module that talks to greenswitch: one outbound ESL session per call, with timeouts everywhere.

greenswitch 0.0.19 gives us the session object, its handler registry and its server; its reader and its
command helpers have defects that this module overrides (each has a test in tests/test_esl.py):

- its parser URL-decodes a whole frame *before* splitting it into lines, so a `%0A` inside a value makes fake
  headers; event bodies (DETECTED_SPEECH results, BACKGROUND_JOB) are merged into the headers, and a JSON event
  body kills the reader greenlet. `FrameReader` (frames.py) reads header lines, then exactly Content-Length bytes, and decodes
  each value on its own.
- `send()` and its blocking executes wait forever: every wait here takes a timeout.
- it sends app arguments on an `execute-app-arg` header line (a newline in data starts a new command) and matches
  completions by application name (two `speak`s in a row get each other's result). Here every execute carries
  `event-lock: true` and an `Event-UUID`, the argument travels as a `content-type: text/plain` body, and its
  CHANNEL_EXECUTE_COMPLETE is matched on `Application-UUID`.
- registering your own CHANNEL_EXECUTE_COMPLETE handler starves its catch-all handler, so blocking executes time
  out: completions are resolved in the reader, before any handler runs.
- its server polls `accept()` every 100 ms and calls `sys.exit()` when `bind_port` is 0: see `listener.py`'s
  `Listener`, which accepts immediately and binds any port.
- it runs a second greenlet and queue per call for its handler registry, even with no handler: here they start
  with the first `register_handle` (the controller reads `events`).

Leaving a channel to another session (a hand-off) is not `exit`: when any event-socket session of a channel ends,
`exit` or a closed socket alike, FreeSWITCH clears the channel's CF_CONTROLLED flag, and that ends whichever
`socket` app is parked on it at that moment (capture 18: the old session's `exit` cut the next agent off). So the
old session closes its end before the new session parks, and `HandoffGate` (handoff.py) holds this process's new
sessions back from `connect` (which starts the park) while one is leaving.
"""
from __future__ import annotations

import socket as pysocket
import uuid as uuidlib
from typing import Any, Callable

import gevent
import gevent.event
import gevent.lock
import gevent.queue
from greenswitch import esl as gs

from controller.esl import commands
from controller.esl.frames import (HANGUP_EVENTS, CallHangup, CommandError, EslError, EslTimeout, ExecuteFlushed, Frame,
                         FrameReader, ProtocolError, command_frame, send_all)
from controller.esl.execution import Execution, follow_executions
from controller.esl.handoff import RELEASE_SETTLE_S, RELEASE_TIMEOUT_S, HandoffGate
from controller.esl.inbox import Inbox
from controller.log import Throttle, call_logger

YIELD_EVERY_FRAMES = 8

__all__ = ["CallHangup", "CommandError", "EslError", "EslSession", "EslTimeout", "ExecuteFlushed", "Execution",
           "Frame", "FrameReader", "HandoffGate", "ProtocolError", "command_frame"]


class EslSession(gs.OutboundSession):
    """An outbound ESL session (one call) on top of greenswitch's OutboundSession."""

    def __init__(self, sock: Any, address: Any = None, *, command_timeout: float = 10.0,
                 gate: HandoffGate | None = None) -> None:
        self.gate = gate or HandoffGate()
        self._send_lock = gevent.lock.Semaphore()
        self._executions: dict[str, Execution] = {}
        self._listeners: list[Inbox] = []
        self.events = Inbox()  # every event from the `connect` reply on: the call's inbox
        self._connect_answered = False
        self.command_timeout = command_timeout
        self.hangup_cause: str | None = None
        self.hangup_sent = False
        self.hungup = gevent.event.Event()
        self.closed = gevent.event.Event()
        self.channel: dict[str, str] = {}
        self.ended_here: str | None = None  # why this side cut the connection (EVENT_FLOOD, DRAIN_TIMEOUT...)
        self.log = call_logger("-", "switchboard.esl")
        self._unsolicited = Throttle()
        super().__init__(address, sock)
        self._esl_event_queue = Inbox()  # greenswitch's handler registry (register_handle) reads this one

    def start_event_handlers(self) -> None:  # only the reader; see register_handle
        self._receive_events_greenlet = gevent.spawn(self.receive_events)

    def register_handle(self, name: str, handler: Callable[[Frame], Any]) -> None:
        """greenswitch's registry minus its own hooks (the reader does their work); the first starts its greenlet."""
        if handler in (self.on_event, self.on_hangup, self.on_disconnect):
            return
        super().register_handle(name, handler)
        if self._process_events_greenlet is None:
            self._process_events_greenlet = gevent.spawn(self.process_events)

    # ---------------------------------------------------------------- reading
    def receive_events(self) -> None:
        """Replaces greenswitch's reader: whole frames, per-value decoding, completions resolved here.

        It yields after YIELD_EVERY_FRAMES frames read in one hub loop iteration (a read that waited let the hub
        run): gevent's recv returns at once while data is buffered, so a connection that keeps its socket full
        would otherwise hold every other call still until its bound ends it."""
        self._frames = FrameReader(self.sock_file)
        loop = gevent.get_hub().loop
        iteration, burst = -1, 0
        while self._run:
            try:
                frame = self._frames.read()
            except ProtocolError as exc:
                self._abort("PROTOCOL_ERROR", "malformed ESL frame: %s", exc)
                return
            except (OSError, ValueError) as exc:
                if self._run:
                    self.log.info("ESL socket closed: %s", exc)
                self._connection_lost("SOCKET_CLOSED")
                return
            if frame is None:
                self._connection_lost("SOCKET_CLOSED")
                return
            self._dispatch(frame)
            burst, iteration = (burst + 1 if loop.iteration == iteration else 1), loop.iteration
            if burst >= YIELD_EVERY_FRAMES:
                gevent.sleep(0)
                burst = 0

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if not self._connect_answered:
            if ctype == "command/reply" and self._commands_sent:
                self._connect_answered = True  # the reply to `connect`, every session's first command
            elif ctype != "text/disconnect-notice":
                self._abort("PROTOCOL_ERROR", "a %s frame before `connect` was answered (FreeSWITCH's outbound "
                            "socket sends nothing first but the connect reply)", ctype or "untyped")
                return
        if ctype in ("command/reply", "api/response"):
            if self._commands_sent:
                self._commands_sent.pop(0).set(frame)
            elif count := self._unsolicited.hit():
                self.log.warning("%d reply(ies) with no command waiting since the last such line, the latest: %r",
                                 count, frame.headers.get("Reply-Text", frame.body)[:80])
            return
        if ctype == "text/disconnect-notice":
            if frame.get("Content-Disposition") == "linger":
                self._lingering = True
                self._mark_hangup(self.hangup_cause or "NORMAL_CLEARING")
            else:
                self._connection_lost("DISCONNECTED")
            return
        if not ctype.startswith("text/event-"):
            self.log.debug("ignoring frame of type %r", ctype)
            return
        name = frame.name
        if not follow_executions(self._executions, frame) and name in HANGUP_EVENTS and self._is_mine(frame):
            self._mark_hangup(frame.get("Hangup-Cause") or "NORMAL_CLEARING")
        for inbox in (self.events, *([self._esl_event_queue] if self.event_handlers else ()), *self._listeners):
            if not inbox.offer(frame):
                self._abort("EVENT_FLOOD", "%d events (%.1f MB) this call has not read: past the bound of %d events "
                            "or %.0f MB (controller/esl/inbox.py)", inbox.qsize(), inbox.bytes / 2**20,
                            inbox.max_events, inbox.max_bytes / 2**20)
                self._drop_unread()
                return

    def _is_mine(self, frame: Frame) -> bool:
        uid = frame.get("Unique-ID")
        return not uid or not self.uuid or uid == self.uuid

    def _mark_hangup(self, cause: str) -> None:
        if self.hungup.is_set():
            return
        self.hangup_cause = cause
        self._outbound_connected = False
        self.hungup.set()
        for execution in list(self._executions.values()):
            if not execution.done:
                execution.result.set_exception(CallHangup(cause))
        self._executions.clear()

    def _abort(self, reason: str, message: str, *args: object) -> None:
        """End this connection from the reader: log why, close our end now (FreeSWITCH ends the `socket` app and
        the dialplan's next action takes the call), fail every wait of the call with CallHangup(reason)."""
        self.log.error(message + "; closing this call's socket, the dialplan's next action takes the call", *args)
        self.ended_here = reason
        try:
            self.sock.shutdown(pysocket.SHUT_RDWR)
        except OSError:
            pass
        self._connection_lost(reason)

    def _drop_unread(self) -> None:
        """Free the frames nobody will read now: the session lives on in reference cycles until a garbage
        collection, and with it every frame still queued (up to the inbox bound, per queue)."""
        for inbox in (self.events, self._esl_event_queue, *self._listeners):
            inbox.drop()
        for inbox in (self.events, *self._listeners):
            inbox.offer(None)

    def _connection_lost(self, reason: str) -> None:
        if count := self._unsolicited.flush():
            self.log.warning("%d more reply(ies) with no command waiting before the connection ended", count)
        self.connected = False
        self._run = False
        self._mark_hangup(self.hangup_cause or reason)
        for pending in self._commands_sent:
            if not pending.ready():
                pending.set_exception(CallHangup(self.hangup_cause or reason))
        self._commands_sent.clear()
        self.closed.set()
        for inbox in (self.events, *self._listeners):
            inbox.offer(None)

    # ---------------------------------------------------------------- sending
    @property
    def uuid(self) -> str:
        return self.channel.get("Unique-ID", "")

    def send(self, data: str | bytes, timeout: float | None = None) -> Frame:
        """Send one command frame and wait for its reply, at most `timeout` (default command_timeout) seconds."""
        return self.send_many([data if isinstance(data, bytes) else command_frame(data)], timeout)[0]

    def send_many(self, frames: list[bytes], timeout: float | None = None) -> list[Frame]:
        """Write several command frames at once, then wait for their replies (in order), `timeout` for all."""
        if not self.connected:
            raise CallHangup(self.hangup_cause or "SOCKET_CLOSED")
        pendings = [gevent.event.AsyncResult() for _ in frames]
        with self._send_lock:  # reply order is send order: append and write as one step
            self._commands_sent.extend(pendings)
            try:
                send_all(self.sock, b"".join(frames))
            except OSError:
                self._connection_lost("SOCKET_CLOSED")
                raise CallHangup(self.hangup_cause or "SOCKET_CLOSED") from None
        wait = self.command_timeout if timeout is None else timeout
        try:
            with gevent.Timeout(wait):
                return [pending.get() for pending in pendings]
        except gevent.Timeout:
            waiting = next(raw for raw, pending in zip(frames, pendings) if not pending.ready())
            first_line = waiting.split(b"\n", 1)[0].decode("utf-8", errors="replace")
            raise EslTimeout(f"no reply to {first_line!r} within {wait:.1f}s") from None

    def command(self, line: str, timeout: float | None = None) -> str:
        """A socket command (`myevents`, `linger 30`, `divert_events on`...): its Reply-Text, CommandError on -ERR."""
        reply = self.send(line, timeout)
        text = reply.get("Reply-Text", "")
        if text.startswith("-ERR"):
            raise CommandError(f"{line!r} refused: {text}")
        return text

    def connect(self, timeout: float | None = None) -> dict[str, str]:
        """`connect`: the reply's headers are the channel's data (uuid, caller, variables, Answer-State); sent
        once: when the listener already connected the session (its bounded set-up), this returns that data."""
        if self.channel.get("Unique-ID"):
            return self.channel
        reply = self.send(commands.connect(), timeout)
        if not reply.get("Unique-ID"):
            raise ProtocolError("the connect reply carries no Unique-ID: this call cannot have state of its own "
                                "(is the peer FreeSWITCH's outbound socket?)")
        self.channel = dict(reply.headers)
        self._outbound_connected = True
        self.session_data = self.channel
        self.log = call_logger(self.uuid or "-", "switchboard.esl")
        return self.channel

    def api(self, command: str, timeout: float | None = None) -> str:
        """`api <command>` over the socket: the response body; CommandError when it starts with -ERR."""
        if "\n" in command or "\r" in command:
            raise ValueError("line break in api command")
        body = self.send(f"api {command}", timeout).body
        if body.startswith("-ERR"):
            raise CommandError(f"api {command.split(' ', 1)[0]} failed: {body.strip()}")
        return body

    def start_execute(self, app: str, arg: str | None = None) -> Execution:
        """Queue one app on the channel without waiting for it to finish. Sends exactly (the argument as a body, so no character in it can start a new command):
            sendmsg / call-command: execute / execute-app-name: <app> / event-lock: true /
            Event-UUID: <uuid> / content-type: text/plain / content-length: <n> / (blank) / <arg>
        """
        return self.start_executes([(app, arg)])[0]

    def start_executes(self, steps: list[tuple[str, str | None]]) -> list[Execution]:
        """Queue several apps with one write, then read their `+OK`s: FreeSWITCH runs them in this order. Each
        frame is `start_execute`'s; one round trip where only the order matters (a transfer's multiset, bridge)."""
        if self.hungup.is_set():
            raise CallHangup(self.hangup_cause or "NORMAL_CLEARING")
        executions = [Execution(app, arg, str(uuidlib.uuid4())) for app, arg in steps]
        frames = []
        for execution in executions:
            self._executions[execution.app_uuid] = execution
            headers = [("call-command", "execute"), ("execute-app-name", execution.app), ("event-lock", "true"),
                       ("Event-UUID", execution.app_uuid)]
            frames.append(command_frame("sendmsg", headers, execution.arg if execution.arg else None))
        try:
            replies = self.send_many(frames)
        except EslError:
            for execution in executions:
                self._executions.pop(execution.app_uuid, None)
            raise
        refused = [(e, r.get("Reply-Text", "")) for e, r in zip(executions, replies)
                   if r.get("Reply-Text", "").startswith("-ERR")]
        if refused:
            for execution in executions:
                self._executions.pop(execution.app_uuid, None)
            execution, text = refused[0]
            raise CommandError(f"execute {execution.app} refused: {text}")
        return executions

    def execute(self, app: str, arg: str | None = None, timeout: float = 30.0) -> Frame:
        """Run one app and wait for its completion (matched on Application-UUID), at most `timeout` seconds."""
        return self.start_execute(app, arg).wait(timeout)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """`sendmsg` with `call-command: hangup`, `hangup-cause: <cause>`."""
        if self.hungup.is_set() or self.hangup_sent:
            return
        self.hangup_sent = True
        self.send(command_frame("sendmsg", [("call-command", "hangup"), ("hangup-cause", cause)]))

    def unicast(self, headers: list[tuple[str, str]]) -> None:
        """`sendmsg` with the `call-command: unicast` headers of `commands.unicast`; CommandError on -ERR.

        An app that starts ends the stream for good (capture 15), so the apps queued before it (a `detect_speech
        resume` a caller's turn did not wait for) start first, within command_timeout."""
        with gevent.Timeout(self.command_timeout, False):
            for execution in [e for e in self._executions.values() if not e.started]:
                gevent.wait([execution.began, execution.result], count=1)  # started, or flushed by uuid_break
        if any(not e.started for e in self._executions.values()):
            self.log.warning("unicast: an app queued before it has not started within %.1fs; the stream may end "
                             "as soon as it runs", self.command_timeout)
        reply = self.send(command_frame("sendmsg", headers))
        if reply.get("Reply-Text", "").startswith("-ERR"):
            raise CommandError(f"unicast refused: {reply.get('Reply-Text')}")

    def flush_queued(self) -> list[Execution]:
        """After `uuid_break all`: fail the executes FreeSWITCH dropped (queued, never started); they never complete."""
        dropped = [e for e in self._executions.values() if not e.started and not e.done]
        for execution in dropped:
            self._executions.pop(execution.app_uuid, None)
            execution.result.set_exception(ExecuteFlushed(f"{execution.app} dropped by uuid_break all"))
        return dropped

    def break_all(self) -> list[Execution]:
        """`api uuid_break <uuid> all`: stops what plays now and flushes the queue (capture 11)."""
        self.api(commands.uuid_break(self.uuid))
        return self.flush_queued()

    def listen(self) -> gevent.queue.Queue:
        """A queue (an Inbox, bounded) receiving every event frame of this session from now on (None when the
        socket closes)."""
        queue = Inbox()
        self._listeners.append(queue)
        if self.closed.is_set():
            queue.offer(None)
        return queue

    def unlisten(self, queue: gevent.queue.Queue) -> None:
        if queue in self._listeners:
            self._listeners.remove(queue)

    def wait_event(self, predicate: Callable[[Frame], bool], timeout: float) -> Frame | None:
        """First future event matching `predicate`, or None after `timeout` or when the socket closes."""
        queue = self.listen()
        try:
            with gevent.Timeout(timeout, False):
                while True:
                    frame = queue.get()
                    if frame is None:
                        return None
                    if predicate(frame):
                        return frame
            return None
        finally:
            self.unlisten(queue)

    def release(self, timeout: float = RELEASE_TIMEOUT_S) -> bool:
        """Leave the channel to the session a `uuid_transfer` opened: no `exit`, no command, only our end closed.

        The socket is half-closed (FIN); FreeSWITCH's listener reads EOF, ends (clearing CF_CONTROLLED before the
        next session parks, see the module docstring), sends its disconnect notice and closes. True once that close
        is seen, False after `timeout`. The session counts as ended either way; `close()` then sends nothing.
        """
        self.connected = False
        self.hangup_sent = True
        try:
            self.sock.shutdown(pysocket.SHUT_WR)
        except OSError:
            return True
        closed = self.closed.wait(timeout)
        if not closed:
            self.log.warning("FreeSWITCH did not close the released session within %.1fs", timeout)
        gevent.sleep(RELEASE_SETTLE_S)
        return closed

    def close(self) -> None:
        """Send `exit` when still connected (bounded wait), stop the reader, then close the socket and its file.

        The reader's file holds a reference on the socket: closing the socket alone keeps its descriptor open (the
        connection stays in CLOSE-WAIT) until a garbage collection frees the session. A file cannot be closed
        under a read in progress, so shutdown() first wakes the reader with end-of-file, and it is stopped.
        """
        if self.connected:
            try:
                self.send(commands.exit_session(), timeout=2.0)
            except EslError:
                pass
        self._run = False
        self.connected = False
        try:
            self.sock.shutdown(pysocket.SHUT_RDWR)
        except OSError:
            pass
        self.closed.set()
        reader, handlers = self._receive_events_greenlet, self._process_events_greenlet
        self._receive_events_greenlet = self._process_events_greenlet = None  # a second close runs while we wait
        if reader is not None:
            reader.join(timeout=1.0)
            reader.kill(block=True, timeout=1.0)
        if handlers is not None:  # greenswitch's handler greenlet, when a handler was registered
            handlers.kill(block=True, timeout=1.0)
        self.event_handlers.clear()  # bound methods of a caller's: cycles only a full collection frees
        for handle in (self.sock_file, self.sock):
            try:
                handle.close()
            except OSError:
                pass
        self._drop_unread()

    stop = close
