"""One outbound event-socket session: what mod_event_socket does for a channel's `socket` app.

FreeSWITCH is the TCP client. It waits for the controller's commands and answers each one in order:
`connect` (the channel data), `myevents`, `event plain ...`, `linger [N]`, `divert_events on|off`,
`sendmsg` (queued on the channel), `api`/`bgapi`, `exit` (`+OK bye`, disconnect notice, close); anything
else gets `-ERR command not found`. Events reach it only if it subscribed to them; after `myevents` only
the channel's own events (its Unique-ID) pass.

The socket app's words set the modes (mod_event_socket's socket_function): without `full` the session is
single-channel and only the commands below SINGLE_CHANNEL are known (`linger`, `event`, `api`... get
`-ERR command not found`, capture 13 part 1); without `async` it is static: the app runs the session in the
channel's own thread, so nothing parks and a `sendmsg` is answered only once its app has run, the app's events
following the reply.
"""
from __future__ import annotations

import uuid as uuidlib

import gevent.event
from gevent import socket
from gevent.lock import Semaphore

from fssim import api, wire
from fssim.ports import CallPort
from fssim.recording import WireFrame, command_record

# mod_event_socket.c: the event list `myevents` turns on.
MYEVENTS = frozenset({
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING", "CHANNEL_PARK",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK",
    "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
})
# parse_command: what an outbound session without `full` still knows (the rest falls through to "command not found").
SINGLE_CHANNEL = frozenset({"connect", "getvar", "myevents", "divert_events", "sendmsg", "filter", "resume", "exit",
                            "..."})
CONNECT_TIMEOUT_S = 25.0  # mod_event_socket waits 25 s for the first command of an outbound session
STATIC_SENDMSG_TIMEOUT_S = 600.0  # bounds a static sendmsg's wait for its app (the longest app a test runs)


