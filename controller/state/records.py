"""The after-call stream: every call's record, added to Redis so that no crash loses it.

Keys (`<p>` is `redis.key_prefix`):
  `<p>:<stream>`                after-call stream, one field `record` (the call record as JSON)
  `<p>:<dead_letter_stream>`    records whose after-call actions kept failing, with the reason (aftercall/worker.py)
  `<p>:after:<record_id>`       the record's marker, then the worker's progress (attempts, actions done)

A call record must survive a SIGKILL of Redis right after its XADD, and Redis's reply does not promise that:
with `everysec`, while a background fsync is running Redis postpones writing its AOF buffer for up to 2 s
and replies meanwhile (the lost record that made this design: tests/test_process.py under load). So the
spool (spool.py) is a write-ahead log: the record is fsynced to a file first (0.4 ms on this VM, in the
threadpool), then XADDed together with its marker `<p>:after:<record_id>` in one MULTI, and the file is
deleted only when the same Redis server (same `run_id`) has held the record for `confirm_after_s` (3 s:
past the 2 s postponement). A restarted or failed-over Redis (another `run_id`) has every remaining file
checked against its marker and re-added when missing; the worker drops a record it has already finished,
so a re-add never sends an email twice. `appendfsync always` would close the gap too, at 0.3 to 5 ms a
write on Redis's single thread for every live call's writes (bench/store_fsync.py). On an external Redis,
the host-crash promise is the operator's `appendfsync`.

While Redis is unreachable, records stay in the spool and are added in order before the next append and
every `REPLAY_INTERVAL_S`.
"""
from __future__ import annotations

import json
import logging
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, Optional, Self

import gevent
import gevent.event
import gevent.lock
import redis

from controller.clock import Clock
from controller.log import call_logger
from controller.state.connection import Connection, dumps
from controller.state.spool import Spool

log = logging.getLogger("switchboard.store")

REPLAY_INTERVAL_S = 5.0
CONFIRM_AFTER_S = 3.0  # Redis's everysec may postpone the AOF write of an acknowledged command by 2 s
PROGRESS_TTL_S = 7 * 24 * 3600  # `<p>:after:<record_id>`: the record's marker, then the worker's progress
# (shorter when redis.retention_days is)

