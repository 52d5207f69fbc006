"""Faults on the processes: SIGKILL of `serve` mid-call, SIGKILL of `worker` mid-batch, SIGTERM under load."""
from __future__ import annotations

import signal
import time

import gevent

from chaos.bed import HOOK, Bed
from chaos.calls import Row, caller, check, talker, finish, greeted, judge, live_calls, logged, place


def controller_sigkill() -> Row:
    """5 calls in conversation when `serve` is SIGKILLed; the restarted `serve` writes their records
    (call/recovery.py) and serves 3 new calls; every record gets its email and webhook."""
    bed = Bed()
    try:
        row = Row("controller SIGKILL mid-call")
        serve, _ = bed.serve(), bed.worker()
        calls = place(serve.port, [caller(400) for _ in range(5)])
        check(live_calls(bed, 5) == 5, "5 calls in conversation")
        serve.signal(signal.SIGKILL)
        serve.wait(10)
        killed_at = time.monotonic()
        recs = finish(calls, 30)
        again = bed.serve()
        recs += finish(place(again.port, [caller(1) for _ in range(3)]))
        row.starved = sum(not greeted(r) for r in recs[5:]) + (3 - len(recs[5:]))
        row.note = "5 killed in conversation, 3 new"
        return judge(bed, row, [r.uuid for r in recs], killed_at)
    finally:
        bed.close()


def worker_sigkill() -> Row:
    """30 records wait; the worker is SIGKILLed with a batch half done (webhook slow to answer); a second
    worker takes the pending entries over (XAUTOCLAIM once idle) and delivers what was left."""
    bed = Bed()
    try:
        row = Row("worker SIGKILL mid-batch")
        serve = bed.serve()
        recs = finish(place(serve.port, [caller(1) for _ in range(30)]))
        uuids = [r.uuid for r in recs]
        row.starved = 30 - sum(map(greeted, recs))
        bed.webhook.delay_s = 0.05
        worker = bed.worker()
        deadline = time.monotonic() + 60
        while sum(1 for (_, action) in bed.deliveries.ids if action == HOOK) < 5 and time.monotonic() < deadline:
            gevent.sleep(0.02)
        worker.signal(signal.SIGKILL)
        worker.wait(10)
        done = sum(1 for (_, action) in bed.deliveries.ids if action == HOOK)
        check(5 <= done < 30, "the worker killed with records left")
        row.note = f"killed after {done}/30 webhooks"
        killed_at = time.monotonic()
        bed.webhook.delay_s = 0
        bed.worker()
        return judge(bed, row, uuids, killed_at)
    finally:
        bed.close()


def sigterm_under_load() -> Row:
    """20 live calls when `serve` gets SIGTERM (drain 1 s): 15 callers hang up within it, 5 keep talking and
    are closed at its end; `serve` exits 0 and every call's record is delivered."""
    bed = Bed(drain_timeout_s=1)
    try:
        row = Row("SIGTERM under load")
        serve, _ = bed.serve(), bed.worker()
        calls = place(serve.port, [caller(10, hangs_up=True) for _ in range(15)] + [talker() for _ in range(5)])
        live_calls(bed, 20)
        serve.signal(signal.SIGTERM)
        sent_at = time.monotonic()
        code = serve.wait(60)
        recs = finish(calls, 30)
        row.crashes += code != 0
        closed = logged(serve, "drain timeout: closing")
        check(closed >= 1, "calls outlasting the drain")
        row.note = f"{closed} closed at the drain timeout, exit {code}"
        row.starved = sum(not greeted(r) for r in recs) + (20 - len(recs))
        return judge(bed, row, [r.uuid for r in recs], sent_at)
    finally:
        bed.close()


FAULTS = [controller_sigkill, worker_sigkill, sigterm_under_load]
