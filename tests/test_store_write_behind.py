"""Store writes nobody waits for: written behind in one pipeline, in order, TTLs set once per key and refresh."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import gevent
import pytest

from controller.clock import Clock
from controller.state.connection import StoreSettings, connect
from controller.state.store import Store


def _other_client(store: Store):
    """Another process's view of the same Redis."""
    return connect(store.embedded.url)


def test_writes_nobody_waits_for_reach_redis_together_within_the_write_behind_delay(store: Store) -> None:
    other = _other_client(store)
    for uuid in ("u-1", "u-2", "u-3"):
        store.call_started(uuid, "sales", "+33612345678", {})
        store.append_transcript(uuid, {"role": "caller", "text": f"bonjour de {uuid}"})
    store.incr("calls:refused")

    assert other.exists("t:call:u-1", "t:call:u-3:transcript") == 0  # queued, not sent yet
    gevent.sleep(store.write_behind_s * 5)

    assert other.exists("t:call:u-1", "t:call:u-2", "t:call:u-3") == 3
    assert [json.loads(x)["text"] for x in other.lrange("t:call:u-3:transcript", 0, -1)] == ["bonjour de u-3"]
    assert other.smembers("t:live") == {b"u-1", b"u-2", b"u-3"} and other.hget("t:counters", "calls:refused") == b"1"
    other.close()


def test_a_read_sees_every_write_queued_before_it(store: Store) -> None:
    store.call_started("u-1", "sales", "+33612345678", {})
    store.update_call("u-1", state="in_call")
    store.append_transcript("u-1", {"role": "caller", "text": "où en est ma commande ?"})

    state = store.call_state("u-1")  # no wait: the read sends the queue first

    assert state["state"] == "in_call" and [t["text"] for t in state["transcript"]] == ["où en est ma commande ?"]
    assert store.redis.hget("t:call:u-1", "state") == b'"in_call"'  # so does any use of the raw client


def test_a_write_redis_refuses_fails_alone_and_says_which_call(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.redis.set("t:call:u-2:transcript", "not a list")  # WRONGTYPE for the push of u-2 only
    caplog.set_level(logging.ERROR)
    for uuid in ("u-1", "u-2", "u-3"):
        store.append_transcript(uuid, {"role": "caller", "text": "allô"})
    store.flush()

    assert store.redis.llen("t:call:u-1:transcript") == store.redis.llen("t:call:u-3:transcript") == 1
    (refused,) = [r for r in caplog.records if "redis refused" in r.getMessage()]
    assert refused.uuid == "u-2" and "append_transcript" in refused.getMessage() and "WRONGTYPE" in refused.getMessage()
    assert store.call_state("u-1")["transcript"][0]["text"] == "allô"  # Redis is not taken for down


def test_a_call_key_gets_its_ttl_once_and_again_when_deleted_under_a_live_call(store: Store) -> None:
    store.call_started("u-1", "sales", "+33612345678", {})
    store.append_transcript("u-1", {"role": "caller", "text": "un"})
    store.flush()
    store.redis.persist("t:call:u-1")
    store.append_transcript("u-1", {"role": "agent", "text": "deux"})  # within a tenth of the TTL: no EXPIRE again
    store.flush()
    assert store.redis.ttl("t:call:u-1") == -1 and 0 < store.redis.ttl("t:call:u-1:transcript") <= 600

    store.redis.delete("t:call:u-1:transcript")  # e.g. `calls purge` under a live call
    store.append_transcript("u-1", {"role": "caller", "text": "trois"})
    store.flush()
    store.flush()  # the TTL the reply asked for

    assert 0 < store.redis.ttl("t:call:u-1:transcript") <= 600


def test_closing_a_store_sends_its_queued_writes(store: Store, state_dir: Path) -> None:
    settings = StoreSettings(url=store.embedded.url, key_prefix="t", call_ttl_s=600)
    serve = Store(settings, state_dir / "other", Clock()).start(maintain=False)
    serve.call_started("u-9", "sales", "+33612345678", {})
    serve.close()

    assert store.redis.hget("t:call:u-9", "agent") == b'"sales"'



def test_a_call_hash_purged_under_a_live_call_gets_its_ttl_at_the_next_field_write(store: Store) -> None:
    store.call_started("u-1", "sales", "+33612345678", {})
    store.flush()
    store.redis.delete("t:call:u-1")  # `calls purge`, or a write lost while Redis was down
    store.update_call("u-1", state="in_call")  # within a tenth of the TTL of the first
    store.flush()

    assert 0 < store.redis.ttl("t:call:u-1") <= 600
