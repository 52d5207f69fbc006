"""`server.metrics_port`: Prometheus metrics and `/healthz` of a running controller, read over real HTTP on
127.0.0.1 after real simulated calls."""
from __future__ import annotations

import json

import gevent
import gevent.socket

from prometheus_client import CollectorRegistry, generate_latest

from controller.latency import Latencies
from controller.ops.metrics import Probe, SwitchboardCollector
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
        assert "switchboard_turn_latency_seconds_count 1.0" in text  # the greeting's answer to the goodbye
        assert "switchboard_rag_latency_seconds_count 0.0" in text
        assert json.loads(health) == {"ok": True, "listening": True, "redis": True}
        runtime.listener.stop()
        status, health = _get(port, "/healthz")
        assert status == 503 and json.loads(health)["listening"] is False
        assert _get(port, "/other")[0] == 404


def test_transfer_causes_deliveries_and_latencies_are_exposed_from_the_shared_counters():
    latencies = Latencies()
    latencies.turn.observe(0.42)
    latencies.rag.observe(0.03)
    counters = {"transfer:support.to_advisor:busy:USER_BUSY": 2, "transfer:support.to_advisor:answered:SUCCESS": 5,
                "delivery:email:ok": 7, "delivery:workflow:failed": 1, "calls:refused": 3, "other:key": 9}
    probe = Probe(live_calls=lambda: 4, listening=lambda: True, accept_errors=lambda: 0, counters=lambda: counters,
                  queue=lambda: (2, 1), redis_ok=lambda: True, worker_alive=lambda: None, latencies=latencies)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwitchboardCollector(probe))
    text = generate_latest(registry).decode()
    for line in ['switchboard_transfers_total{action="to_advisor",agent="support",cause="USER_BUSY",result="busy"} 2.0',
                 'switchboard_transfers_total{action="to_advisor",agent="support",cause="SUCCESS",result="answered"} 5.0',
                 'switchboard_deliveries_total{kind="email",result="ok"} 7.0',
                 'switchboard_deliveries_total{kind="workflow",result="failed"} 1.0',
                 "switchboard_refused_calls_total 3.0", "switchboard_live_calls 4.0",
                 "switchboard_after_call_queue 2.0", "switchboard_dead_letters 1.0",
                 'switchboard_turn_latency_seconds_bucket{le="0.5"} 1.0',
                 'switchboard_turn_latency_seconds_bucket{le="0.3"} 0.0',
                 'switchboard_rag_latency_seconds_bucket{le="0.05"} 1.0']:
        assert line in text, line
    assert "other" not in text
