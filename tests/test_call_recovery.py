"""Calls a dead `serve` left in progress become records once, and a live call of another `serve` is left alone.

Several Stores on one real Redis stand for several `serve` processes (each Store is one start: its own
instance id and heartbeat); tests/test_process.py does the same with real processes and a SIGKILL.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import gevent
import pytest

from controller.call.recovery import RESTART_CAUSE, recover_orphans
from controller.clock import Clock
from controller.state.connection import StoreSettings
from controller.state.store import Store


@pytest.fixture
def serves(store: Store, state_dir: Path):
    """`make(name, **options)`: another Store on the fixture's Redis and key prefix, with its own state dir."""
    made: list[Store] = []

    def make(name: str, **options) -> Store:
        directory = state_dir / name
        settings = StoreSettings(url=store.embedded.url, key_prefix=store.settings.key_prefix, call_ttl_s=600)
        made.append(Store(settings, directory, Clock(), **options).start(maintain=False))
        return made[-1]

    yield make
    for other in made:
        other.close()


def _start_call(serve: Store, uuid: str) -> None:
    serve.heartbeat()
    serve.call_started(uuid, "support", "+33612345678", {"direction": "inbound"})
    serve.update_call(uuid, state="in_call", moments={"ringing": time.time() - 5, "in_call": time.time() - 4})
    serve.append_transcript(uuid, {"who": "caller", "text": "je voudrais un devis", "at": "2026-01-05T10:00:00+00:00"})
    serve.flush()  # sent, as a running serve does within its write-behind delay (this test does not run gevent's hub)


def _records(store: Store) -> list[dict]:
    return [json.loads(fields[b"record"]) for _, fields in store.redis.xrange(store.stream_key)]


def test_the_call_hash_names_the_process_and_the_start_that_own_the_call(serves) -> None:
    serve = serves("a")
    _start_call(serve, "u-1")

    owner = serve.call_state("u-1")["owner"]

    assert owner == serve.owner and owner["pid"] > 0 and len(owner["instance"]) >= 16
    assert serves("b").owner["instance"] != owner["instance"]  # one id per start, not per host or pid


def test_a_live_call_of_another_running_serve_is_not_taken(serves, store: Store) -> None:
    alive, other = serves("a"), serves("b")
    _start_call(alive, "u-live")

    assert recover_orphans(other, other.clock) == 0

    assert _records(store) == [] and alive.call_state("u-live")["owner"] == alive.owner


def test_a_call_whose_owner_stopped_beating_becomes_a_record_with_the_restart_cause(serves, store: Store) -> None:
    dead, other = serves("a", owner_ttl_s=0.3), serves("b")
    _start_call(dead, "u-orphan")
    time.sleep(0.4)  # the heartbeat expired: that serve died on another host, or froze

    assert recover_orphans(other, other.clock) == 1

    [record] = _records(store)
    assert record["uuid"] == "u-orphan" and record["hangup_by"] == "system"
    assert record["hangup_cause"] == RESTART_CAUSE == "controller_restart"
    assert record["transcript"][0]["text"] == "je voudrais un devis" and record["talk_s"] > 0
    assert other.call_state("u-orphan")["state"] == "ended"
    assert recover_orphans(other, other.clock) == 0 and len(_records(store)) == 1


def test_two_serves_starting_together_write_a_dead_call_s_record_once(serves, store: Store) -> None:
    dead = serves("a", owner_ttl_s=0.3)
    for n in range(5):
        _start_call(dead, f"u-{n}")
    time.sleep(0.4)
    first, second = serves("b"), serves("c")

    both = [gevent.spawn(recover_orphans, first, first.clock), gevent.spawn(recover_orphans, second, second.clock)]
    gevent.joinall(both, timeout=10, raise_error=True)

    assert sum(g.value for g in both) == 5
    assert sorted(r["uuid"] for r in _records(store)) == [f"u-{n}" for n in range(5)]


def test_the_previous_serve_of_the_same_state_dir_is_known_dead_at_once_by_its_lock(serves, store: Store) -> None:
    dead = serves("a")  # its heartbeat is still fresh: only the state dir's lock tells that it is gone
    dead.hold_state_dir()
    _start_call(dead, "u-1")
    dead.close()  # the lock goes, as at a SIGKILL; the heartbeat stays until it expires
    again = serves("a")
    again.hold_state_dir()

    assert recover_orphans(again, again.clock) == 1
    assert [r["uuid"] for r in _records(store)] == ["u-1"]


def test_a_call_whose_own_record_reached_the_stream_before_its_process_died_gets_no_second_one(
        serves, store: Store) -> None:
    """Redis down at the call's end: the record went to the spool (replayed later), the state kept in_call."""
    dead, other = serves("a", owner_ttl_s=0.3), serves("b")
    _start_call(dead, "u-1")
    dead.append_record({"uuid": "u-1", "record_id": "call-u-1", "hangup_by": "caller"})
    time.sleep(0.4)

    assert recover_orphans(other, other.clock) == 0

    assert [(r["uuid"], r["hangup_by"]) for r in _records(store)] == [("u-1", "caller")]
    assert other.call_state("u-1")["state"] == "ended" and recover_orphans(other, other.clock) == 0