class Connection:
    """One TCP session to the controller, with its subscriptions and linger setting."""

    def __init__(self, call: CallPort, conn_id: str, socket_words: list[str]) -> None:
        self.call = call
        self.id = conn_id
        words = {w.lower() for w in socket_words}
        self.async_mode = "async" in words
        self.full = "full" in words
        self.socket_data = " ".join([f"{call.addr[0]}:{call.addr[1]}", *socket_words])
        self._held: list[bytes] | None = None  # events held back (a static sendmsg's, until its reply; see hold)
        self.sock: socket.socket | None = None
        self.connected = False
        self.closed = False
        self.events_on = False
        self.myevents = False
        self.all_events = False
        self.event_names: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.linger: int | None = None
        self._parked = False
        self._lock = Semaphore()

    def open(self, addr: tuple[str, int]) -> str | None:
        """Connect and start reading commands; returns an error text when the controller is unreachable."""
        try:
            self.sock = socket.create_connection(addr, timeout=5.0)
            self.sock.settimeout(None)
            # FreeSWITCH writes each frame at once; without NODELAY, Nagle holds a reply that follows an
            # event until the controller's delayed ACK (40 ms), which would distort every latency measured here.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            return str(exc)
        self.call.spawn(self._read_loop)
        return None

    # -- output -----------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write one frame (recorded), unless the connection is gone."""
        if self.closed or self.sock is None:
            return
        frame = wire.parse_frame(data)
        with self._lock:
            self.call.rec.frames.append(WireFrame(self.call.now(), "out", self.id, data, frame.headers, frame.body))
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self.call.note(f"{self.id}: send failed ({exc}); the controller is gone")
                self._gone()

    def send_event(self, frame: bytes) -> None:
        """An event frame: at once, or when `release_events` lets the held ones go."""
        if self._held is not None:
            self._held.append(frame)
        else:
            self.send(frame)

    def hold_events(self) -> None:
        """Queue events instead of writing them: a listener thread writes its queue when it gets to it."""
        if self._held is None:
            self._held = []

    def release_events(self) -> None:
        held, self._held = self._held or [], None
        for frame in held:
            self.send(frame)

    def reply(self, text: str, extra: wire.Headers = ()) -> None:
        self.send(wire.command_reply(text, extra))

    def wants(self, name: str, subclass: str | None, headers: dict[str, str]) -> bool:
        """mod_event_socket event_handler: subscription, filters, then the myevents Unique-ID check."""
        if self.closed or not self.connected or not self.events_on:
            return False
        if not self.all_events:
            if name not in self.event_names:
                return False
            if name == "CUSTOM" and subclass and subclass not in self.subclasses:
                return False
        if self.filters and not any(headers.get(h, "").lower() == v.lower() for h, v in self.filters):
            return False
        return not self.myevents or headers.get("Unique-ID") == self.call.uuid

    def channel_down(self) -> None:
        """After CHANNEL_HANGUP_COMPLETE: linger notice (and wait), or disconnect notice and close."""
        if self.closed:
            return
        if self.linger is None:
            self.close()
            return
        self.send(wire.linger_notice(self.call.uuid, self.call.channel.name, self.linger))
        if self.linger >= 0:
            def expire() -> None:
                self.call.sleep(self.linger)
                if not self.closed:
                    self.close()
                    self.call.connection_closed(self)
            self.call.spawn(expire)

    def close(self, send_notice: bool = True) -> None:
        """FreeSWITCH's end of a session: the disconnect notice (body "Disconnected, goodbye...") and close."""
        if self.closed:
            return
        if send_notice:
            self.send(wire.disconnect_notice(self.call.uuid))
        self._gone()

    def _gone(self) -> None:
        self.closed = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    # -- input ------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        reader = wire.FrameReader(self.sock)
        while not self.closed:
            try:
                command = reader.read_command()
            except OSError:
                command = None
            if command is None:
                if not self.closed:  # read_packet fails: the listener ends as after `exit`, notice included
                    self.call.note(f"{self.id}: the controller closed the connection")
                    self.close()
                    self.call.connection_closed(self)
                return
            self.call.rec.frames.append(WireFrame(self.call.now(), "in", self.id, command.raw, command.headers,
                                                  command.body))
            self.call.rec.commands.append(command_record(self.call.now(), self.id, command))
            self.handle(command)
            if self.connected and self.async_mode and not self._parked and command.name.lower() != "connect":
                self._parked = True
                self.call.parked(self)
            if self.closed:
                self.call.connection_closed(self)

    def handle(self, command: wire.Command) -> None:
        name = command.name.lower()
        handler = getattr(self, f"_cmd_{name}", None)
        if name == "...":
            handler = self._cmd_exit
        if handler is None or (not self.full and name not in SINGLE_CHANNEL):
            self.reply("-ERR command not found")
            return
        handler(command)

    def _cmd_connect(self, command: wire.Command) -> None:
        self.send(wire.connect_reply(self.call.channel.connect_headers(), self.async_mode, self.full))
        self.connected = True
        self.call.notify()

    def _cmd_myevents(self, command: wire.Command) -> None:
        if self.myevents:
            self.reply("-ERR aready enabled.")
            return
        self._plain_only(command.arg)
        self.myevents = self.events_on = True
        self.event_names |= MYEVENTS
        self.reply("+OK Events Enabled")

    def _cmd_event(self, command: wire.Command) -> None:
        words = command.arg.split()
        if words and words[0].lower() in ("plain", "json", "xml"):
            self._plain_only(words[0])
            words = words[1:]
        keys = 0
        custom = False
        for word in words:
            if custom:
                self.subclasses.add(word)
                continue
            keys += 1
            if word.upper() == "ALL":
                self.all_events = True
            self.event_names.add(word.upper())
            custom = custom or word.upper() == "CUSTOM"
        if not keys:
            self.reply("-ERR no keywords supplied")
            return
        self.events_on = True
        self.reply("+OK event listener enabled plain")

    def _cmd_nixevent(self, command: wire.Command) -> None:
        words = command.arg.split()
        if not words:
            self.reply("-ERR no keywords supplied")
            return
        for word in words:
            if word.upper() == "ALL":
                self.all_events = False
                self.event_names.clear()
            else:
                self.event_names.discard(word.upper())
                self.subclasses.discard(word)
        self.reply("+OK events nixed")

    def _cmd_noevents(self, command: wire.Command) -> None:
        if not self.events_on:
            self.reply("-ERR not listening for events")
            return
        self.events_on = self.all_events = False
        self.event_names.clear()
        self.subclasses.clear()
        self.reply("+OK no longer listening for events")

    def _cmd_linger(self, command: wire.Command) -> None:
        arg = command.arg.strip()
        self.linger = int(arg) if arg.lstrip("-").isdigit() else -1
        self.reply("+OK will linger" if self.linger == -1 else f"+OK will linger {self.linger} seconds")

    def _cmd_nolinger(self, command: wire.Command) -> None:
        self.linger = None
        self.reply("+OK will not linger")

    def _cmd_divert_events(self, command: wire.Command) -> None:
        value = command.arg.strip().lower()
        if not value:
            self.reply("-ERR missing value.")
            return
        self.call.divert = value == "on"
        self.reply("+OK events diverted" if self.call.divert else "+OK events not diverted")

    def _cmd_filter(self, command: wire.Command) -> None:
        words = command.arg.split(" ", 2)
        if words and words[0].lower() == "delete" and len(words) >= 2:
            self.filters = [] if words[1].lower() == "all" else [
                f for f in self.filters if f[0] != words[1] or (len(words) > 2 and f[1] != words[2])]
            self.reply(f"+OK filter deleted. [{words[1]}][{words[2] if len(words) > 2 else ''}]")
        elif len(words) >= 2:
            header, value = words[0], " ".join(words[1:])
            self.filters.append((header, value))
            self.reply(f"+OK filter added. [{header}]=[{value}]")
        else:
            self.reply("-ERR invalid syntax")

    def _cmd_resume(self, command: wire.Command) -> None:
        self.call.channel.set_var("socket_resume", "true")
        self.reply("+OK")

    def _cmd_getvar(self, command: wire.Command) -> None:
        self.reply(self.call.channel.get_var(command.arg.strip()) or "")

    def _cmd_exit(self, command: wire.Command) -> None:
        self.reply("+OK bye")
        self.close()

    def _cmd_sendmsg(self, command: wire.Command) -> None:
        target = command.arg.strip() or command.header("session-id") or ""
        if target and target != self.call.uuid:
            self.reply(f"-ERR invalid session id [{target}]")
            return
        kind = (command.header("call-command") or "").lower()
        if kind in ("execute", "hangup") and not self.async_mode:
            self._static_sendmsg(kind, command)
            return
        if kind in ("execute", "hangup"):
            self.call.session.push((kind, command, None))
        elif kind == "unicast":
            self.call.start_unicast(command)
        else:
            self.call.note(f"sendmsg call-command {kind!r} accepted with no simulated effect")
        self.reply("+OK")

    def _static_sendmsg(self, kind: str, command: wire.Command) -> None:
        """Static mode: the app runs before the reply (capture 13 part 1: `+OK` 477 ms after a 500 ms playback),
        and the events it fired reach the controller after that reply."""
        done = gevent.event.Event()
        self.hold_events()
        self.call.session.push((kind, command, done))
        self.call.wait_until(lambda: done.is_set() or not self.call.channel.up, STATIC_SENDMSG_TIMEOUT_S)
        held, self._held = self._held or [], None
        self.reply("+OK")
        for frame in held:
            self.send(frame)

    def _cmd_api(self, command: wire.Command) -> None:
        """mod_event_socket runs an `api` inline in the session's listener thread: while a slow one runs (the
        scenario's `api_delays`), the session reads nothing else, and a session closed meanwhile never replies."""
        name, _, arg = command.arg.partition(" ")
        if name in self.call.scenario.api_delays:
            self.call.sleep(self.call.scenario.api_delays[name])
        self.send(wire.api_response(api.run(self.call, name, arg.strip())))

    def _cmd_bgapi(self, command: wire.Command) -> None:
        name, _, arg = command.arg.partition(" ")
        job = command.header("Job-UUID") or str(uuidlib.uuid4())
        self.reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])

        def background() -> None:
            output = api.run(self.call, name, arg.strip())
            headers = [*self.call.switch.event_header("BACKGROUND_JOB", self.call.now_us()), ("Job-UUID", job),
                       ("Job-Command", name)] + ([("Job-Command-Arg", arg.strip())] if arg.strip() else [])
            self.call.fire("BACKGROUND_JOB", headers=headers, body=output)
        self.call.spawn(background)

    def _plain_only(self, fmt: str) -> None:
        if fmt.strip().lower() in ("json", "xml"):
            self.call.note(f"{self.id}: asked for {fmt.strip()} events; the simulator writes plain events only")
