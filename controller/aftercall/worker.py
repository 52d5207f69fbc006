"""The after-call worker: reads call records from the stream, classifies them, runs the agent's after-call
actions, and acknowledges a record only when every action has succeeded.

Delivery is at least once, and actions are remembered per record so a retry does not repeat them:
  - the group is created at id 0 (`XGROUP CREATE <stream> <group> 0 MKSTREAM`) so records appended before
    any worker ran are processed; each record is read once with `XREADGROUP ... STREAMS <stream> >`;
  - progress lives in `<p>:after:<record_id>` (attempts, `done:<action>`, next_at, classification,
    completed_at or dead_at), kept 7 days, so a retry or a reclaim by another worker skips what already ran,
    and a second copy of a finished record (re-added from the spool after a Redis restart) is dropped;
  - a failure leaves the entry pending and schedules it after `retry_backoff_s * 2**(attempt-1)`, at most
    `retry_backoff_max_s` (scaled by the clock; the defaults, 12 attempts from 5 s to 5 min, span about
    30 min); after `max_attempts`, or at once for a permanent failure (a template error, a header
    injection, an HTTP 4xx), the record goes to the dead-letter stream with the reason, then
    `XACK` + `XDEL` in one MULTI; success is `XACK` + `XDEL` too (never trimmed by MAXLEN);
  - a dead letter whose failures were all transient (the relay or the CRM down for longer than the retries
    lasted) is put back on the stream `requeue_dead_after_s` after it died, at most `max_requeues` times per
    record (`requeues` in its progress), with `max_attempts` more attempts each time: once the peer is back,
    the record goes without an operator; permanent failures stay dead for `switchboard jobs`;
  - entries pending on a dead consumer for `min_idle_ms` are taken over with `XAUTOCLAIM ... JUSTID`, and
    our own entries waiting for their retry are touched (`XCLAIM ... 0 JUSTID`) so nobody else takes them.
An email can still go twice if Redis fails between the SMTP 250 and recording it: the one window left.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import gevent
import gevent.event
import redis

from controller.aftercall.email import send_email
from controller.workflow.run import run_after_call
from controller.aftercall.classify import applies, classify_all, duration_s
from controller.clock import Clock
from controller.delivery import DeliveryError
from controller.log import call_logger
from controller.state.retention import expire_dead_letters
from controller.state.store import Store

log = logging.getLogger("switchboard.worker")

STALE_CONSUMER_MS = 24 * 3600 * 1000
GROUP = "after-call"
MAX_BLOCK_MS = 1000  # below the store client's 5 s socket timeout
DEAD_LETTER_PAGE = 100  # dead letters looked at per reclaim round


def _field(action: Any, name: str) -> Any:
    return action.get(name) if isinstance(action, Mapping) else getattr(action, name, None)


def action_kind(action: Any) -> str:
    """`email` or `workflow`, from the action's `type` when it has one, else from its fields."""
    kind = _field(action, "type")
    if kind:
        return str(kind)
    return "workflow" if _field(action, "request") is not None else "email" if _field(action, "to") else "unknown"


def template_vars(record: Mapping[str, Any], classifications: list[str]) -> dict[str, Any]:
    """What after-call templates see: every record field at top level, plus `record`, the main `classification`
    and all of its `classifications`."""
    return {**record, "duration_s": duration_s(record), "record": dict(record),
            "classification": classifications[0] if classifications else None, "classifications": classifications}


