"""How long call data stays, and erasing it on request: dead letters past `redis.retention_days`, and
`switchboard calls purge` for one caller's calls or everything before a date.

Call data in Redis lives in: the live call hashes and their lists (TTL `call_ttl_s`), the after-call stream
(records waiting for the worker, deleted once delivered), the dead letters (kept for `switchboard jobs` until
retention removes them), the records' progress markers (TTL at most 7 days); and on disk in the spool (records
not yet confirmed in Redis). A purge goes through all of them, so nothing of an erased caller is left but the
global counters, which hold no personal data.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator, Optional

import redis

from controller.state.store import Store

log = logging.getLogger("switchboard.retention")
PAGE = 500
DAY_S = 86400


@dataclass
class PurgeReport:
    """What a purge removed (or, with dry_run, would remove), by where it was."""

    dead_letters: int = 0
    waiting_records: int = 0
    live_calls: int = 0
    spool_files: int = 0
    uuids: list[str] = field(default_factory=list)

    def total(self) -> int:
        return self.dead_letters + self.waiting_records + self.live_calls + self.spool_files


def record_matcher(caller: Optional[str], before: Optional[datetime]) -> Callable[[dict[str, Any], int], bool]:
    """Whether a record (and its stream id's milliseconds) is one to purge: the caller is either party of the call
    (an outbound call's far end is its destination), or the call ended before `before`."""
    cutoff_ms = before.timestamp() * 1000 if before is not None else None

    def match(record: dict[str, Any], ms: int) -> bool:
        if caller is not None and caller in (record.get("caller"), record.get("destination")):
            return True
        return cutoff_ms is not None and ms < cutoff_ms
    return match


def _entries(r: redis.Redis, key: str) -> Iterator[tuple[str, int, dict[bytes, bytes]]]:
    """Every entry of a stream, oldest first, page by page: (id, its milliseconds, fields)."""
    cursor = "-"
    while True:
        rows = r.xrange(key, cursor, count=PAGE)
        for raw_id, fields in rows:
            entry_id = raw_id.decode()
            yield entry_id, int(entry_id.partition("-")[0]), fields
        if len(rows) < PAGE:
            return
        ms, _, seq = rows[-1][0].decode().partition("-")
        cursor = f"{ms}-{int(seq) + 1}"


def _record(fields: dict[bytes, bytes]) -> dict[str, Any]:
    try:
        record = json.loads(fields.get(b"record", b"{}"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def purge(store: Store, *, caller: Optional[str] = None, before: Optional[datetime] = None,
          dry_run: bool = False) -> PurgeReport:
    """Erase the calls of `caller`, or those before `before`, everywhere call data is kept."""
    if caller is None and before is None:
        raise ValueError("purge needs a caller or a date")
    match, report, r = record_matcher(caller, before), PurgeReport(), store.redis
    for key, count in ((store.dead_letter_key, "dead_letters"), (store.stream_key, "waiting_records")):
        doomed = [(entry_id, _record(fields)) for entry_id, ms, fields in _entries(r, key)
                  if match(_record(fields), ms)]
        setattr(report, count, len(doomed))
        report.uuids += [record.get("uuid", "?") for _, record in doomed]
        if doomed and not dry_run:
            pipe = r.pipeline(transaction=True)
            for entry_id, record in doomed:
                pipe.xdel(key, entry_id)
                if key == store.stream_key:  # delivered never: nothing will ask for it again
                    for group in r.xinfo_groups(key):
                        pipe.xack(key, group["name"], entry_id)
                if record.get("record_id"):
                    pipe.delete(store.key("after", record["record_id"]))
            pipe.execute()
    if caller is not None:
        for key in r.scan_iter(match=store.key("call", "*"), count=PAGE):
            if key.count(b":") != store.key("call", "x").count(":"):
                continue  # a call's transcript or actions list: removed with its hash
            raw = r.hget(key, "caller")
            if raw is not None and json.loads(raw) == caller:
                uuid = key.decode().rsplit(":", 1)[1]
                report.live_calls += 1
                report.uuids.append(uuid)
                if not dry_run:
                    r.delete(key, f"{key.decode()}:transcript", f"{key.decode()}:actions")
                    r.srem(store.key("live"), uuid)
    for path in store.spool.pending():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if match(record, int(path.stem.partition("-")[0]) // 1000):
            report.spool_files += 1
            if not dry_run:
                store.spool.remove(path)
    if not dry_run and report.total():
        log.info("purged %d dead letter(s), %d waiting record(s), %d live call(s), %d spool file(s)",
                 report.dead_letters, report.waiting_records, report.live_calls, report.spool_files)
    return report


def expire_dead_letters(store: Store, retention_days: float, now_s: float) -> int:
    """Remove the dead letters older than `retention_days` (and their progress markers); the number removed."""
    cutoff_ms = int((now_s - retention_days * DAY_S) * 1000)
    r, removed = store.redis, 0
    rows = r.xrange(store.dead_letter_key, "-", f"({cutoff_ms}-0", count=PAGE)
    if rows:
        pipe = r.pipeline(transaction=True)
        for raw_id, fields in rows:
            pipe.xdel(store.dead_letter_key, raw_id)
            record_id = _record(fields).get("record_id")
            if record_id:
                pipe.delete(store.key("after", record_id))
        pipe.execute()
        removed = len(rows)
        log.info("removed %d dead letter(s) older than redis.retention_days=%g", removed, retention_days)
    return removed
