"""Every new outbound-socket connection has a bounded set-up, and idle or slow peers cannot take the calls' slots.

The listener sends `connect` and waits `server.connect_timeout_s` for the reply before the connection counts
against `max_connections`; at most that many set-ups wait at once, a new one closing the oldest. Real TCP peers
on 127.0.0.1, a real controller and the simulator.
"""
from __future__ import annotations

import resource
import gevent.socket
import subprocess
import sys
from pathlib import Path

from tests.support.controller import call, running, write_config

BIN = str(Path(sys.executable).with_name("switchboard"))


def _idle_peer(port: int) -> gevent.socket.socket:
    """A peer that reads `connect` and never answers it."""
    peer = gevent.socket.create_connection(("127.0.0.1", port), timeout=10)
    assert peer.recv(64).startswith(b"connect")
    return peer


def _closed_by_controller(peer: gevent.socket.socket) -> bool:
    try:
        return peer.recv(64) == b""
    except OSError:
        return True


def test_idle_connections_hold_no_call_slot_and_a_real_call_is_served(tmp_path, session_redis):
    config = write_config(tmp_path, max_connections=3, connect_timeout_s=60)
    with running(config, session_redis) as runtime:
        idle = [_idle_peer(runtime.listener.port) for _ in range(10)]
        rec = call(runtime, {"script": [{"say": "au revoir"}]})
        assert "Bonjour, que puis-je faire pour vous ?" in rec.spoken  # served while 3 idle set-ups still wait
        closed = [_closed_by_controller(peer) for peer in idle[:7]]  # the oldest gave way to newer connections
        assert all(closed) and runtime.listener.setup_failures >= 7
        assert runtime.store.counters()["calls:setup_failed"] >= 7  # where metrics and operators read counters
        for peer in idle:
            peer.close()


def test_a_peer_that_never_answers_connect_is_closed_after_connect_timeout(tmp_path, session_redis):
    config = write_config(tmp_path, connect_timeout_s=0.3)
    with running(config, session_redis) as runtime:
        peer = _idle_peer(runtime.listener.port)
        assert _closed_by_controller(peer)  # within the peer's 10 s socket timeout, long before
        peer.close()
        assert runtime.listener.setup_failures == 1 and runtime.listener.accepted == 0


def _at_most_200_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


def test_serve_says_when_max_connections_cannot_fit_the_open_file_limit(tmp_path):
    config = write_config(tmp_path, max_connections=1000)
    result = subprocess.run([BIN, "serve", "--port", "0", "--config", str(config)], capture_output=True, text=True,
                            timeout=60, preexec_fn=_at_most_200_files)
    assert result.returncode == 2, result.stderr
    assert "server.max_connections: 1000 calls need about 2064 open files" in result.stderr
    assert "raise LimitNOFILE" in result.stderr and "lower server.max_connections to 68" in result.stderr
    assert "Traceback" not in result.stderr