class Worker:
    """One consumer of the after-call stream."""

    def __init__(self, store: Store, actions_for_agent: Callable[[str], Iterable[Any]],
                 classifications: Mapping[str, Any], smtp: Any, clock: Optional[Clock] = None, *,
                 group: str = GROUP, consumer: Optional[str] = None, min_idle_ms: int = 60_000,
                 reclaim_interval_s: float = 10.0, count: int = 10, base_dir: Optional[Path] = None) -> None:
        if reclaim_interval_s * 1000 >= min_idle_ms:
            raise ValueError("reclaim_interval_s must be shorter than min_idle_ms, or our own retries get reclaimed")
        self.store = store
        self.configure(actions_for_agent, classifications, smtp, base_dir)
        self.clock = clock or store.clock
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.min_idle_ms = int(min_idle_ms)
        self.reclaim_interval_s = reclaim_interval_s
        self.count = count
        self.max_attempts = int(store.settings.max_attempts)
        self.retry_backoff_s = float(store.settings.retry_backoff_s)
        self.retry_backoff_max_s = float(store.settings.retry_backoff_max_s)
        self.requeue_dead_after_s = float(store.settings.requeue_dead_after_s)
        self.max_requeues = int(store.settings.max_requeues)
        self.retention_days = float(store.settings.retention_days)
        self._dead_cursor = "-"  # where the next look at the dead letters starts (they are oldest first)
        self._due: dict[str, float] = {}  # entry id -> wall time of its next attempt
        self._next_reclaim = 0.0
        self._group_ready = False
        self.ready = gevent.event.Event()  # set once the consumer group exists: the worker can take records
        self.finished = self.dead_lettered = 0  # records this worker completed, and sent to the dead letters

    def configure(self, actions_for_agent: Callable[[Optional[str]], Iterable[Any]],
                  classifications: Mapping[str, Any], smtp: Any, base_dir: Optional[Path]) -> None:
        """New after-call settings (a configuration reload), used from the next record on."""
        self.actions_for_agent, self.classifications, self.smtp, self.base_dir = (
            actions_for_agent, classifications, smtp, base_dir)

    @property
    def _r(self) -> redis.Redis:
        return self.store.redis

    def ensure_group(self) -> None:
        try:
            self._r.xgroup_create(self.store.stream_key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True
        self.ready.set()

    def run(self, stop: gevent.event.Event, block_ms: int = MAX_BLOCK_MS) -> None:
        """Process until `stop` is set; a Redis outage pauses the loop (with a log line), it does not end it."""
        log.info("worker started", extra={"consumer": self.consumer, "group": self.group})
        down = False
        while not stop.is_set():
            try:
                self.process_once(block_ms)
            except redis.RedisError as exc:
                if not down:
                    log.warning("worker paused: redis unavailable (%s)", exc)
                down = True
                self._group_ready = False
                stop.wait(1.0)
                continue
            except Exception:  # a bug must not end after-call processing for the whole host
                log.exception("worker round failed; retrying in 1 s")
                stop.wait(1.0)
                continue
            if down:
                log.info("worker resumed")
                down = False
            gevent.sleep(0.001)  # a timer, not sleep(0): lets the loop run timers where sockets are not patched
        log.info("worker stopped", extra={"consumer": self.consumer})

    def process_once(self, block_ms: int = MAX_BLOCK_MS) -> int:
        """Reclaim if due, retry due entries, else read new ones (blocking up to `block_ms`); entries handled."""
        if not self._group_ready:
            self.ensure_group()
        now = self.clock.wall()
        if now >= self._next_reclaim:
            self.reclaim()
            self.requeue_dead_letters()
            expire_dead_letters(self.store, self.retention_days, now)
            self._next_reclaim = now + self.reclaim_interval_s
        due = sorted(entry_id for entry_id, at in self._due.items() if at <= now)
        for entry_id in due:
            self._retry(entry_id)
        if due:
            return len(due)
        block = min(block_ms, MAX_BLOCK_MS)
        if self._due:
            block = min(block, int((min(self._due.values()) - now) * 1000) + 1)
        try:
            reply = self._r.xreadgroup(self.group, self.consumer, {self.store.stream_key: ">"},
                                       count=self.count, block=block if block > 0 else None)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream key was deleted: recreate on the next round
                self._group_ready = False
                return 0
            raise
        entries = [entry for _, stream_entries in reply or [] for entry in stream_entries]
        for entry_id, fields in entries:
            self._handle(entry_id.decode(), fields)
        return len(entries)

    def reclaim(self) -> int:
        """Touch our entries awaiting a retry, take over entries idle on other consumers, drop stale consumers."""
        stream, r = self.store.stream_key, self._r
        if self._due:
            r.xclaim(stream, self.group, self.consumer, 0, list(self._due), justid=True)
        claimed, cursor = 0, "0-0"
        for _ in range(100):  # bounded: 100 pages of `count` entries per round
            cursor_raw, ids = self._raw("XAUTOCLAIM", stream, self.group, self.consumer, self.min_idle_ms,
                                        cursor, "COUNT", self.count, "JUSTID")[:2]
            for raw_id in ids:
                entry_id = raw_id.decode()
                if entry_id not in self._due:
                    at = self._r.hget(self._progress_key_for_entry(entry_id), "next_at")
                    self._due[entry_id] = float(at) if at else 0.0
                    claimed += 1
            cursor = cursor_raw.decode()
            if cursor == "0-0":
                break
        if claimed:
            log.info("reclaimed %d pending record(s) from idle consumers", claimed)
        for consumer in r.xinfo_consumers(stream, self.group):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            if name != self.consumer and consumer["pending"] == 0 and consumer["idle"] > STALE_CONSUMER_MS:
                r.xgroup_delconsumer(stream, self.group, name)
        return claimed

    def requeue_dead_letters(self) -> int:
        """Put back on the stream one page of the dead letters that died `requeue_dead_after_s` ago or more of
        transient failures only and were requeued fewer than `max_requeues` times; the number requeued."""
        if self.max_requeues == 0:
            return 0
        cutoff_ms = (self.clock.wall() - self.clock.scaled(self.requeue_dead_after_s)) * 1000
        rows = self._r.xrange(self.store.dead_letter_key, self._dead_cursor, count=DEAD_LETTER_PAGE)
        self._dead_cursor = "-"  # the next round starts over, unless this page ends mid-stream
        requeued = 0
        for raw_id, fields in rows:
            entry_id = raw_id.decode()
            ms, _, seq = entry_id.partition("-")
            if int(ms) > cutoff_ms:  # this one and every later one died too recently
                break
            if len(rows) == DEAD_LETTER_PAGE:
                self._dead_cursor = f"{ms}-{int(seq) + 1}"
            try:
                failures = json.loads(fields.get(b"failures", b"[]"))
                record_id = json.loads(fields[b"record"]).get("record_id")
            except (KeyError, ValueError, AttributeError):  # unreadable: for an operator to look at
                continue
            if not failures or not record_id or any(f.get("permanent") for f in failures):
                continue
            if int(self._r.hget(self.store.key("after", record_id), "requeues") or 0) >= self.max_requeues:
                continue
            if self.store.requeue_dead_letter(entry_id, fields[b"record"], record_id, automatic=True):
                requeued += 1
                call_logger((fields.get(b"uuid") or b"-").decode(), "switchboard.worker").info(
                    "dead letter %s requeued: its failures were transient (%s)", entry_id,
                    fields.get(b"reason", b"").decode(errors="replace"))
        return requeued

    def _raw(self, *command: Any) -> Any:
        """A command's reply unparsed: redis-py's XAUTOCLAIM JUSTID parser drops the cursor we page with."""
        pool = self._r.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command(*command)
            return conn.read_response()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def _progress_key_for_entry(self, entry_id: str) -> str:
        rows = self._r.xrange(self.store.stream_key, entry_id, entry_id)
        if not rows:
            return self.store.key("after", entry_id)
        return self.store.key("after", self._record_id(entry_id, rows[0][1]))

    @staticmethod
    def _record_id(entry_id: str, fields: Mapping[bytes, bytes]) -> str:
        try:
            return json.loads(fields[b"record"]).get("record_id") or entry_id
        except (KeyError, ValueError, AttributeError):
            return entry_id

    def _retry(self, entry_id: str) -> None:
        rows = self._r.xrange(self.store.stream_key, entry_id, entry_id)
        if not rows:  # deleted from the stream by someone else: nothing left to do for it
            self._r.xack(self.store.stream_key, self.group, entry_id)
            self._due.pop(entry_id, None)
            return
        self._handle(entry_id, rows[0][1])

    def _handle(self, entry_id: str, fields: Mapping[bytes, bytes]) -> None:
        raw = fields.get(b"record", b"")
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.error("stream entry %s holds no readable record (%s)", entry_id, exc)
            self._dead_letter(entry_id, raw, {}, [("record", f"unreadable record: {exc}", True)], 1, None)
            return
        uuid = str(record.get("uuid") or "-")
        clog = call_logger(uuid, "switchboard.worker", entry=entry_id)
        pkey = self.store.key("after", record.get("record_id") or entry_id)
        keys = set(self._r.hkeys(pkey))
        if keys & {b"completed_at", b"dead_at"}:  # a second copy (the spool re-added it after a Redis restart)
            self._drop(entry_id)
            clog.info("record %s already processed; duplicate entry dropped", record.get("record_id"))
            return
        done = {k.decode()[5:] for k in keys if k.startswith(b"done:")}
        attempt = int(self._r.hincrby(pkey, "attempts", 1))
        self._r.expire(pkey, self.store.progress_ttl_s)
        try:
            names = classify_all(record, self.classifications)
            classification = names[0] if names else None
            variables = template_vars(record, names)
        except (TypeError, ValueError) as exc:  # a field of the wrong type (duration_s: "abc"): no retry can help
            self._dead_letter(entry_id, raw, record, [("classify", f"record cannot be classified: {exc}", True)],
                              attempt, None, pkey)
            clog.error("record dead-lettered: cannot be classified: %s", exc)
            return
        failures: list[tuple[str, str, bool]] = []
        try:
            actions = list(self.actions_for_agent(record.get("agent")))
        except Exception as exc:  # the agent left the configuration since the call: keep the record, say why
            actions, failures = [], [("config", f"no after-call actions for agent {record.get('agent')!r}: {exc}",
                                      False)]
        for action in actions:
            name = _field(action, "name")
            if name in done or not applies(action, names):
                continue
            try:
                self._run(action, record, variables, uuid)
            except Exception as exc:  # every failure is retried or dead-lettered, never lost
                failures.append((name, str(exc) or type(exc).__name__, isinstance(exc, DeliveryError) and exc.permanent))
                self.store.incr(f"delivery:{action_kind(action)}:failed", uuid=uuid)
                continue
            self.store.incr(f"delivery:{action_kind(action)}:ok", uuid=uuid)
            self._r.hset(pkey, f"done:{name}", self.clock.now().isoformat())
        if not failures:
            self._finish(entry_id, pkey, classification)
            clog.info("after-call actions done", extra={"classification": classification, "attempt": attempt})
        elif any(permanent for *_, permanent in failures) or attempt >= self.max_attempts:
            self._dead_letter(entry_id, raw, record, failures, attempt, classification, pkey)
            clog.error("record dead-lettered after %d attempt(s): %s", attempt, _reason(failures))
        else:
            delay = self.clock.scaled(min(self.retry_backoff_s * 2 ** (attempt - 1), self.retry_backoff_max_s))
            self._due[entry_id] = self.clock.wall() + delay
            self._r.hset(pkey, mapping={"next_at": self._due[entry_id], "last_error": _reason(failures),
                                        "classification": classification or ""})
            clog.warning("after-call attempt %d of %d failed, retry in %.1f s: %s", attempt, self.max_attempts,
                         delay, _reason(failures))

    def _run(self, action: Any, record: dict[str, Any], variables: dict[str, Any], uuid: str) -> None:
        kind = action_kind(action)
        if kind == "email":
            send_email(action, variables, self.smtp, uuid=uuid, clock=self.clock, base_dir=self.base_dir)
        elif kind == "workflow":
            run_after_call(action, record, variables, uuid=uuid, clock=self.clock)
        else:
            raise _Permanent(f"after-call action type {kind!r} is not email or workflow")

    def _finish(self, entry_id: str, pkey: str, classification: Optional[str]) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self.store.stream_key, self.group, entry_id)
        pipe.xdel(self.store.stream_key, entry_id)
        pipe.hset(pkey, mapping={"completed_at": self.clock.now().isoformat(), "classification": classification or ""})
        pipe.expire(pkey, self.store.progress_ttl_s)
        pipe.execute()
        self._due.pop(entry_id, None)
        self.finished += 1

    def _drop(self, entry_id: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self.store.stream_key, self.group, entry_id)
        pipe.xdel(self.store.stream_key, entry_id)
        pipe.execute()
        self._due.pop(entry_id, None)

    def _dead_letter(self, entry_id: str, raw: bytes, record: Mapping[str, Any],
                     failures: list[tuple[str, str, bool]], attempts: int, classification: Optional[str],
                     pkey: Optional[str] = None) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xadd(self.store.dead_letter_key, {
            "record": raw, "entry_id": entry_id, "uuid": str(record.get("uuid") or ""),
            "reason": _reason(failures), "attempts": attempts, "classification": classification or "",
            "failures": json.dumps([{"action": a, "error": e, "permanent": p} for a, e, p in failures]),
            "at": self.clock.now().isoformat(),
        })
        if pkey:
            pipe.hset(pkey, "dead_at", self.clock.now().isoformat())
        pipe.xack(self.store.stream_key, self.group, entry_id)
        pipe.xdel(self.store.stream_key, entry_id)
        pipe.execute()
        self._due.pop(entry_id, None)
        self.dead_lettered += 1

    def waiting(self) -> dict[str, float]:
        """Entries of this worker awaiting a retry: entry id -> wall time it is due."""
        return dict(self._due)


