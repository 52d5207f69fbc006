"""The inbound event socket (FreeSWITCH's port 8021), for the one thing Switchboard asks of it: placing a call.

`auth`; `filter Unique-ID <call uuid>` and `filter Job-UUID <job>` (only this call's events and this job's
result); `event plain BACKGROUND_JOB CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP_COMPLETE`; then
`bgapi originate ...` with our own Job-UUID (captures 01, 08, 13). FreeSWITCH answers `+OK Job-UUID` at once
and, when the originate ends, a BACKGROUND_JOB whose body is `+OK <uuid>` (answered: the socket app now runs
on the new leg) or `-ERR <cause>` (USER_BUSY, NO_ANSWER, NO_ROUTE_DESTINATION...). An answered originate is not
yet an agent on the line: the socket session can still fail its set-up (capture 13 part 1: static mode,
`linger` refused, the call dropped). A leg that fails (busy, no answer) hangs up before the BACKGROUND_JOB
reports it, so a hang-up before the job's result waits for that result. So the call counts as answered only once an app other than `socket` runs
on the leg while the socket app still runs (the agent's session executes its first app; what runs after the
socket app ended is the dialplan's), and as dropped when the leg hangs up first. Every wait has a deadline.
The frame reader is the outbound one (frames.py).
"""
from __future__ import annotations

import socket
import time
import uuid as uuidlib
from dataclasses import dataclass

from controller.esl import commands
from controller.esl.values import validate_uuid
from controller.esl.frames import EslTimeout, Frame, FrameReader, ProtocolError, command_frame

SESSION_START_S = 15.0  # how long an answered call may take to show the agent's session (milliseconds in practice)


class InboundError(Exception):
    """The event socket could not be used (unreachable, wrong password, protocol); the message says what to fix."""


@dataclass(frozen=True)
class Originated:
    """How a placed call went: `answered` (the agent's session runs on it), `not_answered` (detail: FreeSWITCH's
    cause), `dropped` (answered, then hung up before the agent's session started; detail: the hangup cause) or
    `unconfirmed` (answered, and no sign of the agent's session before the deadline)."""

    outcome: str
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"


def originate(address: tuple[str, int], password: str, command: str, call_uuid: str, timeout_s: float,
              start_timeout_s: float) -> Originated:
    """Run `bgapi <command>` (an `originate ...` whose origination_uuid is `call_uuid`), wait for its BACKGROUND_JOB
    at most `timeout_s`, then for the agent's session to start on the answered leg at most `start_timeout_s`."""
    deadline = time.monotonic() + timeout_s
    validate_uuid(call_uuid, "origination_uuid")  # it goes on a `filter` line
    if not password or any(c in password for c in "\r\n"):
        raise InboundError("the event socket password is empty or has a line break (it would end the `auth` "
                           "command); set the one of event_socket.conf.xml, on one line")
    try:
        sock = socket.create_connection(address, timeout=min(timeout_s, 10))
    except OSError as exc:
        raise InboundError(f"cannot reach FreeSWITCH's event socket at {address[0]}:{address[1]} ({exc}); check "
                           "freeswitch.host/port and event_socket.conf.xml") from None
    try:
        reader = FrameReader(sock.makefile("rb"))
        _expect(reader, sock, deadline, "auth/request")
        sock.sendall(command_frame(commands.auth(password)))
        if not _reply(reader, sock, deadline).startswith("+OK"):
            raise InboundError(f"FreeSWITCH at {address[0]}:{address[1]} refused the password; set the one of "
                               "event_socket.conf.xml in the environment variable named by freeswitch.password_env")
        job = str(uuidlib.uuid4())
        for line in (commands.filter_on("Unique-ID", call_uuid),
                     commands.filter_on("Job-UUID", job),
                     commands.event_plain(["BACKGROUND_JOB", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE",
                                           "CHANNEL_HANGUP_COMPLETE"])):
            sock.sendall(command_frame(line))
            _reply(reader, sock, deadline)
        sock.sendall(command_frame(f"bgapi {command}", [("Job-UUID", job)]))
        accepted = _reply(reader, sock, deadline)
        if not accepted.startswith("+OK"):
            raise InboundError(f"FreeSWITCH refused `bgapi originate`: {accepted}")
        placed = _follow(reader, sock, deadline, job, call_uuid, start_timeout_s)
        try:
            sock.sendall(command_frame(commands.exit_session()))  # leave politely: the call's events would keep coming
        except OSError:
            pass
        return placed
    except (EslTimeout, ProtocolError, OSError) as exc:
        raise InboundError(f"FreeSWITCH's event socket at {address[0]}:{address[1]}: {exc}") from None
    finally:
        sock.close()


def _follow(reader: FrameReader, sock: socket.socket, deadline: float, job: str, call_uuid: str,
            start_timeout_s: float) -> Originated:
    """The job's result, then the session's first app on the leg (answered) or the leg's hang-up (dropped)."""
    result: str | None = None
    started = socket_done = False
    hung_up: str | None = None
    while True:
        try:
            frame = _next(reader, sock, deadline)
        except EslTimeout:
            if result is None:
                raise
            return Originated("unconfirmed", f"no sign of the agent's session within {start_timeout_s:g}s")
        if frame.name == "BACKGROUND_JOB" and frame.get("Job-UUID") == job:
            result = frame.body.strip()
            if not result.startswith("+OK"):
                return Originated("not_answered", result.removeprefix("-ERR").strip())
            if hung_up is not None:
                return Originated("dropped", hung_up)
            deadline = time.monotonic() + start_timeout_s
        elif frame.get("Unique-ID") == call_uuid:
            socket_app = frame.get("Application") == "socket"
            if frame.name == "CHANNEL_EXECUTE" and not socket_app and not socket_done:
                started = True
            elif frame.name == "CHANNEL_EXECUTE_COMPLETE" and socket_app:
                socket_done = True
            elif frame.name == "CHANNEL_HANGUP_COMPLETE" and not started:
                hung_up = frame.get("Hangup-Cause") or "NORMAL_CLEARING"
                if result is not None:
                    return Originated("dropped", hung_up)  # before the job's result: a failed leg's, wait for it
        if started and result is not None:
            return Originated("answered")


def _next(reader: FrameReader, sock: socket.socket, deadline: float) -> Frame:
    left = deadline - time.monotonic()
    if left <= 0:
        raise EslTimeout("no answer from FreeSWITCH before the deadline")
    sock.settimeout(left)
    try:
        frame = reader.read()
    except socket.timeout:
        raise EslTimeout("no answer from FreeSWITCH before the deadline") from None
    if frame is None:
        raise ProtocolError("FreeSWITCH closed the connection")
    return frame


def _expect(reader: FrameReader, sock: socket.socket, deadline: float, content_type: str) -> Frame:
    frame = _next(reader, sock, deadline)
    if frame.content_type != content_type:
        raise ProtocolError(f"expected {content_type}, got {frame.content_type or 'a frame without Content-Type'}")
    return frame


def _reply(reader: FrameReader, sock: socket.socket, deadline: float) -> str:
    """The Reply-Text of the next command/reply (events in between belong to nobody yet and are skipped)."""
    while True:
        frame = _next(reader, sock, deadline)
        if frame.content_type == "command/reply":
            return frame.get("Reply-Text", "")
