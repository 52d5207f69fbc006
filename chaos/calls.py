"""Calls the faults place, and the row each fault reports."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

import gevent
import redis

from chaos.bed import SCALE, Bed, Proc
from fssim import Scenario, Simulator
from fssim.recording import CallRecording

GREETING = "Bonjour, que puis-je faire pour vous ?"


@dataclass
class Row:
    """One line of the table: what a fault did to the calls it touched."""

    fault: str
    calls: int = 0
    lost: int = 0
    duplicates: int = 0
    repeats: int = 0
    crashes: int = 0
    starved: int = 0
    recover_s: float = 0.0
    note: str = ""  # what the fault did, as observed


def check(held: bool, what: str) -> None:
    """The fault was injected as meant; otherwise the run fails (a harness that proves nothing)."""
    if not held:
        raise AssertionError(f"fault not injected: {what}")


def caller(seconds: float, hangs_up: bool = False, **fields: Any) -> Scenario:
    """A caller who asks one question once greeted, then stays silent for `seconds` call seconds; the agent
    ends the call after its silence prompts, or the caller hangs up first (`hangs_up`)."""
    script = [{"wait_for": {"app": "speak"}}, {"say": "Bonjour, j'ai une question."}, {"silence": seconds}]
    return Scenario.from_dict({"name": "chaos", "agent": "support", "end_after_s": 5,
                               "script": script + ([{"hangup": True}] if hangs_up else []), **fields})


def talker(turns: int = 100) -> Scenario:
    """A caller who keeps talking (a sentence every 5 call seconds), so the agent never ends the call."""
    script = [{"wait_for": {"app": "speak"}}] + [{"say": "Et aussi une autre question.", "after": 5}] * turns
    return Scenario.from_dict({"name": "talker", "agent": "support", "script": script})


def simulator(port: int) -> Simulator:
    return Simulator(("127.0.0.1", port), time_scale=SCALE)


def place(port: int, scenarios: Iterable[Scenario]) -> list[gevent.Greenlet]:
    """Start each call now, in its own greenlet; `.get()` gives its recording."""
    sim = simulator(port)
    return [gevent.spawn(sim.run, s) for s in scenarios]


def finish(calls: list[gevent.Greenlet], timeout_s: float = 120) -> list[CallRecording]:
    gevent.joinall(calls, timeout=timeout_s)
    return [call.get(block=False) for call in calls if call.successful()]


def logged(proc: Proc, text: str) -> int:
    """Lines of `proc`'s log containing `text`."""
    return sum(text in str(line.get("msg", "")) for line in proc.lines())


def greeted(rec: CallRecording) -> bool:
    return any(GREETING in text for text in rec.spoken)


def live_calls(bed: Bed, at_least: int, timeout_s: float = 30) -> int:
    """Wait until `at_least` calls are in conversation in Redis (the caller's words stored); how many are."""
    client = redis.Redis.from_url(bed.redis.url, socket_timeout=2)
    deadline, count = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        count = 0
        for key in client.scan_iter("switchboard:call:*", count=1000):
            if key.count(b":") == 2 and json.loads(client.hget(key, "state") or "null") == "in_call" \
                    and client.llen(key + b":transcript"):
                count += 1
        if count >= at_least:
            break
        gevent.sleep(0.1)
    client.close()
    return count


def judge(bed: Bed, row: Row, uuids: list[str], since: float, timeout_s: float = 90) -> Row:
    """Wait for the deliveries of `uuids`, then fill the row: lost, duplicates, repeats, crashes, time to recover."""
    waited = bed.wait_delivered(uuids, timeout_s)
    row.recover_s = time.monotonic() - since if waited < timeout_s else float(timeout_s)
    gevent.sleep(1.0)  # late repeats (a retry already under way) are counted too
    row.calls = row.calls or len(uuids)
    row.lost = bed.lost(uuids)
    row.duplicates, row.repeats = bed.deliveries.tally(uuids)
    row.crashes += bed.crashes()
    return row
