"""`server.metrics_port`: Prometheus metrics and `/healthz` of a running controller, read over real HTTP on
127.0.0.1 after real simulated calls."""
from __future__ import annotations

import json

import gevent
import gevent.socket

from tests.support.controller import call, running, write_config


def _get(port: int, path: str) -> tuple[int, str]:
    with gevent.socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_metrics_count_calls_and_actions_and_healthz_says_what_is_up(tmp_path, session_redis):
    with running(write_config(tmp_path, metrics_port=0), session_redis) as runtime:
        call(runtime, {"agent": "support", "end": "wait", "script": [{"say": "Merci pour tout, au revoir"}]})
        port = runtime.metrics.server_port
        for _ in range(100):  # the record is written just after the simulated caller saw the hang-up
            status, text = _get(port, "/metrics")
            if "switchboard_calls_total{" in text:
                break
            gevent.sleep(0.1)
        health_status, health = _get(port, "/healthz")
        assert (status, health_status) == (200, 200), text
        assert 'switchboard_actions_total{action="end_call",agent="support",result="hung_up"} 1.0' in text
        assert 'switchboard_calls_total{agent="support",cause="NORMAL_CLEARING",hangup_by="agent"} 1.0' in text
        assert "switchboard_live_calls 0.0" in text and "switchboard_dead_letters 0.0" in text
        assert json.loads(health) == {"ok": True, "listening": True, "redis": True}
        runtime.listener.stop()
        status, health = _get(port, "/healthz")
        assert status == 503 and json.loads(health)["listening"] is False
        assert _get(port, "/other")[0] == 404
