"""The inbound event socket (FreeSWITCH's port 8021), for the one thing Switchboard asks of it: placing a call.

`auth`, `event plain BACKGROUND_JOB`, then `bgapi originate ...` with our own Job-UUID (captures 01 and 13):
FreeSWITCH answers `+OK Job-UUID` at once and, when the originate ends, a BACKGROUND_JOB event whose body is
`+OK <uuid>` (answered; the socket app now runs on the new leg) or `-ERR <cause>` (USER_BUSY, NO_ANSWER,
NO_ROUTE_DESTINATION...). Every wait has a deadline. The frame reader is the outbound one (esl_frames).
"""
from __future__ import annotations

import socket
import time
import uuid as uuidlib
from dataclasses import dataclass

from .esl_frames import EslTimeout, Frame, FrameReader, ProtocolError, command_frame


class InboundError(Exception):
    """The event socket could not be used (unreachable, wrong password, protocol); the message says what to fix."""


@dataclass(frozen=True)
class Originated:
    answered: bool
    detail: str  # the new leg's uuid when answered, else FreeSWITCH's cause (USER_BUSY, NO_ANSWER...)
    job_uuid: str


def originate(address: tuple[str, int], password: str, command: str, timeout_s: float) -> Originated:
    """Run `bgapi <command>` (an `originate ...`) and wait for its BACKGROUND_JOB, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
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
        sock.sendall(command_frame(f"auth {password}"))
        if not _reply(reader, sock, deadline).startswith("+OK"):
            raise InboundError(f"FreeSWITCH at {address[0]}:{address[1]} refused the password; set the one of "
                               "event_socket.conf.xml in the environment variable named by freeswitch.password_env")
        sock.sendall(command_frame("event plain BACKGROUND_JOB"))
        _reply(reader, sock, deadline)
        job = str(uuidlib.uuid4())
        sock.sendall(command_frame(f"bgapi {command}", [("Job-UUID", job)]))
        accepted = _reply(reader, sock, deadline)
        if not accepted.startswith("+OK"):
            raise InboundError(f"FreeSWITCH refused `bgapi originate`: {accepted}")
        while True:
            frame = _next(reader, sock, deadline)
            if frame.name == "BACKGROUND_JOB" and frame.get("Job-UUID") == job:
                result = frame.body.strip()
                answered = result.startswith("+OK")
                return Originated(answered, result[3:].strip() if answered else result.removeprefix("-ERR").strip(),
                                  job)
    except (EslTimeout, ProtocolError, OSError) as exc:
        raise InboundError(f"FreeSWITCH's event socket at {address[0]}:{address[1]}: {exc}") from None
    finally:
        sock.close()


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
