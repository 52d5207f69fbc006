"""The after-call queue as an operator sees it: what waits, who holds what, what failed and why; and the way
back for a dead-lettered record once its cause is fixed (SMTP relay down for an hour, a webhook's URL wrong).

A retry puts the record back on the stream and clears its failure state in `<p>:after:<record_id>` (attempts,
dead_at, next_at, last_error) while keeping `done:<action>`, so the actions that had succeeded do not run
again: a retried record sends only the emails and webhooks that never went. XDEL of the dead letter, XADD and
the progress reset go in one script (state/records.py), so a crash never leaves the record in both streams or in
neither, and a worker requeueing it at the same moment (worker.py) cannot add it a second time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import redis

from controller.state.store import Store
from controller.aftercall.worker import GROUP


class JobsError(Exception):
    """A request the queue cannot honour (an unknown id); the message says what to run instead."""


@dataclass(frozen=True)
class DeadLetter:
    id: str
    uuid: str
    reason: str
    attempts: int
    at: str
    classification: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    record: Optional[dict[str, Any]] = None  # None when the record itself was unreadable (then `raw` holds it)
    raw: str = ""


@dataclass(frozen=True)
class QueueState:
    queued: int  # entries in the stream: new, or being processed, or waiting for a retry
    pending: dict[str, int]  # consumer -> entries it has read and not acknowledged
    dead: int
    spooled: int  # records on disk not yet confirmed in Redis (records.py)
    oldest_s: Optional[float] = None  # age of the oldest queued record: minutes here mean no worker is running


def queue_state(store: Store, group: str = GROUP) -> QueueState:
    r = store.redis
    pending: dict[str, int] = {}
    try:
        summary = r.xpending(store.stream_key, group)
        pending = {c["name"].decode(): int(c["pending"]) for c in summary.get("consumers") or []}
    except redis.ResponseError:  # no group yet: no worker has ever run
        pass
    oldest = r.xrange(store.stream_key, count=1)
    age = (store.clock.wall() * 1000 - int(oldest[0][0].split(b"-")[0])) / 1000 if oldest else None
    return QueueState(int(r.xlen(store.stream_key)), pending, int(r.xlen(store.dead_letter_key)), len(store.spool),
                      age)


def dead_letters(store: Store, limit: int = 100) -> list[DeadLetter]:
    """The oldest `limit` dead letters."""
    return [_dead_letter(entry_id, fields) for entry_id, fields in store.redis.xrange(store.dead_letter_key,
                                                                                      count=limit)]


def dead_letter(store: Store, entry_id: str) -> DeadLetter:
    rows = _rows(store, entry_id)
    return _dead_letter(*rows[0])


def retry(store: Store, entry_ids: list[str]) -> list[tuple[str, str]]:
    """Move each dead letter back to the stream; (dead letter id, new stream id) per record."""
    moved = []
    for entry_id in entry_ids:
        letter = dead_letter(store, entry_id)
        new_id = store.requeue_dead_letter(entry_id, letter.raw, (letter.record or {}).get("record_id"))
        if new_id is not None:  # None: a worker requeued it meanwhile
            moved.append((entry_id, new_id))
    return moved


def drop(store: Store, entry_ids: list[str]) -> int:
    """Delete dead letters for good (after reading them); unknown ids are refused before anything is deleted."""
    for entry_id in entry_ids:
        _rows(store, entry_id)
    return int(store.redis.xdel(store.dead_letter_key, *entry_ids)) if entry_ids else 0


def _rows(store: Store, entry_id: str) -> list:
    try:
        rows = store.redis.xrange(store.dead_letter_key, entry_id, entry_id)
    except redis.ResponseError:
        raise JobsError(f"{entry_id!r} is not a stream id (like 1795616330011-0); "
                        "`switchboard jobs list` shows the dead letters") from None
    if not rows:
        raise JobsError(f"no dead letter {entry_id}; `switchboard jobs list` shows the dead letters")
    return rows


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    text = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
    try:
        record = json.loads(text.get("record", ""))
        record = record if isinstance(record, dict) else None
    except ValueError:
        record = None
    try:
        failures = json.loads(text.get("failures", "[]"))
    except ValueError:
        failures = []
    return DeadLetter(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, text.get("uuid", ""),
                      text.get("reason", ""), int(text.get("attempts") or 0), text.get("at", ""),
                      text.get("classification", ""), failures, record, text.get("record", ""))
