"""Two hosts on one Redis: a `serve` SIGKILLed with calls in conversation and records in its worker's hands.

What the dialplan's failover lines give (freeswitch-conf/dialplan-switchboard.xml): each call tries host A's
socket, then host B's when A refuses the connection. Both `serve` run their own worker (`run_worker: true`) and
have their own `state_dir`, as two machines would; they share only Redis.
"""
from __future__ import annotations

import signal
import time

import gevent
import yaml

from chaos.bed import HOOK, Bed, Proc
from chaos.calls import Row, caller, check, finish, greeted, judge, live_calls, logged, simulator
from fssim import Scenario
from fssim.recording import CallRecording


def _host(bed: Bed, name: str) -> Proc:
    """A `serve` with its own state_dir (another machine), on the bed's Redis and peers."""
    config = yaml.safe_load(bed.config.read_text(encoding="utf-8"))
    config["server"].update(state_dir=str(bed.dir / name), run_worker=True)
    path = bed.dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    proc = Proc(path, "serve", name)
    bed.procs.append(proc)
    return proc


def _failover(ports: list[int], scenario: Scenario) -> CallRecording:
    """The dialplan's socket lines in order: the next one runs when the connection is refused."""
    for port in ports:
        rec = simulator(port).run(scenario)
        if not (rec.error or "").startswith("connect failed"):
            return rec
    return rec


def host_killed() -> Row:
    """3 calls in conversation on each host and 4 records in host A's worker (a slow CRM) when A is SIGKILLed;
    B writes the records of A's calls once A's heartbeat expires, B's worker takes A's pending records over,
    and 3 new calls fail over from A's socket to B's. Every record gets its email and webhook, once."""
    bed = Bed()
    try:
        row = Row("host SIGKILL, the other takes over")
        a, b = _host(bed, "host-a"), _host(bed, "host-b")
        ports = [a.port, b.port]
        bed.webhook.delay_s = 2.0  # a slow CRM: the workers hold records while A dies
        done = finish([gevent.spawn(_failover, ports, caller(1)) for _ in range(4)])
        held = [gevent.spawn(_failover, [port], caller(400)) for port in ports for _ in range(3)]
        check(live_calls(bed, 6) == 6, "3 calls in conversation on each host")
        check(bed.webhook.requests >= 1 and len(bed.deliveries.complete([r.uuid for r in done])) < 4,
              "records still being delivered")
        a.signal(signal.SIGKILL)
        a.wait(10)
        killed_at = time.monotonic()
        bed.webhook.delay_s = 0
        moved = finish([gevent.spawn(_failover, ports, caller(1)) for _ in range(3)])
        check(len(moved) == 3 and all(greeted(r) for r in moved), "new calls answered by host B")
        recs = done + moved + finish(held, 60)
        row = judge(bed, row, [r.uuid for r in recs], killed_at, timeout_s=120)
        check(logged(b, "call left in progress by a process that died") == 3, "host B wrote A's 3 live calls")
        row.starved = sum(not greeted(r) for r in done + moved) + (7 - len(done + moved))
        row.note = f"A killed with 3 live calls, {HOOK} slow; {len(moved)} calls failed over to B"
        return row
    finally:
        bed.close()


FAULTS = [host_killed]
