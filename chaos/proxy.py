"""A TCP proxy between the simulator (FreeSWITCH) and `switchboard serve`, to break one connection for real.

It forwards whole ESL frames from FreeSWITCH (headers to the blank line, then Content-Length bytes), so a
fault can be injected between two frames: `cut_on` closes both sockets as soon as the controller sends
bytes containing it (e.g. the `bridge` of a transfer); `flood` writes events for the call to the controller
as fast as the socket takes them.
"""
from __future__ import annotations

from typing import Callable, Optional
from urllib.parse import quote

import gevent
import gevent.event
import gevent.lock
from gevent import socket


def event_frame(uuid: str, n: int) -> bytes:
    """A CHANNEL_EXECUTE for `uuid` as FreeSWITCH writes it (text/event-plain, URL-encoded values)."""
    headers = [("Event-Name", "CHANNEL_EXECUTE"), ("Core-UUID", "chaos-core"), ("Unique-ID", uuid),
               ("Application", "playback"), ("Application-Data", f"silence_stream://{n}"),
               ("Event-Sequence", str(n))]
    headers += [(f"variable_sb_chaos_{i}", f"value {i} of a channel variable") for i in range(60)]  # ~2.7 kB, the
    # median size of FreeSWITCH's events in ../shared/esl-captures/
    body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in headers).encode() + b"\n"
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


class Link:
    """One proxied connection: FreeSWITCH side, controller side, the call's uuid once its connect reply passed."""

    def __init__(self, fs: socket.socket, controller: socket.socket) -> None:
        self.fs, self.controller = fs, controller
        self.uuid: Optional[str] = None
        self.connected = gevent.event.Event()  # the connect reply reached the controller
        self.dropped = False  # cut by `cut_on`, not ended by either side
        self._write = gevent.lock.Semaphore()

    def to_controller(self, data: bytes) -> None:
        with self._write:
            self.controller.sendall(data)

    def close(self) -> None:
        for sock in (self.fs, self.controller):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def flood(self, events: int, within_s: float = 1.0) -> float:
        """Write `events` events for this call in batches spread over `within_s`; real seconds it took."""
        started = gevent.get_hub().loop.now()
        batch = 200
        for first in range(0, events, batch):
            chunk = b"".join(event_frame(self.uuid or "", n) for n in range(first, min(events, first + batch)))
            try:
                self.to_controller(chunk)
            except OSError:  # the controller ended the call: the rest has nowhere to go
                break
            gevent.sleep(within_s * batch / events / 2)
        gevent.get_hub().loop.update_now()
        return gevent.get_hub().loop.now() - started


class Proxy:
    """Listens on an ephemeral port; each connection is proxied to `target` and kept in `links`."""

    def __init__(self, target: tuple[str, int], cut_on: Optional[bytes] = None,
                 on_link: Optional[Callable[[Link], None]] = None) -> None:
        self.target, self.cut_on, self.on_link = target, cut_on, on_link
        self.links: list[Link] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.port = self.server.getsockname()[1]
        self._accept = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            fs, _ = self.server.accept()
            controller = socket.create_connection(self.target)
            link = Link(fs, controller)
            self.links.append(link)
            gevent.spawn(self._down, link)
            gevent.spawn(self._up, link)

    def _down(self, link: Link) -> None:
        """Controller -> FreeSWITCH, cut when `cut_on` passes."""
        try:
            while True:
                data = link.controller.recv(65536)
                if not data:
                    break
                if self.cut_on is not None and self.cut_on in data:
                    link.dropped = True
                    break
                link.fs.sendall(data)
        except OSError:
            pass
        link.close()

    def _up(self, link: Link) -> None:
        """FreeSWITCH -> controller, frame by frame."""
        buffer = b""
        try:
            while True:
                while b"\n\n" not in buffer:
                    data = link.fs.recv(65536)
                    if not data:
                        raise EOFError
                    buffer += data
                head, _, rest = buffer.partition(b"\n\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    data = link.fs.recv(65536)
                    if not data:
                        raise EOFError
                    rest += data
                frame, buffer = head + b"\n\n" + rest[:length], rest[length:]
                link.to_controller(frame)
                if link.uuid is None and b"command/reply" in head:
                    uuid = next((line.split(b":", 1)[1].strip() for line in head.split(b"\n")
                                 if line.startswith(b"Unique-ID:")), b"")
                    link.uuid = uuid.decode()
                    link.connected.set()
                    if self.on_link is not None:
                        gevent.spawn(self.on_link, link)
        except (OSError, EOFError, ValueError):
            pass
        link.close()

    def close(self) -> None:
        self._accept.kill()
        self.server.close()
        for link in self.links:
            link.close()
