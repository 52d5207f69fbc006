"""A throwaway controller for the simulator's tests: a gevent StreamServer that speaks a few ESL commands.

It reads frames on its own (header block, blank line, Content-Length body) so the simulator is checked
against an independent reader, not against itself.
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Callable

import gevent
from gevent.queue import Empty, Queue
from gevent.server import StreamServer

from fssim import Scenario, Simulator
from fssim.wire import Frame, parse_event_body, parse_frame, url_decode

WAIT_S = 10.0
SCALE = 0.01
HANGUP = "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"


class FakeSession:
    """One accepted FreeSWITCH connection, with blocking helpers that time out."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.replies: Queue = Queue()
        self.events: list[dict[str, str]] = []
        self.bodies: list[str] = []
        self.notices: list[Frame] = []
        self.raw: list[bytes] = []
        self.received = bytearray()
        self.closed = gevent.event.Event()
        self._new = gevent.event.Event()
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        try:
            self._read_frames()
        except OSError:
            pass
        self.closed.set()
        self._new.set()

    def _read_frames(self) -> None:
        buffer = b""
        while True:
            while b"\n\n" not in buffer:
                data = self.sock.recv(65536)
                if not data:
                    self.closed.set()
                    self._new.set()
                    return
                buffer += data
                self.received += data
                self._new.set()
            head, _, buffer = buffer.partition(b"\n\n")
            headers = dict(line.split(": ", 1) for line in head.decode().split("\n") if ": " in line)
            length = int(headers.get("Content-Length", 0))
            while len(buffer) < length:
                data = self.sock.recv(65536)
                if not data:
                    self.closed.set()
                    self._new.set()
                    return
                buffer += data
                self.received += data
                self._new.set()
            body, buffer = buffer[:length], buffer[length:]
            raw = head + b"\n\n" + body
            self.raw.append(raw)
            frame = parse_frame(raw)
            kind = headers.get("Content-Type")
            if kind == "text/event-plain":
                parsed = parse_event_body(body)
                self.events.append(parsed.headers)
                self.bodies.append(parsed.body.decode())
            elif kind == "text/disconnect-notice":
                self.notices.append(frame)
            else:
                self.replies.put(frame)
            self._new.set()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def command(self, text: str) -> Frame:
        self.send(text + "\n\n")
        try:
            return self.replies.get(timeout=WAIT_S)
        except Empty:
            raise AssertionError(f"no reply to {text!r} within {WAIT_S} s") from None

    def connect(self) -> dict[str, str]:
        reply = self.command("connect")
        return {name: url_decode(value) for name, value in reply.headers.items()}

    def api(self, text: str) -> str:
        return self.command(f"api {text}").body.decode()

    def execute(self, app: str, arg: str | None = None, app_uuid: str | None = None, lock: bool = True,
                body_form: bool = True) -> str:
        """`sendmsg` execute with the argument as a text/plain body; returns the Application-UUID used."""
        app_uuid = app_uuid or str(uuidlib.uuid4())
        lines = ["sendmsg", "call-command: execute", f"execute-app-name: {app}", f"Event-UUID: {app_uuid}"]
        if lock:
            lines.append("event-lock: true")
        if arg is not None and not body_form:
            lines.append(f"execute-app-arg: {arg}")
        text = "\n".join(lines)
        if arg is not None and body_form:
            data = arg.encode()
            text += f"\ncontent-type: text/plain\ncontent-length: {len(data)}\n\n{arg}"
            self.send(text)
            reply = self.replies.get(timeout=WAIT_S)
        else:
            reply = self.command(text)
        assert reply.headers.get("Reply-Text") == "+OK", reply.headers
        return app_uuid

    def wait_event(self, name: str, start: int = 0, timeout: float = WAIT_S, **match: str) -> dict[str, str]:
        """First event named `name` (index >= start) whose headers match `match` (underscores -> dashes)."""
        wanted = {key.replace("_", "-"): value for key, value in match.items()}
        deadline = gevent.get_hub().loop.now() + timeout
        while True:
            for event in self.events[start:]:
                if event.get("Event-Name") == name and all(event.get(k) == v for k, v in wanted.items()):
                    return event
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0 or self.closed.is_set():
                raise AssertionError(f"no {name} {wanted} in {[e.get('Event-Name') for e in self.events]}")
            self._new.clear()
            self._new.wait(min(remaining, 0.5))

    def wait_notice(self, disposition: str, timeout: float = WAIT_S) -> Frame:
        """The first text/disconnect-notice with this Content-Disposition (linger or disconnect)."""
        deadline = gevent.get_hub().loop.now() + timeout
        while True:
            for notice in self.notices:
                if notice.headers.get("Content-Disposition") == disposition:
                    return notice
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0 or self.closed.is_set():
                raise AssertionError(f"no {disposition} notice in {[n.headers for n in self.notices]}")
            self._new.clear()
            self._new.wait(min(remaining, 0.5))

    def wait_bytes(self, needle: bytes, timeout: float = WAIT_S) -> None:
        """Wait until `needle` appears in the raw bytes received (frames the reader may not parse)."""
        deadline = gevent.get_hub().loop.now() + timeout
        while needle not in self.received:
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0 or self.closed.is_set():
                raise AssertionError(f"{needle!r} never arrived")
            self._new.clear()
            self._new.wait(min(remaining, 0.5))

    def wait_closed(self, timeout: float = WAIT_S) -> None:
        assert self.closed.wait(timeout), "FreeSWITCH did not close the connection"

    def close(self) -> None:
        self.sock.close()
        self.closed.set()
        self._new.set()


class FakeController:
    """Accept connections on 127.0.0.1 (ephemeral port) and run `handler(session)` for each."""

    def __init__(self, handler: Callable[[FakeSession], None]) -> None:
        self.handler = handler
        self.sessions: list[FakeSession] = []
        self.errors: list[BaseException] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.addr = ("127.0.0.1", self.server.server_port)

    def _handle(self, sock, address) -> None:
        session = FakeSession(sock)
        self.sessions.append(session)
        try:
            self.handler(session)
        except BaseException as exc:  # surfaced by the test through `errors`
            self.errors.append(exc)
            raise
        finally:
            session.closed.wait(WAIT_S)
            sock.close()

    def stop(self) -> None:
        """Let each session read what FreeSWITCH sent before it closed, then stop listening."""
        for session in self.sessions:
            session.closed.wait(WAIT_S)
        self.server.stop(timeout=1)

    def __enter__(self) -> "FakeController":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def play(scenario: dict, handler, scale: float = SCALE):
    """Run one scenario (`end: wait` unless given) against `handler`; returns the recording and the sessions."""
    with FakeController(handler) as controller:
        recording = Simulator(controller.addr, time_scale=scale).run(Scenario.from_dict({"end": "wait", **scenario}))
    assert not controller.errors, controller.errors
    return recording, controller.sessions


def start(s: FakeSession, *extra: str) -> str:
    """connect, myevents, the `extra` commands, linger, answer; returns the channel uuid."""
    s.channel = s.connect()
    s.command("myevents")
    for command in extra:
        s.command(command)
    s.command("linger")
    s.execute("answer")
    return s.channel["Unique-ID"]


def finish(s: FakeSession) -> None:
    """Hang up, wait for the linger notice, exit."""
    s.send(HANGUP)
    s.wait_notice("linger")
    s.command("exit")
    s.wait_closed()


def event_names(s: FakeSession) -> list[str]:
    return [e["Event-Name"] for e in s.events]
