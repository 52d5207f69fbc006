"""The outbound ESL server: FreeSWITCH's `socket` app connects here, one greenlet per call, graceful stop.

Built on greenswitch's OutboundESLServer (its connection bookkeeping and `max_connections`), with its accept loop
replaced: greenswitch polls a non-blocking `accept()` every 100 ms (about 100 ms added to every new call) and
calls `sys.exit()` when asked to bind port 0. Here `accept()` blocks cooperatively, so a call is picked up the
moment FreeSWITCH connects, and port 0 binds an ephemeral port (tests, the simulator, benchmarks).

A failing `accept()` (EMFILE at the open-file limit, ENOBUFS...) does not end the loop, which would leave the port
listening with nobody taking calls: it is counted (`accept_errors`), logged at most once per 10 s, and retried after
10 ms doubling up to 1 s; connections meanwhile wait in the kernel's backlog.

With `connect_timeout` the listener does the set-up itself, before a connection takes a call slot: `connect` and
its reply within that bound (FreeSWITCH answers in milliseconds). A peer that connects and says nothing holds no
slot, and at most `max_connections` such set-ups wait at once: a new one closes the oldest. So a flood of idle or
slow connections cannot starve real calls, and each costs a descriptor for `connect_timeout` seconds at most.
"""
from __future__ import annotations

import logging
import socket as pysocket
from typing import Callable

import gevent
import gevent.event
import gevent.socket
from greenswitch import esl as gs

from controller.esl.handoff import RELEASE_TIMEOUT_S, HandoffGate
from controller.esl.frames import EslTimeout
from controller.esl.session import EslError, EslSession
from controller.log import Throttle

log = logging.getLogger("switchboard.server")
ACCEPT_RETRY_FIRST_S = 0.01  # the first pause after a failed accept(); it doubles while accept() keeps failing
ACCEPT_RETRY_MAX_S = 1.0
CLOSE_GRACE_S = 5.0  # after the drain timeout, how long the calls whose socket was closed get to write their record


