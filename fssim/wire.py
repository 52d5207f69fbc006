"""The simulator's own ESL frame writer and reader, byte for byte as FreeSWITCH 1.10.12 writes them.

What FreeSWITCH sends (see ../shared/esl-captures/README.md):

* command reply: ``Content-Type: command/reply\\nReply-Text: +OK\\n\\n``
* api result:    ``Content-Type: api/response\\nContent-Length: N\\n\\n<body>``
* plain event:   ``Content-Length: N\\nContent-Type: text/event-plain\\n\\n`` + ``Name: urlencoded-value\\n`` lines
  + ``\\n``; an event with a body adds ``Content-Length: M`` as its last header and the body after the blank line.

What the controller sends: a command line, optional ``name: value`` header lines, a blank line, and for
``sendmsg`` a body of ``content-length`` bytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence
from urllib.parse import unquote

if TYPE_CHECKING:
    from gevent import socket

Headers = Sequence[tuple[str, str]]

# switch_utils.h SWITCH_URL_UNSAFE; switch_url_encode_opt also encodes bytes < 0x20 and > 0x7e and keeps an
# existing uppercase %XX escape (double_encode false, as switch_event_serialize calls it).
_URL_UNSAFE = frozenset(b"\r\n #%&+:;<=>?@[\\]^`{|}\"")
_UPPER_HEX = frozenset(b"0123456789ABCDEF")
_NEEDS_ENCODING = re.compile(r'[^\x20-\x7e]|[#%&+:;<=>?@\[\\\]^`{|}" ]')
DISCONNECT_BODY = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def url_encode(value: str) -> str:
    """Encode a header value as switch_url_encode does: `+33 6` -> `%2B33%206`, `%(` -> `%25(`."""
    if not _NEEDS_ENCODING.search(value):
        return value
    data = value.encode("utf-8")
    out: list[str] = []
    for i, byte in enumerate(data):
        keeps_escape = byte == 0x25 and i + 2 < len(data) and data[i + 1] in _UPPER_HEX and data[i + 2] in _UPPER_HEX
        if not keeps_escape and (byte < 0x20 or byte > 0x7E or byte in _URL_UNSAFE):
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def url_decode(value: str) -> str:
    """Decode %XX escapes (either case) as switch_url_decode does; `+` stays `+`."""
    return unquote(value, errors="replace") if "%" in value else value


def header_block(headers: Headers, encode: bool) -> bytes:
    """`Name: value\\n` lines; names are never encoded, values are when `encode`."""
    return "".join(f"{name}: {url_encode(value) if encode else value}\n" for name, value in headers).encode("utf-8")


def command_reply(text: str, extra: Headers = ()) -> bytes:
    """`Content-Type: command/reply\\nReply-Text: <text>\\n` (+ extra headers) `\\n`."""
    return header_block([("Content-Type", "command/reply"), ("Reply-Text", text), *extra], encode=False) + b"\n"


def api_response(body: str) -> bytes:
    """`Content-Type: api/response\\nContent-Length: N\\n\\n<body>` (the body as the api returned it)."""
    data = body.encode("utf-8")
    return header_block([("Content-Type", "api/response"), ("Content-Length", str(len(data)))], False) + b"\n" + data


def event_plain(headers: Headers, body: str | None = None) -> bytes:
    """A `text/event-plain` frame; a body adds the inner `Content-Length` header and follows the blank line."""
    inner = header_block(headers, encode=True)
    if body is not None:
        data = body.encode("utf-8")
        inner += f"Content-Length: {len(data)}\n\n".encode() + data
    else:
        inner += b"\n"
    outer = [("Content-Length", str(len(inner))), ("Content-Type", "text/event-plain")]
    return header_block(outer, encode=False) + b"\n" + inner


def connect_reply(channel_headers: Headers, async_mode: bool = True, full: bool = True) -> bytes:
    """The outbound `connect` reply: the whole channel event, URL-encoded, then the reply headers (captures 04, 13:
    `Socket-Mode: async|static`, `Control: full|single-channel`, from the socket app's words)."""
    tail = [("Content-Type", "command/reply"), ("Reply-Text", "+OK\n"),
            ("Socket-Mode", "async" if async_mode else "static"), ("Control", "full" if full else "single-channel")]
    return header_block([*channel_headers, *tail], encode=True) + b"\n"


def linger_notice(uuid: str, channel_name: str, linger_seconds: int) -> bytes:
    """`text/disconnect-notice` with `Content-Disposition: linger` (`Linger-Time: -1` when lingering forever)."""
    return header_block([
        ("Content-Type", "text/disconnect-notice"), ("Controlled-Session-UUID", uuid),
        ("Content-Disposition", "linger"), ("Channel-Name", channel_name),
        ("Linger-Time", str(linger_seconds)), ("Content-Length", "0"),
    ], encode=False) + b"\n"


def disconnect_notice(uuid: str | None) -> bytes:
    """The last frame before FreeSWITCH closes the socket (`Content-Disposition: disconnect` + the ClueCon body)."""
    data = DISCONNECT_BODY.encode()
    headers: list[tuple[str, str]] = [("Content-Type", "text/disconnect-notice")]
    if uuid:
        headers += [("Controlled-Session-UUID", uuid), ("Content-Disposition", "disconnect")]
    headers.append(("Content-Length", str(len(data))))
    return header_block(headers, encode=False) + b"\n" + data


def corrupt(frame: bytes, fault: str) -> bytes:
    """A deliberately broken event frame: Content-Length 10 short/long of the body, or missing."""
    head, _, body = frame.partition(b"\n\n")
    if fault == "missing_length":
        return b"Content-Type: text/event-plain\n\n" + body
    delta = -10 if fault == "short_length" else 10
    return f"Content-Length: {len(body) + delta}\nContent-Type: text/event-plain\n\n".encode() + body


@dataclass
class Frame:
    """One parsed frame: `headers` as written on the wire (values not decoded), `body` bytes."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def event(self) -> dict[str, str]:
        """Decoded event headers: the body of a `text/event-plain`, or the header block of a connect reply."""
        if self.content_type == "text/event-plain":
            return parse_event_body(self.body).headers
        if "Event-Name" in self.headers:
            return {name: url_decode(value) for name, value in self.headers.items()}
        return {}

    @property
    def event_name(self) -> str | None:
        return self.event.get("Event-Name")


@dataclass
class EventBody:
    """A decoded plain event: `headers` by name, `pairs` in wire order (repeats kept), its own body."""

    headers: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def parse_event_body(data: bytes) -> EventBody:
    """Split a plain event into decoded headers (wire order in `pairs`) and its own body."""
    block, _, rest = data.partition(b"\n\n")
    parsed = EventBody()
    for line in block.decode("utf-8").split("\n"):
        if not line:
            continue
        name, _, value = line.partition(": ")
        parsed.pairs.append((name, url_decode(value)))
        parsed.headers[name] = url_decode(value)
    if "Content-Length" in parsed.headers:
        parsed.body = rest[: int(parsed.headers["Content-Length"])]
    return parsed


def parse_frame(raw: bytes) -> Frame:
    """Parse one whole frame (header block, blank line, Content-Length body) as read from either side."""
    block, sep, rest = raw.partition(b"\n\n")
    if not sep:
        block = raw.rstrip(b"\n")
    headers: dict[str, str] = {}
    for line in block.decode("utf-8").split("\n"):
        if ": " in line:
            name, _, value = line.partition(": ")
            headers.setdefault(name, value)
    length = _content_length(headers)
    return Frame(headers, rest[:length] if length is not None else rest)


def _content_length(headers: dict[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == "content-length":
            return int(value)
    return None


@dataclass
class Command:
    """A command from the controller: `name` ("sendmsg", "api", "linger"...), its argument, headers, body."""

    name: str
    arg: str
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        """Header lookup ignoring case, as FreeSWITCH's sendmsg parser does."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def app(self) -> str | None:
        return self.header("execute-app-name")

    @property
    def app_arg(self) -> str | None:
        """The argument FreeSWITCH runs the app with (switch_ivr_parse_event): `execute-app-arg`, else the
        body when `content-type` is text/plain; a body with any other content type is ignored."""
        header = self.header("execute-app-arg")
        if header:
            return header
        if self.body and (self.header("content-type") or "").lower() == "text/plain":
            return self.body.decode("utf-8")
        return None


class FrameReader:
    """Read controller commands off a socket: lines up to a blank line, then `content-length` body bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            return False
        self._buffer += data
        return True

    def read_command(self) -> Command | None:
        """Next command, or None when the controller closed the connection."""
        while True:
            while self._buffer.startswith(b"\n") or self._buffer.startswith(b"\r\n"):
                self._buffer = self._buffer[1:] if self._buffer[0:1] == b"\n" else self._buffer[2:]
            end = self._buffer.find(b"\n\n")
            if end >= 0:
                break
            if not self._fill():
                return None
        block = self._buffer[:end]
        self._buffer = self._buffer[end + 2 :]
        lines = block.decode("utf-8", errors="replace").replace("\r", "").split("\n")
        name, _, arg = lines[0].strip().partition(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
        body = b""
        length = _content_length(headers)
        if length:
            while len(self._buffer) < length:
                if not self._fill():
                    return None
            body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Command(name, arg.strip(), headers, body, block + b"\n\n" + body)