def after_call_settings(config: Any) -> tuple[Callable[[Optional[str]], list[Any]], Mapping[str, Any], Any,
                                              Optional[Path]]:
    """What a worker takes from a loaded configuration: each agent's `actions.after_call`, `classifications`,
    `smtp`, and the directory templates are relative to."""
    where = getattr(config, "display_path", "the configuration")

    def actions_for_agent(agent_id: Optional[str]) -> list[Any]:
        agent = config.agents.get(agent_id) if agent_id else None
        if agent is None:
            raise KeyError(f"agent {agent_id!r} is not in {where}")
        return list(agent.actions.after_call)

    return actions_for_agent, config.classifications, config.smtp, getattr(config, "base_dir", None)


def build_worker(config: Any, store: Store, clock: Optional[Clock] = None, **options: Any) -> Worker:
    """The worker for a loaded configuration; the take-over of a dead consumer's entries (60 s idle, looked
    for every 10 s) shrinks with `server.time_scale` like every other wait."""
    actions_for_agent, classifications, smtp, base_dir = after_call_settings(config)
    scale = (clock or store.clock).time_scale
    options.setdefault("min_idle_ms", max(1, round(60_000 * scale)))
    options.setdefault("reclaim_interval_s", 10.0 * scale)
    return Worker(store, actions_for_agent, classifications, smtp, clock, base_dir=base_dir, **options)


class _Permanent(Exception):
    permanent = True


def _reason(failures: list[tuple[str, str, bool]]) -> str:
    return "; ".join(f"{action}: {error}" for action, error, _ in failures)
