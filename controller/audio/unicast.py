"""A UDP receiver on loopback for the audio FreeSWITCH streams with `sendmsg call-command: unicast`.

Capture 15: FreeSWITCH sends 320-byte datagrams (20 ms of L16 at 8 kHz) 50 times a second from `local-port`
to `remote-port`, for as long as the channel stays parked; the first app that runs ends the stream for good.
The receiver binds 127.0.0.1 on an ephemeral port with a gevent socket (reading never blocks the hub), keeps at
most `max_bytes` (older audio is dropped: a wait only needs the last seconds), and is closed by its owner at
the end of every wait.
"""
from __future__ import annotations

import socket as _socket
from typing import Optional

import gevent
from gevent import socket

PACKET_BYTES = 320
MAX_DATAGRAM = 4096


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody holds on `host` now: where FreeSWITCH sends from (`local-port`)."""
    probe = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        probe.bind((host, 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


class UnicastReceiver:
    """Binds at construction; `take()` returns the bytes received since the last take; `close()` ends it."""

    def __init__(self, host: str = "127.0.0.1", max_bytes: int = 16000 * 10) -> None:
        self.host = host
        self.max_bytes = max_bytes
        self.packets = 0
        self.dropped_bytes = 0
        self._buffer = bytearray()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._reader: Optional[gevent.Greenlet] = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(MAX_DATAGRAM)
            except OSError:
                return
            self.packets += 1
            self._buffer += data
            extra = len(self._buffer) - self.max_bytes
            if extra > 0:
                extra += extra % 2  # keep whole 16-bit samples
                del self._buffer[:extra]
                self.dropped_bytes += extra

    def take(self) -> bytes:
        """Everything received since the last `take` (at most `max_bytes`)."""
        data, self._buffer = bytes(self._buffer), bytearray()
        return data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.kill(block=False)
            self._reader = None
        self._sock.close()

    def __enter__(self) -> "UnicastReceiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
