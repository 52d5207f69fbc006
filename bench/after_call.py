"""After-call throughput: records classified, rendered and emailed per second by `switchboard worker`, with one
worker and with two, against smtplib resending one pre-rendered message over one connection (the most a client can
push through the same SMTP server) measured in the same run.

Real pieces: an embedded redis-server, an aiosmtpd sink in its own process, `switchboard worker --drain`
processes (their start-up, measured on an empty queue, is subtracted). Each record carries a 20-turn transcript;
the email has a subject, a text and an HTML body rendered from it, sent over the SMTP session the worker keeps. Run:
    .venv/bin/python bench/after_call.py
"""
from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from controller.state.connection import StoreSettings
from controller.state.store import Store

RECORDS = 1500
BIN = str(Path(sys.executable).with_name("switchboard"))
CONFIG = """\
server: {{state_dir: {state}}}
redis: {{url: '{redis}', key_prefix: bench}}
smtp: {{host: 127.0.0.1, port: {smtp}, from: bot@example.test}}
classifications:
  lead: {{description: asked for a price, when: {{transcript_contains: [prix, price]}}}}
  other: {{description: everything else, fallback: true}}
agents:
  support:
    language: fr
    actions:
      after_call:
        - type: email
          name: summary
          description: a summary to the team
          subject: "[{{{{ classification }}}}] appel de {{{{ caller }}}}"
          to: [team@example.test]
          template:
            text: "{{% for t in transcript %}}{{{{ t.who }}}}: {{{{ t.text }}}}\\n{{% endfor %}}"
            html: "<ul>{{% for t in transcript %}}<li>{{{{ t.who }}}}: {{{{ t.text }}}}</li>{{% endfor %}}</ul>"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def record(i: int) -> dict:
    turns = [{"who": "caller" if n % 2 else "agent", "text": f"phrase {n} de l'appel {i}, quel est le prix ?"}
             for n in range(20)]
    return {"uuid": f"bench-{i:06d}", "record_id": f"call-bench-{i:06d}", "agent": "support",
            "caller": "+33612345678", "duration_s": 60, "transcript": turns, "actions": []}


def fill(store: Store, start: int, count: int) -> None:
    pipe = store.redis.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.xadd(store.stream_key, {"record": json.dumps(record(i))})
    pipe.execute()


def drain(config: Path, workers: int) -> float:
    """Seconds until `workers` concurrent `switchboard worker --drain` processes have all exited."""
    started = time.perf_counter()
    procs = [subprocess.Popen([BIN, "--log-level", "WARNING", "worker", "--drain", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"worker --drain exited {proc.returncode}: {out}{err}")
    return time.perf_counter() - started


def baseline(port: int, count: int) -> float:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "[lead] appel", "bot@example.test", "team@example.test"
    msg.set_content("\n".join(f"caller: phrase {n}" for n in range(20)))
    msg.add_alternative("<ul>" + "".join(f"<li>phrase {n}</li>" for n in range(20)) + "</ul>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for _ in range(count):
            smtp.send_message(msg)
        return count / (time.perf_counter() - started)


def main() -> None:
    os.environ.pop("REDIS_URL", None)
    root = Path(tempfile.mkdtemp(prefix="sb-bench-", dir="/tmp"))
    store = Store(StoreSettings(key_prefix="bench"), root / "state").start(maintain=False)
    smtp_port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l",
                             f"127.0.0.1:{smtp_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # bounded: the sink listens within a second
            try:
                socket.create_connection(("127.0.0.1", smtp_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        config = root / "switchboard.yaml"
        config.write_text(CONFIG.format(state=root / "state", redis=store.embedded.url, smtp=smtp_port))
        start_up = min(drain(config, 1) for _ in range(2))  # an empty queue: process start and connect only
        fill(store, 0, RECORDS)
        one = RECORDS / max(1e-6, drain(config, 1) - start_up)
        fill(store, RECORDS, 2 * RECORDS)
        two = 2 * RECORDS / max(1e-6, drain(config, 2) - start_up)
        left = store.redis.xlen(store.stream_key) + store.redis.xlen(store.dead_letter_key)
        base = baseline(smtp_port, RECORDS)
    finally:
        sink.terminate()
        sink.wait(10)
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"worker start-up (subtracted): {start_up:.2f} s; records left or dead: {left}")
    print(f"{'who':40} {'emails/s':>9}")
    print(f"{'one worker (render + kept SMTP session)':40} {one:9.0f}")
    print(f"{'two workers':40} {two:9.0f}")
    print(f"{'smtplib, one pre-rendered message':40} {base:9.0f}")
    print(f"RESULT emails_per_s={one:.0f} two_workers_per_s={two:.0f} baseline_per_s={base:.0f} "
          f"ratio={one / base:.2f} left={left}")


if __name__ == "__main__":
    main()
