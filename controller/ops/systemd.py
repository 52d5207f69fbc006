"""systemd's notify protocol (`Type=notify`), without libsystemd: one datagram per state change on $NOTIFY_SOCKET.

`READY=1` once the process does its job (serve: the outbound socket listens; worker: it holds its consumer
group), `RELOADING=1` with `MONOTONIC_USEC` while a SIGHUP reload runs then `READY=1` again, `STOPPING=1` when
the drain starts. With `WatchdogSec=` set, systemd passes $WATCHDOG_USEC and a greenlet sends `WATCHDOG=1` every
half of it, but only while the health checks pass: a hub that stalls sends nothing (the greenlet never runs),
and neither does a `serve` that stopped listening or whose worker died, so systemd restarts it after
`WatchdogSec`. A Redis outage is not one of them: calls go on without it and a restart would cut them.
Without $NOTIFY_SOCKET (a shell, the tests, another supervisor) every call here does nothing.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable, Mapping

import gevent
import gevent.event

log = logging.getLogger("switchboard.systemd")

Health = Callable[[], tuple[bool, dict[str, Any]]]  # (healthy, what each part says), as ops.metrics.health gives


def _address(name: str) -> str | bytes:
    """A socket path, or an abstract name (`@name`, which the kernel spells with a leading NUL)."""
    return b"\0" + name[1:].encode() if name.startswith("@") else name


class Notifier:
    """The process's channel to systemd; `enabled` is False when no service manager listens."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_name = env.get("NOTIFY_SOCKET") or None
        if self.socket_name is not None and not self.socket_name.startswith(("/", "@")):
            log.error("NOTIFY_SOCKET=%r is neither a path nor an @abstract name: systemd will not hear from this "
                      "process (a Type=notify unit then fails to start)", self.socket_name)
            self.socket_name = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is for: a child that inherited the variables is not it
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def notify(self, **fields: Any) -> bool:
        """Send `KEY=value` lines in one datagram; False (logged) when it could not be sent."""
        if self.socket_name is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, _address(self.socket_name))
        except OSError as exc:
            log.error("cannot notify systemd on %s: %s", self.socket_name, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def reloading(self) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC time in µs, as systemd 253+ wants it; `ready()` when done."""
        return self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
                           STATUS="reloading the configuration")

    def stopping(self, status: str) -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def watch(self, healthy: Health, stop: gevent.event.Event) -> gevent.Greenlet | None:
        """A greenlet pinging the watchdog every WATCHDOG_USEC/2 while `healthy()` says so, until `stop` is set;
        None when systemd asked for no watchdog."""
        if self.socket_name is None or self.watchdog_s is None:
            return None
        return gevent.spawn(self._watch, healthy, stop, self.watchdog_s / 2)

    def _watch(self, healthy: Health, stop: gevent.event.Event, interval_s: float) -> None:
        failing: list[str] | None = None
        while not stop.is_set():
            try:
                ok, parts = healthy()
            except Exception as exc:  # a check that raises is a failed check, said once like the others
                ok, parts = False, {"health check": f"raised {exc!r}"}
            if ok:
                if failing is not None:
                    log.info("healthy again (%s): watchdog pings resume", ", ".join(failing))
                    self.notify(STATUS="healthy")
                failing = None
                self.notify(WATCHDOG=1)
            else:
                down = [name for name, value in parts.items() if value is not True]
                if down != failing:
                    log.error("unhealthy (%s): no watchdog ping, systemd restarts this process after WatchdogSec "
                              "(%.0f s) unless it recovers", ", ".join(down), interval_s * 2)
                    self.notify(STATUS=f"unhealthy: {', '.join(down)}")
                failing = down
            stop.wait(interval_s)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
