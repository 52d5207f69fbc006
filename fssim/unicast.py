"""`sendmsg call-command: unicast`: the channel's audio as UDP datagrams, as FreeSWITCH 1.10.12 streams it.

Capture 15: `+OK` and no event; 320-byte datagrams (20 ms of L16 at 8 kHz) 50 times a call second, sent from
local-ip:local-port to remote-ip:remote-port; every byte 0xff while nothing plays (CNG fill); the first app that
runs on the channel (even `detect_speech resume`) ends the stream for good. FreeSWITCH's defaults for missing
headers are kept (127.0.0.1, ports 8025 and 8026, udp). What plays is the scenario's far-end audio
(`call.far_audio`: a hold's `audio`, an `audio` step, `speech` while the caller talks), from fssim.sounds.
"""
from __future__ import annotations

from functools import lru_cache

import gevent
from gevent import socket

from fssim import wire
from fssim.ports import CallPort
from fssim.sounds import RATE, sound

PACKET_SAMPLES = 160  # 20 ms at 8 kHz: 320 bytes of L16
LOOP_S = 30.0  # each sound is generated once, this long, and looped
_CNG = b"\xff" * (2 * PACKET_SAMPLES)


@lru_cache(maxsize=None)
def _looped(kind: str) -> bytes:
    return sound(kind, LOOP_S).astype("<i2").tobytes()


class UnicastStream:
    """One stream, from `start` until `stop` (an app ran, the channel hung up, or a new unicast replaced it)."""

    def __init__(self, call: CallPort, local: tuple[str, int], remote: tuple[str, int]) -> None:
        self.call = call
        self.remote = remote
        self.sent = 0
        self._positions: dict[str, int] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(local)
        self._greenlet = gevent.spawn(self._run)

    def packet(self) -> bytes:
        """The next 20 ms of what the far end plays (each sound goes on where it left off)."""
        kind = self.call.far_audio
        if kind == "silence":
            return _CNG
        data = _looped(kind)
        at = self._positions.get(kind, 0)
        size = 2 * PACKET_SAMPLES
        chunk = data[at:at + size]
        self._positions[kind] = (at + size) % (len(data) - len(data) % size)
        return chunk if len(chunk) == size else _CNG

    def _run(self) -> None:
        clock = self.call.clock
        period = clock.scaled(PACKET_SAMPLES / RATE)
        started = clock.monotonic()
        while self.call.channel.up:
            due = int((clock.monotonic() - started) / period) + 1
            while self.sent < due:
                try:
                    self._sock.sendto(self.packet(), self.remote)
                except OSError:
                    return
                self.sent += 1
            gevent.sleep(max(period, 0.005))

    def stop(self) -> None:
        self._greenlet.kill(block=False)
        self._sock.close()


def start_unicast(call: CallPort, command: wire.Command) -> UnicastStream | None:
    """The stream a `sendmsg` unicast asks for (None when its local port cannot be bound: FreeSWITCH logs it and
    streams nothing, still replying +OK)."""
    def header(name: str, default: str) -> str:
        return (command.header(name) or default).strip()

    transport = header("transport", "udp").lower()
    try:
        local = (header("local-ip", "127.0.0.1"), int(header("local-port", "8025")))
        remote = (header("remote-ip", "127.0.0.1"), int(header("remote-port", "8026")))
    except ValueError:
        call.note("unicast with a port that is not a number: FreeSWITCH streams nothing")
        return None
    if transport != "udp":
        call.note(f"unicast transport {transport!r}: the simulator streams udp only")
        return None
    try:
        stream = UnicastStream(call, local, remote)
    except OSError as exc:
        call.note(f"unicast: cannot bind {local[0]}:{local[1]} ({exc}): nothing is streamed")
        return None
    call.note(f"unicast: streaming {call.far_audio} from {local[1]} to {remote[0]}:{remote[1]}")
    return stream