class Listener(gs.OutboundESLServer):
    """Accepts FreeSWITCH outbound connections and runs `handler(session)` in one greenlet per call."""

    def __init__(self, handler: Callable[[EslSession], None], host: str = "127.0.0.1", port: int = 8084,
                 max_connections: int = 200, command_timeout: float = 10.0,
                 connect_timeout: float | None = None, on_refusal: Callable[[str], None] | None = None) -> None:
        super().__init__(bind_address=host, bind_port=[port], application=handler,
                         max_connections=max_connections)
        self.handler = handler
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.on_refusal = on_refusal  # told "refused" (over max_connections) or "setup_failed" (no connect reply)
        self._setting_up: dict[EslSession, None] = {}  # connections awaiting their connect reply, oldest first
        self.setup_failures = 0
        self._setup_log = Throttle()
        self.refused = 0
        self.accepted = 0
        self.accept_errors = 0
        self._accept_log = Throttle()
        self.ready = gevent.event.Event()
        self.gate = HandoffGate()
        self._sessions: dict[gevent.Greenlet, EslSession] = {}

    @property
    def accepting(self) -> bool:
        """Bound and taking calls (false before `listen()` and after `stop()`)."""
        return self.ready.is_set() and bool(self._running)

    @property
    def port(self) -> int:
        return self.bound_port or 0

    def bind(self) -> int:
        """Bind and listen now (so the port is known before `listen()` runs its loop); returns the port."""
        server = gevent.socket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
        server.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
        try:
            server.bind((self.bind_address, self.bind_port[0]))
        except OSError as exc:
            server.close()
            raise OSError(f"cannot listen on {self.bind_address}:{self.bind_port[0]}: {exc.strerror}; "
                          "is another Switchboard running, or pick another server.port") from None
        server.listen(256)
        self.server = server
        self.bound_port = server.getsockname()[1]
        return self.bound_port

    def listen(self) -> None:
        """Accept connections until `stop()`; each accepted socket gets its own greenlet at once."""
        if self.server is None:
            self.bind()
        self._running = True
        self.ready.set()
        log.info("listening for FreeSWITCH on %s:%s", self.bind_address, self.bound_port)
        failed = 0
        while self._running:
            try:
                sock, address = self.server.accept()
            except OSError as exc:
                if not self._running:
                    break
                failed += 1
                pause = min(ACCEPT_RETRY_MAX_S, ACCEPT_RETRY_FIRST_S * 2 ** min(failed - 1, 16))
                self._accept_failed(exc, pause)
                gevent.sleep(pause)
                continue
            if failed:
                log.warning("accepting FreeSWITCH connections again after %d failed accept()", failed)
                failed = 0
            gevent.spawn(self._accept, sock, address)

    def _accept_failed(self, exc: OSError, pause: float) -> None:
        self.accept_errors += 1
        if count := self._accept_log.hit():
            log.error("cannot accept FreeSWITCH connections: %s (%d failure(s) since the last line, retrying in "
                      "%.2fs; calls wait in the listen backlog meanwhile). At 'Too many open files' raise the "
                      "open-file limit (LimitNOFILE in the systemd unit, ulimit -n) above server.max_connections "
                      "plus a margin, or lower server.max_connections", exc.strerror or exc, count, pause)

    def _accept(self, sock: gevent.socket.socket, address: object) -> None:
        try:
            sock.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        except OSError:  # FreeSWITCH already gave up on this connection
            sock.close()
            return
        session = EslSession(sock, address, command_timeout=self.command_timeout, gate=self.gate)
        if not self.gate.wait():
            log.warning("a hand-off's old session is still leaving its channel after %.0f s; starting this call "
                        "anyway", RELEASE_TIMEOUT_S)
        if self.connect_timeout is not None and not self._set_up(session):
            return
        if self.connection_count >= self.max_connections:
            self._refuse(session)
            return
        self.connection_count += 1
        self.accepted += 1
        greenlet = gevent.getcurrent()
        self._greenlets.add(greenlet)
        self._sessions[greenlet] = session
        try:
            self.handler(session)
        except Exception:
            log.exception("call handler failed", extra={"uuid": session.uuid or "-"})
        finally:
            self.connection_count -= 1
            self._greenlets.discard(greenlet)
            self._sessions.pop(greenlet, None)
            session.close()

    def _set_up(self, session: EslSession) -> bool:
        """`connect` within `connect_timeout`, holding no call slot; False (socket closed) when the peer is silent,
        is not FreeSWITCH's outbound socket, or a newer set-up pushed it out."""
        if len(self._setting_up) >= self.max_connections:
            oldest = next(iter(self._setting_up))
            self._setting_up.pop(oldest)
            oldest.connected = False  # no `exit` to a peer that answers nothing
            oldest.close()  # its connect() fails at once: the slow peer gives way to the new connection
        self._setting_up[session] = None
        try:
            session.connect(timeout=self.connect_timeout)
            return True
        except EslError as exc:
            self.setup_failures += 1
            self._count("setup_failed")
            if isinstance(exc, EslTimeout):
                session.connected = False  # no `exit` to a peer that did not answer `connect`
            if count := self._setup_log.hit():
                log.warning("closing a connection without a call: %s (%d such since the last line; a peer that "
                            "is not FreeSWITCH, or one slower than server.connect_timeout_s=%s)", exc, count,
                            self.connect_timeout)
            session.close()
            return False
        finally:
            self._setting_up.pop(session, None)

    def _refuse(self, session: EslSession) -> None:
        """Over `max_connections`: read the uuid for the log, then hand the call back to the dialplan."""
        self.refused += 1
        self._count("refused")
        try:
            session.connect(timeout=2.0 if self.connect_timeout is None else self.connect_timeout)
        except EslError:
            pass
        log.warning("refusing call: %d/%d calls in progress (server.max_connections); the dialplan's "
                    "next action takes it", self.connection_count, self.max_connections,
                    extra={"uuid": session.uuid or "-"})
        session.close()

    def _count(self, what: str) -> None:
        if self.on_refusal is not None:
            try:
                self.on_refusal(what)
            except Exception:  # counting must never cost a call
                log.exception("counting a %s connection failed", what)

    def stop(self) -> None:
        """Stop accepting new calls; live calls go on."""
        self._running = False
        if self.server is not None:
            try:
                self.server.close()
            except OSError:
                pass

    def drain(self, timeout: float) -> int:
        """Stop accepting, let live calls end for up to `timeout` s, then close what is left; returns that count."""
        self.stop()
        live = list(self._greenlets)
        if live:
            log.info("draining %d live call(s) for up to %.0fs", len(live), timeout)
            gevent.joinall(live, timeout=timeout)
        left = [g for g in self._greenlets if not g.dead]
        for greenlet in left:
            session = self._sessions.get(greenlet)
            log.warning("drain timeout: closing the socket; the dialplan's safety net takes the call",
                        extra={"uuid": session.uuid if session else "-"})
            if session is not None:
                session.connected = False
                session.ended_here = "DRAIN_TIMEOUT"
                session.close()
        gevent.joinall(left, timeout=CLOSE_GRACE_S)  # a call whose socket closed ends as any cut call: its record
        for greenlet in left:
            greenlet.kill(block=False)
        return len(left)
