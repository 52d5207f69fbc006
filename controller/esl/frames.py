"""ESL framing: the errors every ESL wait may raise, the frame reader, and the command-frame writer.

Kept apart from esl.py (the greenswitch session) so both the session and its tests read one definition of a frame:
header lines up to a blank line, each value URL-decoded on its own after the split, then exactly Content-Length
bytes of body; an event's own body (DETECTED_SPEECH results, BACKGROUND_JOB) stays out of its headers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import unquote

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
HANGUP_EVENTS = ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")
_DIGITS = re.compile(r"[0-9]{1,12}")
_ENCODED_BREAK = re.compile(r"%0[aAdD]")


class EslError(Exception):
    """Base of every ESL failure the call code may see."""


class CallHangup(EslError):
    """The channel hung up or the socket closed: raised into every pending wait of the call."""

    def __init__(self, cause: str = "NORMAL_CLEARING") -> None:
        super().__init__(f"call hung up ({cause})")
        self.cause = cause


class EslTimeout(EslError):
    """FreeSWITCH did not answer in time (a command reply or an app completion)."""


class CommandError(EslError):
    """FreeSWITCH replied `-ERR ...` to a command."""


class ExecuteFlushed(EslError):
    """A queued execute was dropped by `uuid_break all`: FreeSWITCH never runs nor completes it."""


class ProtocolError(EslError):
    """A frame that does not follow the ESL framing (missing or bad Content-Length, header without `: `)."""


@dataclass
class Frame:
    """One ESL frame: decoded headers, and the body (for events, the event's own body after its headers)."""

    headers: dict[str, str]
    body: str = ""
    size: int = 0  # bytes on the wire (what an inbox's bound counts)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def var(self, name: str, default: str | None = None) -> str | None:
        """A channel variable as carried by events (`variable_<name>`)."""
        return self.headers.get(f"variable_{name}", default)


def parse_header_block(block: bytes, decode: bool) -> dict[str, str]:
    """Split a header block into lines first, then URL-decode each value alone (names are never encoded).

    The values that hold an escape (a few dozen per event) are decoded in one `unquote` call, joined by line
    breaks, when none of them encodes a line break itself; otherwise one by one.
    """
    headers: dict[str, str] = {}
    escaped: list[str] = []
    for line in block.decode("utf-8", errors="replace").split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                name, value = line[:-1], ""
            else:
                raise ProtocolError(f"header line without ': ': {line[:80]!r}")
        headers[name] = value
        if decode and "%" in value:  # most values have no escape
            escaped.append(name)
    if escaped:
        joined = "\n".join([headers[name] for name in escaped])
        if _ENCODED_BREAK.search(joined):
            headers.update((name, unquote(headers[name])) for name in escaped)
        else:
            headers.update(zip(escaped, unquote(joined).split("\n")))
    return headers


def content_length(value: str, what: str = "") -> int:
    """A Content-Length value: ASCII digits only (`int()` also takes `+5`, `1_0`, ` 5` and `١٢`)."""
    if not _DIGITS.fullmatch(value):
        raise ProtocolError(f"{what}Content-Length is not a number of ASCII digits: {value[:40]!r}")
    return int(value)


def parse_event_body(content_type: str, body: bytes) -> Frame:
    """Turn an event frame's body into a Frame: plain events are headers + optional body; JSON is one object."""
    if content_type == "text/event-json":
        try:
            doc = json.loads(body.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise ProtocolError(f"event-json body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ProtocolError("event-json body is not an object")
        inner = str(doc.pop("_body", ""))
        return Frame({str(k): str(v) for k, v in doc.items()}, inner)
    head, sep, rest = body.partition(b"\n\n")
    headers = parse_header_block(head, decode=content_type != "text/event-xml")
    inner = b""
    if sep and "Content-Length" in headers:
        inner = rest[:content_length(headers["Content-Length"], "event ")]
    return Frame(headers, inner.decode("utf-8", errors="replace"))


class FrameReader:
    """Reads whole frames from a socket file: header lines up to a blank line, then exactly Content-Length bytes."""

    def __init__(self, fileobj: Any) -> None:
        self._f = fileobj

    def read(self) -> Frame | None:
        """Next frame, or None at a clean end of stream; ProtocolError on broken framing."""
        block = bytearray()
        while True:
            line = self._f.readline(MAX_HEADER_BYTES + 1)
            if not line:
                if block:
                    raise ProtocolError("connection closed in the middle of a header block")
                return None
            if line == b"\n":
                if not block:
                    continue  # stray blank line between frames
                break
            block += line
            if len(block) > MAX_HEADER_BYTES:
                raise ProtocolError(f"header block larger than {MAX_HEADER_BYTES} bytes")
        outer = parse_header_block(bytes(block), decode=False)
        body = b""
        if "Content-Length" in outer:
            size = content_length(outer["Content-Length"])
            if size > MAX_BODY_BYTES:
                raise ProtocolError(f"Content-Length {size} out of range 0..{MAX_BODY_BYTES}")
            body = self._read_exact(size)
        elif outer.get("Content-Type", "").startswith("text/event-"):
            raise ProtocolError("event frame without Content-Length")
        ctype = outer.get("Content-Type", "")
        if ctype.startswith("text/event-"):
            frame = parse_event_body(ctype, body)
            frame.headers.setdefault("Content-Type", ctype)
        else:
            if "Event-Name" in outer:  # the outbound `connect` reply: a whole channel event in a reply's headers
                outer = parse_header_block(bytes(block), decode=True)
            frame = Frame(outer, body.decode("utf-8", errors="replace"))
        frame.size = len(block) + len(body)
        return frame

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._f.read(size - len(data))
            if not chunk:
                raise ProtocolError(f"connection closed after {len(data)} of {size} body bytes")
            data += chunk
        return data


def command_frame(command: str, headers: Iterable[tuple[str, str]] = (), body: str | None = None) -> bytes:
    """Encode a command frame; a body always travels with `content-type: text/plain` and its length."""
    for part in [command, *(f"{k}{v}" for k, v in headers)]:
        if "\n" in part or "\r" in part:
            raise ValueError(f"line break in ESL command or header: {part[:60]!r}")
    lines = [command, *(f"{k}: {v}" for k, v in headers)]
    if body is None:
        return ("\n".join(lines) + "\n\n").encode("utf-8")
    payload = body.encode("utf-8")
    lines += ["content-type: text/plain", f"content-length: {len(payload)}"]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + payload


def send_all(sock: Any, data: bytes) -> None:
    """`sock.sendall(data)`, in one `send()` when the kernel takes it all (frames are small: it mostly does);
    gevent's `sendall()` adds a getsockopt() syscall to every call."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])
