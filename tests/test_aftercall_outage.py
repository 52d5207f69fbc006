"""An SMTP relay or a webhook down for a long time: the after-call record waits for it instead of dying.

The relay is a real aiosmtpd server that is not listening (connection refused) and then starts; time runs
scaled, so a 15-minute outage takes under 2 s.
"""
from __future__ import annotations

import dataclasses
import json
import time
from types import SimpleNamespace
from typing import Any

import gevent

from controller.clock import Clock
from controller.config.schema import RedisSettings
from controller.state.connection import StoreSettings
from controller.state.store import Store
from controller.aftercall.worker import Worker
from tests.support.peers import SmtpOutage

OUTAGE_S = 15 * 60


def _email(**overrides: Any) -> SimpleNamespace:
    fields = dict(type="email", name="summary", subject="call from {{ caller }}", to=["sales@example.test"], cc=[],
                  bcc=[], template={"text": "{{ transcript | length }} turns"}, when_classified=None)
    return SimpleNamespace(**{**fields, **overrides})


def _record(uuid: str, **overrides: Any) -> dict:
    return {"uuid": uuid, "agent": "sales", "caller": "+33612345678", "duration_s": 42, "hangup_by": "caller",
            "transcript": [], "actions": [], "variables": {}, **overrides}


def _worker(store: Store, outage: SmtpOutage, actions: list, clock: Clock) -> Worker:
    return Worker(store, lambda agent: actions, {}, outage.peer.settings(), clock, consumer="w-1",
                  reclaim_interval_s=0)


def _run_until(worker: Worker, done, timeout_s: float, at: tuple[float, Any] = (float("inf"), None)) -> None:
    """process_once until `done()` (bounded by `timeout_s` real seconds); calls `at[1]` once `at[0]` s have passed."""
    started = time.monotonic()
    while not done() and time.monotonic() - started < timeout_s:
        if at[1] is not None and time.monotonic() - started >= at[0]:
            at[1]()
            at = (float("inf"), None)
        worker.process_once(block_ms=10)
        gevent.sleep(0.005)


def _dead(store: Store) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in store.redis.xrange(store.dead_letter_key)]


def test_the_store_settings_retry_as_the_configuration_does_by_default() -> None:
    retries = ("max_attempts", "retry_backoff_s", "retry_backoff_max_s", "requeue_dead_after_s", "max_requeues")
    config = RedisSettings()
    assert {name: getattr(StoreSettings(), name) for name in retries} == {name: getattr(config, name)
                                                                           for name in retries}


def test_with_the_default_retries_a_relay_down_for_15_minutes_still_gets_the_email(
        state_dir, smtp_outage: SmtpOutage, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    clock = Clock(time_scale=0.002)  # 15 minutes in 1.8 s
    store = Store(RedisSettings(key_prefix="t"), state_dir, clock, confirm_after_s=0).start(maintain=False)
    try:
        worker = _worker(store, smtp_outage, [_email()], clock)
        store.append_record(_record("u-outage"))

        _run_until(worker, lambda: smtp_outage.peer.mailbox.messages or _dead(store), 30,
                   at=(clock.scaled(OUTAGE_S), smtp_outage.up))

        assert _dead(store) == []
        assert len(smtp_outage.peer.mailbox.messages) == 1
        attempts = int(store.redis.hget(store.key("after", _stream_record_id(store)), "attempts"))
        assert attempts > 5  # the relay refused the first ones: it was down for the whole 15 minutes
    finally:
        store.close()


def _stream_record_id(store: Store) -> str:
    [key] = [k.decode() for k in store.redis.scan_iter(store.key("after", "*"))]
    return key.rpartition(":")[2]


def _small(store_settings: StoreSettings, **changes: Any) -> StoreSettings:
    return dataclasses.replace(store_settings, max_attempts=2, retry_backoff_s=1, retry_backoff_max_s=1,
                               requeue_dead_after_s=20, max_requeues=2, **changes)


def test_a_dead_letter_that_failed_for_a_transient_reason_is_requeued_and_sent_once_the_relay_is_back(
        state_dir, redis_settings, smtp_outage: SmtpOutage, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    clock = Clock(time_scale=0.01)  # requeued 0.2 s after it died
    store = Store(_small(redis_settings), state_dir, clock, confirm_after_s=0).start(maintain=False)
    try:
        worker = _worker(store, smtp_outage, [_email()], clock)
        store.append_record(_record("u-late"))
        _run_until(worker, lambda: _dead(store), 10)
        [letter] = _dead(store)
        assert "ConnectionRefusedError" in letter["reason"]
        assert json.loads(letter["failures"])[0]["permanent"] is False

        smtp_outage.up()
        _run_until(worker, lambda: smtp_outage.peer.mailbox.messages, 10)

        assert len(smtp_outage.peer.mailbox.messages) == 1
        assert _dead(store) == [] and store.redis.xlen(store.stream_key) == 0
    finally:
        store.close()


def test_permanent_failures_stay_dead_and_a_relay_that_never_returns_stops_the_requeues_at_max_requeues(
        state_dir, redis_settings, smtp_outage: SmtpOutage, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    clock = Clock(time_scale=0.01)
    store = Store(_small(redis_settings), state_dir, clock, confirm_after_s=0).start(maintain=False)
    try:
        worker = _worker(store, smtp_outage, [_email(subject="Re: {{ variables.name }}")], clock)
        store.append_record(_record("u-injection", record_id="r-perm", variables={"name": "x\r\nBcc: a@b.test"}))
        store.append_record(_record("u-never", record_id="r-never", variables={"name": "Ada"}))
        started = time.monotonic()
        _run_until(worker, lambda: False, 3)  # 300 s of call time: 15 requeue delays, the relay down throughout

        by_uuid = {letter["uuid"]: letter for letter in _dead(store)}
        assert set(by_uuid) == {"u-injection", "u-never"} and store.redis.xlen(store.stream_key) == 0
        assert "header injection" in by_uuid["u-injection"]["reason"]
        assert store.redis.hget(store.key("after", "r-perm"), "requeues") is None
        assert store.redis.hget(store.key("after", "r-never"), "requeues") == b"2"
        assert store.redis.hget(store.key("after", "r-never"), "attempts") == b"2"  # each requeue: max_attempts more
        assert time.monotonic() - started >= 3
    finally:
        store.close()