# A dead letter back on the stream, its failure state cleared (`done:<action>` kept); `requeues` counts the
# worker's automatic ones. Only the process whose XDEL removed the dead letter adds it: never twice.
_REQUEUE = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', 'record', ARGV[2])
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[3], 'attempts', 'dead_at', 'next_at', 'last_error')
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[3], 'requeues', 1) end
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return id
"""


class RecordStream(Connection):
    """The after-call stream on Redis, with the spool as its write-ahead log and a greenlet keeping them in step."""

    def __init__(self, settings: Any, state_dir: Path, clock: Optional[Clock] = None, *,
                 replay_interval_s: float = REPLAY_INTERVAL_S, confirm_after_s: float = CONFIRM_AFTER_S) -> None:
        super().__init__(settings, state_dir, clock)
        self.replay_interval_s = replay_interval_s
        self.confirm_after_s = confirm_after_s
        self.spool = Spool(self.state_dir / "spool")
        self._spool_lock = gevent.lock.RLock()
        self._held: dict[str, float] = {}  # spool file -> monotonic time Redis (`_run_id`) was known to hold it
        self._lacking: set[str] = set()  # spool files of this process Redis may lack (down, or since replaced)
        self._adding: set[str] = set()  # spool files whose XADD is under way (append_record)
        self._closing = gevent.event.Event()
        self._maintainer: Optional[gevent.Greenlet] = None
        self.stream_key = self.key(settings.stream)
        self.dead_letter_key = self.key(settings.dead_letter_stream)
        self.progress_ttl_s = int(min(PROGRESS_TTL_S, settings.retention_days * 86400))

    def start(self, *, maintain: bool = True) -> Self:
        """Connect (or start the embedded Redis); with `maintain`, a greenlet restarts a dead embedded Redis
        and syncs the spool every `replay_interval_s`."""
        super().start()
        if len(self.spool):
            log.info("call records wait in the spool", extra={"records_on_disk": len(self.spool)})
        if maintain:
            self.sync_spool()
            self._maintainer = gevent.spawn(self._maintain)
        return self

    def close(self) -> bool:
        """Stop the maintainer, then the connection; True when the embedded Redis stopped cleanly."""
        self._closing.set()
        if self._maintainer is not None:
            self._maintainer.kill(block=True, timeout=5)
        stopped = super().close()
        if stopped:
            with self._spool_lock:  # a clean shutdown fsynced the AOF: what the server held is safe
                for name in self._held:
                    self.spool.remove(self.spool.directory / name)
                self._held.clear()
        return stopped

    def _maintain(self) -> None:
        while not self._closing.wait(self.replay_interval_s):
            try:
                self.restart_embedded_if_dead()
                if self.spool.pending():
                    self.sync_spool()
            except Exception:  # the loop must outlive any one failure; the next round tries again
                log.exception("store maintenance failed")

    def append_record(self, record: dict[str, Any]) -> Optional[str]:
        """Spool the record, then XADD `<p>:<stream> * record <json>`; the stream id, or None while Redis is
        down (the record waits in the spool).

        A `record_id` is added when missing: the worker keys its progress on it, so a record added twice
        (a Redis restart before its file was deleted) does not send its emails twice.
        """
        record = {**record, "record_id": record.get("record_id") or uuidlib.uuid4().hex}
        payload = dumps(record)
        uuid = record.get("uuid")
        if self._client is not None and self._available() and self._waiting():
            self.sync_spool()  # records spooled earlier go first
        # No lock from here: appends of other calls run meanwhile (one lock for all made them queue behind each
        # other and behind the spool sweep: 59 ms p99 at 2,000 calls). sync_spool leaves a file in `_adding` alone.
        clog = call_logger(uuid or "-", "switchboard.store")
        try:
            path = gevent.get_hub().threadpool.apply(self.spool.write, (payload, int(self.clock.wall() * 1e6)))
        except OSError as exc:
            path = None
            clog.error("cannot write the call record to %s (%s): it goes to redis alone, unprotected from a "
                       "redis crash; free the disk or fix the directory", self.spool.directory, exc)
        if self._client is not None and self._available() and (path is None or not self._waiting(but=path.name)):
            name = path.name if path is not None else ""
            self._adding.add(name)
            try:
                entry_id = self._add(payload, record["record_id"])
            except redis.RedisError as exc:
                self._mark_down(uuid, "append_record", exc)
            else:
                self._mark_up()
                if path is not None:
                    self._held[name] = time.monotonic()
                return entry_id
            finally:
                self._adding.discard(name)
        if path is None:
            clog.error("call record LOST: neither redis nor %s took it; here it is, to add by hand "
                       "(XADD %s * record '<json>'): %s", self.spool.directory, self.stream_key, payload)
            return None
        self._lacking.add(path.name)
        why = "older records still wait for redis" if self._available() else "redis unavailable"
        clog.warning("%s: call record kept in %s", why, path)
        return None

    def _waiting(self, but: str = "") -> bool:
        """Records this process spooled that Redis does not have yet."""
        return any(name != but for name in self._lacking)

    def _add(self, payload: str, record_id: str) -> str:
        marker = self.key("after", record_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.stream_key, {"record": payload})
        pipe.hset(marker, "queued_at", self.clock.now().isoformat())
        pipe.expire(marker, self.progress_ttl_s)
        return pipe.execute()[0].decode()

    def requeue_dead_letter(self, entry_id: str, raw: str | bytes, record_id: Optional[str], *,
                            automatic: bool = False) -> Optional[str]:
        """Move dead letter `entry_id` back to the stream (XDEL, XADD and the progress reset in one script);
        the new stream id, or None when the dead letter was already gone (another worker or operator moved it)."""
        progress = self.key("after", record_id or entry_id)
        new_id = self.redis.eval(_REQUEUE, 3, self.dead_letter_key, self.stream_key, progress, entry_id, raw,
                                 "1" if record_id else "0", "1" if automatic else "0", self.progress_ttl_s)
        return new_id.decode() if new_id else None

    def sync_spool(self) -> int:
        """Add what Redis lacks, delete the files of what it has held long enough; the number of records added.

        A file this process did not add (spooled during an outage, left by a dead process, or whose Redis has
        restarted since) is checked against its marker and added when missing; one not yet
        `confirm_after_s` old and written by another process is left to that process. Stops at the first
        Redis failure; a process that finds the spool locked by another leaves it to that one.
        """
        added = 0
        with self._spool_lock, self.spool.exclusive() as mine:
            if not mine or self._client is None or not self._available():
                return 0
            try:
                run_id = self._client.info("server")["run_id"]
                if run_id != self._run_id:  # a restart, or a failover: what the old server held may be gone
                    self._run_id = run_id
                    self._lacking |= set(self._held)
                    self._held.clear()
                pending = self.spool.pending()
                names = {path.name for path in pending}
                self._held = {name: at for name, at in self._held.items() if name in names}
                self._lacking &= names
                for path in pending:
                    if path.name in self._adding:
                        continue
                    held_since = self._held.get(path.name)
                    if held_since is None:
                        if path.name not in self._lacking and _age_s(path) < self.confirm_after_s:
                            continue
                        if self._add_if_missing(path):
                            added += 1
                        self._lacking.discard(path.name)
                        held_since = self._held[path.name] = time.monotonic()
                    if time.monotonic() - held_since >= self.confirm_after_s:
                        self.spool.remove(path)
                        del self._held[path.name]
            except redis.RedisError as exc:
                self._mark_down(None, "sync_spool", exc)
            else:
                self._mark_up()
        if added:
            log.info("added %d spooled call record(s) to the stream", added, extra={"records_on_disk": len(self.spool)})
        return added

    def _add_if_missing(self, path: Path) -> bool:
        try:
            payload = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # another process deleted it meanwhile: it was held
            return False
        try:
            record_id = json.loads(payload).get("record_id")
        except (ValueError, AttributeError) as exc:  # the worker dead-letters what it cannot read
            log.error("spooled record %s is unreadable (%s); adding it as it is", path, exc)
            record_id = None
        if record_id and self.redis.exists(self.key("after", record_id)):
            return False
        self._add(payload, record_id or uuidlib.uuid4().hex)
        return True


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
