"""Faults on the peers: Redis stopped 10 s during 50 live calls; the SMTP relay down and the webhook
answering 500, then hanging, then back."""
from __future__ import annotations

import time

import gevent

from chaos.bed import Bed
from chaos.calls import Row, caller, finish, greeted, judge, live_calls, place


def redis_outage() -> Row:
    """50 calls live when Redis stops for 10 s: calls go on, records ending meanwhile wait in the spool
    (state/records.py) and are added once Redis is back; every record gets its deliveries."""
    bed = Bed(max_connections=200)
    try:
        row = Row("Redis stopped 10 s, 50 live calls")
        serve, _ = bed.serve(), bed.worker()
        calls = place(serve.port, [caller(60 + 4 * i) for i in range(50)])  # they end between 3 s and 13 s
        live_calls(bed, 40)
        bed.redis.stop()
        gevent.sleep(10)
        bed.redis.start()
        back_at = time.monotonic()
        recs = finish(calls)
        row.starved = sum(not greeted(r) for r in recs) + (50 - len(recs))
        return judge(bed, row, [r.uuid for r in recs], back_at)
    finally:
        bed.close()


def smtp_and_webhook_down() -> Row:
    """10 calls end while the SMTP relay is down and the webhook answers 500 for 3 s, then hangs for 3 s
    (each request held past the action's timeout); both come back and every record is delivered once."""
    bed = Bed()
    try:
        row = Row("SMTP down, webhook 500 then hanging")
        serve, _ = bed.serve(), bed.worker()
        bed.smtp_down()
        bed.webhook.mode = "500"
        recs = finish(place(serve.port, [caller(2) for _ in range(10)]))
        row.starved = 10 - sum(map(greeted, recs))
        gevent.sleep(3)
        bed.webhook.mode = "hang"
        gevent.sleep(3)
        bed.smtp_up()
        bed.webhook.mode = "ok"
        return judge(bed, row, [r.uuid for r in recs], time.monotonic())
    finally:
        bed.close()


FAULTS = [redis_outage, smtp_and_webhook_down]
