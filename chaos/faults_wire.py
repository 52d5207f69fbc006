"""Faults on the event socket: a connection dropped mid-transfer, truncated frames and wrong Content-Length,
10,000 events in a second on one call, 500 idle connections while 20 real calls run."""
from __future__ import annotations

import time

import gevent
import redis
import yaml
from gevent import socket

from chaos.bed import Bed
from chaos.calls import Row, caller, check, finish, greeted, judge, logged, place
from chaos.proxy import Proxy
from fssim import Scenario
from tests.support.transfer import ASKS_FOR_ADVISOR, CONNECTIONS, agent_yaml

ADVISOR = "+33170363950"
TRANSFER = {"destinations": [{"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]}


def _transfer_call() -> Scenario:
    return Scenario.from_dict({"name": "transfer", "agent": "support", "end_after_s": 5,
                               "targets": {ADVISOR: {"answer_after_s": 20, "talk_s": 200}},
                               "script": [{"wait_for": {"app": "speak"}}, {"say": ASKS_FOR_ADVISOR}, {"silence": 400}]})


def dropped_mid_transfer() -> Row:
    """5 callers ask for an advisor; each TCP connection is cut (proxy) as the controller sends its `bridge`;
    every call's record is written and delivered, and the next calls are served."""
    bed = Bed(yaml.safe_load(agent_yaml(TRANSFER)), extra=CONNECTIONS)
    try:
        row = Row("TCP dropped mid-transfer")
        serve, _ = bed.serve(), bed.worker()
        proxy = Proxy(("127.0.0.1", serve.port), cut_on=b"execute-app-name: bridge\n")
        recs = finish(place(proxy.port, [_transfer_call() for _ in range(5)]), 60)
        row.calls = len({link.uuid for link in proxy.links if link.dropped})
        check(row.calls == 5, "5 connections cut at the bridge")
        row.note = "cut as `bridge` was sent"
        proxy.close()
        cut_at = time.monotonic()
        after = finish(place(serve.port, [caller(1) for _ in range(3)]))
        row.starved = sum(not greeted(r) for r in after) + (3 - len(after))
        return judge(bed, row, [r.uuid for r in recs + after], cut_at)
    finally:
        bed.close()


def _raw(port: int, payload: bytes) -> None:
    """A peer that connects, reads `connect`, writes `payload` and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.recv(4096)
        sock.sendall(payload)
        gevent.sleep(0.5)


CONNECT_HEAD = b"Event-Name: CHANNEL_DATA\nUnique-ID: 0a160000-0000-4000-8000-0000000c4a05\nContent-Type: command/reply\n"
BROKEN = [CONNECT_HEAD[:40],  # cut inside a header line
          b"Content-Length: 1000000000\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_ANSWER\n",
          b"Content-Length: -5\nContent-Type: api/response\n\n",
          b"Content-Length: 12abc\nContent-Type: api/response\n\nabc"]


def malformed_frames() -> Row:
    """Calls whose frames are truncated or carry a wrong Content-Length (the simulator's short, long and
    missing lengths on CHANNEL_ANSWER, and raw peers), 5 real calls at the same time: only the broken
    connections end; every real call is served and delivered."""
    bed = Bed()
    try:
        row = Row("truncated frames, wrong Content-Length")
        serve, _ = bed.serve(), bed.worker()
        broken = [caller(1, malformed={"event": "CHANNEL_ANSWER", "fault": fault})
                  for fault in ("short_length", "long_length", "missing_length")]
        raws = [gevent.spawn(_raw, serve.port, payload) for payload in BROKEN]
        calls = place(serve.port, broken + [caller(20) for _ in range(5)])
        gevent.joinall(raws, timeout=30)
        started = time.monotonic()
        recs = finish(calls)
        row.calls = len(broken) + len(BROKEN)
        real = recs[len(broken):]
        row.starved = sum(not greeted(r) for r in real) + (5 - len(real))
        row.note = f"{len(broken)} simulated calls, {len(BROKEN)} raw peers"
        return judge(bed, row, [r.uuid for r in real], started)
    finally:
        bed.close()


def event_flood() -> Row:
    """10,000 events within a second on one call in conversation (written between its frames by the proxy)
    while 5 other calls run: the bounded inbox (esl/inbox.py) ends that call, its record is still written,
    and the others are served."""
    bed = Bed()
    try:
        row = Row("10,000 events in 1 s on one call")
        serve, _ = bed.serve(), bed.worker()

        def flood(link) -> None:
            gevent.sleep(0.5)  # in conversation
            link.flood(10_000, 1.0)

        proxy = Proxy(("127.0.0.1", serve.port), on_link=flood)
        flooded = place(proxy.port, [caller(400)])
        others = place(serve.port, [caller(40) for _ in range(5)])
        started = time.monotonic()
        recs = finish(flooded + others, 60)
        proxy.close()
        row.calls = 1
        row.note = "ended by the inbox bound" if logged(serve, "past the bound") else "the call read them all"
        row.starved = sum(not greeted(r) for r in recs) + (6 - len(recs))
        return judge(bed, row, [r.uuid for r in recs], started)
    finally:
        bed.close()


def idle_flood() -> Row:
    """500 connections that never answer `connect`, reopened as the controller closes them, while 20 real
    calls run: idle peers hold no call slot (esl/listener.py), no real call goes without its greeting."""
    bed = Bed(max_connections=200)
    try:
        row = Row("500 idle connections, 20 real calls")
        serve, _ = bed.serve(), bed.worker()
        done = gevent.event.Event()

        def idle() -> None:
            while not done.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as sock:
                        while not done.is_set() and sock.recv(4096):
                            pass  # the controller's `connect`, never answered; "" once it closes us
                except OSError:
                    gevent.sleep(0.05)

        holders = [gevent.spawn(idle) for _ in range(500)]
        gevent.sleep(1.0)
        started = time.monotonic()
        recs = finish(place(serve.port, [caller(20) for _ in range(20)]))
        done.set()
        gevent.killall(holders, timeout=10)
        row.calls = 20
        closed = int(redis.Redis.from_url(bed.redis.url).hget("switchboard:counters", "calls:setup_failed") or 0)
        check(closed > 0, "idle set-ups closed by the listener")
        row.note = f"{closed} idle set-ups closed"
        row.starved = sum(not greeted(r) for r in recs) + (20 - len(recs))
        return judge(bed, row, [r.uuid for r in recs], started)
    finally:
        bed.close()


FAULTS = [dropped_mid_transfer, malformed_frames, event_flood, idle_flood]
