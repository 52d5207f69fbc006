"""A scripted FreeSWITCH for the ESL floor's tests: raw frames over real TCP against a `Listener` on 127.0.0.1.

The peer is written by hand (not the simulator) so each test controls every byte, including the ones FreeSWITCH
would never send.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator
from urllib.parse import quote

import gevent
import gevent.socket
import pytest

from controller.esl.listener import Listener
from controller.esl.session import EslSession

UUID = "0a160000-0000-4000-8000-00000000c001"
CONNECT_REPLY = (
    b"Event-Name: CHANNEL_DATA\nCore-UUID: core-1\nUnique-ID: 0a160000-0000-4000-8000-00000000c001\nChannel-Name: loopback/agent-b\n"
    b"Caller-Caller-ID-Number: %2B33612345678\nCaller-Caller-ID-Name: ESL%20Test\nAnswer-State: ringing\n"
    b"variable_switchboard_agent: support\nContent-Type: command/reply\nReply-Text: %2BOK%0A\n"
    b"Socket-Mode: async\nControl: full\n\n"
)
OK = b"Content-Type: command/reply\nReply-Text: +OK\n\n"


def event(headers: list[tuple[str, str]], body: str = "", ctype: str = "text/event-plain") -> bytes:
    """One event frame as FreeSWITCH writes it: URL-encoded values, an optional body with its own length."""
    lines = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in headers)
    if body:
        lines += f"Content-Length: {len(body.encode())}\n\n{body}"
    else:
        lines += "\n"
    data = lines.encode()
    return f"Content-Length: {len(data)}\nContent-Type: {ctype}\n\n".encode() + data


class Peer:
    """A scripted FreeSWITCH: connects to the listener and reads what the controller sends."""

    def __init__(self, port: int) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def read_command(self) -> tuple[list[str], bytes]:
        lines = []
        while True:
            line = self.file.readline()
            assert line, "controller closed the socket"
            if line == b"\n":
                break
            lines.append(line.decode().rstrip("\n"))
        body = b""
        for line in lines:
            if line.lower().startswith("content-length: "):
                body = self.file.read(int(line.split(": ")[1]))
        return lines, body

    def send(self, data: bytes) -> None:
        gevent.sleep(0.02)  # let the controller's greenlet reach its wait, as on a real call
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Listener]]:
    """Run a Listener on an ephemeral port with the given per-call handler."""
    started = []

    def start(handler: Callable[[EslSession], Any], **kwargs: Any) -> Listener:
        listener = Listener(handler, host="127.0.0.1", port=0, **kwargs)
        listener.bind()
        started.append((listener, gevent.spawn(listener.listen)))
        listener.ready.wait(2)
        return listener

    yield start
    for listener, greenlet in started:
        listener.stop()
        greenlet.kill()


def connected(port: int) -> Peer:
    """A peer that has read `connect` and answered it with CONNECT_REPLY."""
    peer = Peer(port)
    lines, _ = peer.read_command()
    assert lines == ["connect"]
    peer.send(CONNECT_REPLY)
    return peer
