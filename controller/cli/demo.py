"""`switchboard demo`: the example agent end to end on one machine, without FreeSWITCH.

It starts what `examples/agent.yaml` talks to (a small CRM on 127.0.0.1:8099, an SMTP server on the configured
port), builds the example knowledge base when it is missing, plays every scenario of `examples/scenarios/`
through the simulator against the real controller, lets the after-call worker run, and prints it all.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import gevent
import gevent.socket
from gevent.pywsgi import WSGIServer

from controller.clock import FixedClock
from controller.cli.simulate import load_all, play, render_call

CRM_PORT = 8099
# The advisors' windows in examples/agent.yaml are office hours: the demo runs on a Tuesday, 10:00 in Paris.
DEMO_NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
CUSTOMERS = {"+33612345678": {"id": "C-1042", "name": "Camille Martin", "tier": "gold"},
             "+33698765432": {"id": "C-2077", "name": "Hugo Bernard", "tier": "standard"}}


class DemoCrm:
    """The operator's tools as the example configuration expects them: customers, orders, a webhook."""

    def __init__(self) -> None:
        self.webhooks: list[dict[str, Any]] = []
        self.server = WSGIServer(("127.0.0.1", CRM_PORT), self.app, log=None, error_log=None)

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
        if path == "/customers":
            from urllib.parse import parse_qs
            phone = parse_qs(environ.get("QUERY_STRING", "")).get("phone", [""])[0]
            customer = CUSTOMERS.get(phone)
            return self._json(start_response, {"customer": customer} if customer else {"customer": None})
        if path == "/orders/status" and method == "POST":
            return self._json(start_response, {"order": {"id": "CMD-88231", "state": "en cours de livraison"}})
        if path == "/webhooks/calls" and method == "POST":
            self.webhooks.append(json.loads(body or b"{}"))
            return self._json(start_response, {"ok": True})
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not found"}']

    @staticmethod
    def _json(start_response: Any, doc: Any) -> list[bytes]:
        data = json.dumps(doc).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def start_smtp(port: int, log_path: Path) -> subprocess.Popen:
    """aiosmtpd's debugging server in its own process (asyncio and gevent do not share a thread)."""
    handle = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Debugging"], stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            gevent.socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            gevent.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the demo SMTP server did not start on 127.0.0.1:{port}: see {log_path}")


def ensure_knowledge(config: Any) -> None:
    """Build the example FAQ index the first time (later runs reuse it; the CLI rebuilds incrementally)."""
    from knowledge.build import build_source
    from knowledge.index import current_name
    for name, source in config.knowledge_sources.items():
        if current_name(source.index_dir) is not None:
            continue
        corpus = config.base_dir / "knowledge" / f"faq-{source.language}"
        click.echo(f"building knowledge source {name} from {corpus} (first run only)...")
        build_source(source.spec(), [corpus], progress=False)


def emails_sent(log_path: Path) -> list[str]:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.lower().startswith("subject:")]


def run_demo(config: Any, time_scale: float) -> int:
    scenario_dir = config.base_dir / "scenarios"
    scenarios = load_all(sorted(scenario_dir.glob("*.yaml")))
    if not scenarios:
        click.echo(f"no scenarios in {scenario_dir}", err=True)
        return 2
    ensure_knowledge(config)
    crm = DemoCrm()
    try:
        crm.server.start()
    except OSError as exc:
        click.echo(f"the demo's CRM cannot listen on 127.0.0.1:{CRM_PORT} ({exc.strerror}): is another demo running? "
                   "Wait for it to finish, or stop what holds the port", err=True)
        return 2
    smtp_log = Path(tempfile.mkdtemp(prefix="switchboard-demo-")) / "smtp.log"
    smtp = start_smtp(config.smtp.port, smtp_log) if config.smtp else None
    from controller.runtime import Runtime
    records: dict[str, dict[str, Any]] = {}
    runtime = Runtime(config, clock=FixedClock(DEMO_NOW, time_scale), port=0, run_worker=True)
    runtime.observers.append(lambda call, record: records.__setitem__(record["uuid"], record))
    try:
        port = runtime.start()
        before = runtime.store.counters()  # examples/state keeps earlier runs' counters
        click.echo(f"controller on 127.0.0.1:{port}; {len(scenarios)} scenarios at time scale {time_scale}; "
                   f"the agents' clock reads {DEMO_NOW.astimezone().strftime('%A %H:%M')} UTC (office hours)\n")
        failures = 0
        for recording, record in play(config, runtime, scenarios, ("127.0.0.1", port), time_scale, records):
            click.echo(render_call(recording, record) + "\n")
            failures += bool(recording.error or record is None)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and runtime.store.redis.xlen(runtime.store.stream_key):
            gevent.sleep(0.2)
        left = runtime.store.redis.xlen(runtime.store.stream_key)
        click.echo(f"after-call worker: {len(records) - left} record(s) processed, {left} still queued")
        click.echo(f"webhooks received by the CRM: {len(crm.webhooks)}")
        for subject in emails_sent(smtp_log):
            click.echo(f"email sent: {subject}")
        counters = {k: v - before.get(k, 0) for k, v in runtime.store.counters().items() if v != before.get(k, 0)}
        click.echo("counters added by this run: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
        return 1 if failures else 0
    finally:
        runtime.stop(drain_timeout=5)
        crm.server.stop()
        if smtp is not None:
            smtp.terminate()
            smtp.wait(5)
