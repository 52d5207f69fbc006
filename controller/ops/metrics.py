"""Prometheus metrics and `/healthz` for `switchboard serve`, on a loopback port (`server.metrics_port`).

Everything is read at scrape time from what the process already keeps (the listener's counts, the Redis counters
every process writes, the after-call stream), so the call path gains no work and two `serve` processes on one
Redis report the same shared counters. `/healthz` answers 200 when the outbound socket listens, Redis answers and
the in-process worker (when `run_worker`) is alive, 503 otherwise with the failing parts: for systemd's watchdog
script or a load balancer.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from controller.latency import Latencies

log = logging.getLogger("switchboard.metrics")
_ACTION = re.compile(r"action:(?P<agent>[^.]+)\.(?P<action>[^:]+):(?P<result>.+)")
_CALL = re.compile(r"call:(?P<agent>[^:]+):(?P<by>[^:]+):(?P<cause>.+)")
_TRANSFER = re.compile(r"transfer:(?P<agent>[^.]+)\.(?P<action>[^:]+):(?P<result>[^:]+):(?P<cause>.+)")
_DELIVERY = re.compile(r"delivery:(?P<kind>[^:]+):(?P<result>.+)")


@dataclass(frozen=True)
class Probe:
    """The readings the metrics need, as callables the runtime gives (this floor cannot see the runtime)."""

    live_calls: Callable[[], int]
    listening: Callable[[], bool]
    accept_errors: Callable[[], int]
    counters: Callable[[], dict[str, int]]  # the shared Redis counters
    queue: Callable[[], tuple[int, int]]  # (records waiting for the worker, dead letters); raises when Redis is down
    redis_ok: Callable[[], bool]
    worker_alive: Callable[[], bool | None]  # None: no worker in this process
    latencies: Latencies  # this process's turn and RAG histograms


class SwitchboardCollector:
    """One scrape: gauges of this process, the shared counters as Prometheus counters."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        probe = self.probe
        yield GaugeMetricFamily("switchboard_live_calls", "calls this process is running", value=probe.live_calls())
        yield CounterMetricFamily("switchboard_accept_errors", "failed accept() on the outbound socket",
                                  value=probe.accept_errors())
        counters = probe.counters()
        calls = CounterMetricFamily("switchboard_calls", "calls ended, by agent, who ended them and cause",
                                    labels=["agent", "hangup_by", "cause"])
        actions = CounterMetricFamily("switchboard_actions", "actions run, by agent, action and result",
                                      labels=["agent", "action", "result"])
        transfers = CounterMetricFamily("switchboard_transfers", "transfers, by agent, action, result and cause",
                                        labels=["agent", "action", "result", "cause"])
        deliveries = CounterMetricFamily("switchboard_deliveries",
                                         "after-call emails and workflows tried by a worker, by result",
                                         labels=["kind", "result"])
        for key, value in sorted(counters.items()):
            if match := _ACTION.fullmatch(key):
                actions.add_metric([match["agent"], match["action"], match["result"]], value)
            elif match := _CALL.fullmatch(key):
                calls.add_metric([match["agent"], match["by"], match["cause"]], value)
            elif match := _TRANSFER.fullmatch(key):
                transfers.add_metric([match["agent"], match["action"], match["result"], match["cause"]], value)
            elif match := _DELIVERY.fullmatch(key):
                deliveries.add_metric([match["kind"], match["result"]], value)
        yield from (calls, actions, transfers, deliveries)
        yield from probe.latencies.collect()
        yield CounterMetricFamily("switchboard_refused_calls", "calls refused over server.max_connections",
                                  value=counters.get("calls:refused", 0))
        yield CounterMetricFamily("switchboard_setup_failures", "connections closed without a `connect` reply",
                                  value=counters.get("calls:setup_failed", 0))
        try:
            waiting, dead = probe.queue()
        except Exception:  # Redis down: the gauges are absent, /healthz says why
            return
        yield GaugeMetricFamily("switchboard_after_call_queue", "records waiting for the after-call worker",
                                value=waiting)
        yield GaugeMetricFamily("switchboard_dead_letters", "records whose after-call actions kept failing",
                                value=dead)


def redis_answers(store: Any) -> bool:
    """Whether the store's Redis answers a PING now (any failure is a no: this is what health reports)."""
    try:
        return bool(store.redis.ping())
    except Exception:
        return False


def health(probe: Probe, *, redis: bool = True) -> tuple[bool, dict[str, Any]]:
    """(healthy, what each part says). Without `redis`, for the watchdog: calls go on while Redis is away (their
    records wait in the spool), so a restart would only cut them."""
    parts: dict[str, Any] = {"listening": probe.listening()}
    if redis:
        parts["redis"] = probe.redis_ok()
    alive = probe.worker_alive()
    if alive is not None:
        parts["worker"] = alive
    return all(parts.values()), parts


def metrics_app(probe: Probe) -> Callable[[dict, Callable], Iterable[bytes]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwitchboardCollector(probe))

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body = generate_latest(registry)
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
            return [body]
        if path == "/healthz":
            ok, parts = health(probe)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps({"ok": ok, **parts}).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]
    return app


def serve_metrics(port: int, probe: Probe) -> WSGIServer:
    """Listen on 127.0.0.1:`port` (0: any free port) in this process's hub; the caller stops it."""
    server = WSGIServer(("127.0.0.1", port), metrics_app(probe), log=None, error_log=None)
    server.start()
    log.info("metrics on http://127.0.0.1:%d/metrics, health on /healthz", server.server_port)
    return server
