"""Redis state of live calls, global counters, and the after-call stream, none of which may fail a call.

Keys (`<p>` is `redis.key_prefix`):
  `<p>:call:<uuid>`             hash, every value JSON: uuid, agent, caller, state, started_at, updated_at,
                                variables, `count:<name>` per-call counters; TTL `call_ttl_s`, refreshed on write
  `<p>:call:<uuid>:transcript`  list of JSON entries, same TTL
  `<p>:call:<uuid>:actions`     list of JSON entries, same TTL
  `<p>:counters`                hash of global counters (`calls:refused`, `action:<agent>.<action>:<result>`)
  `<p>:<stream>`                after-call stream, one field `record` (the call record as JSON)
  `<p>:<dead_letter_stream>`    records whose after-call actions kept failing, with the reason
  `<p>:after:<record_id>`       worker progress per record (attempts, actions done), see worker.py

Redis is chosen by `REDIS_URL` (env first, then `redis.url`): `redis://`, `rediss://`, `unix://`, or
`redis+sentinel://[:password@]host:port,host:port/<master>`. With neither, a private Redis runs under
`<state_dir>/redis/` (redis_server.py) with `appendonly yes`, `appendfsync everysec`.

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

When Redis is unreachable, call-time methods log once per outage (and once per call, with its uuid), skip
Redis for `RETRY_AFTER_S` so calls do not wait on timeouts, and carry on; records stay in the spool and
are added in order before the next append and every `REPLAY_INTERVAL_S`.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import unquote, urlsplit

import gevent
import gevent.event
import gevent.lock
import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from controller.clock import Clock
from controller.log import call_logger
from controller.state.embedded_redis import EmbeddedRedis
from controller.state.spool import Spool

log = logging.getLogger("switchboard.store")

RETRY_AFTER_S = 1.0
REPLAY_INTERVAL_S = 5.0
CONFIRM_AFTER_S = 3.0  # Redis's everysec may postpone the AOF write of an acknowledged command by 2 s
PROGRESS_TTL_S = 7 * 24 * 3600  # `<p>:after:<record_id>`: the record's marker, then the worker's progress
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass
class StoreSettings:
    """What a Store reads of the `redis:` settings (where Redis is, key names, call TTL, the worker's retries),
    for a Store built without a configuration (tests, benches); a configuration passes its `redis:` section
    (config.schema.RedisSettings, same fields)."""

    url: Optional[str] = None
    call_ttl_s: int = 3600
    key_prefix: str = "switchboard"
    stream: str = "calls"
    dead_letter_stream: str = "calls:dead"
    max_attempts: int = 5
    retry_backoff_s: float = 5.0


def _client_options(socket_timeout: float) -> dict[str, Any]:
    """Timeouts, and one immediate retry on a dropped connection only: the outage logic does the rest."""
    return dict(socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1, (redis.ConnectionError,)))


def connect(url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for `url`; `redis+sentinel://` asks the sentinels for the current master (and follows failover)."""
    options = _client_options(socket_timeout)
    if not url.startswith("redis+sentinel://"):
        return redis.Redis.from_url(url, **options)
    parts = urlsplit(url)
    master = parts.path.strip("/")
    hosts = parts.netloc.rpartition("@")[2]
    if not master or not hosts:
        raise ValueError(f"REDIS_URL {url!r}: expected redis+sentinel://[:password@]host:port,host:port/<master name>")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        sentinels.append((name, int(port)))
    password = unquote(parts.password) if parts.password else None
    sentinel = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=_client_options(socket_timeout))
    return sentinel.master_for(master, password=password, **options)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class Store:
    """Per-call state, counters and the after-call stream on Redis; the spool is the stream's write-ahead log."""

    def __init__(self, settings: Any, state_dir: Path, clock: Optional[Clock] = None, *,
                 replay_interval_s: float = REPLAY_INTERVAL_S, confirm_after_s: float = CONFIRM_AFTER_S) -> None:
        self.settings = settings
        self.replay_interval_s = replay_interval_s
        self.confirm_after_s = confirm_after_s
        self.state_dir = Path(state_dir)
        self.clock = clock or Clock()
        self.url: Optional[str] = os.environ.get("REDIS_URL") or getattr(settings, "url", None)
        self.embedded: Optional[EmbeddedRedis] = None
        self.spool = Spool(self.state_dir / "spool")
        self._client: Optional[redis.Redis] = None
        self._down_until = 0.0  # monotonic; while in the future, call-time methods skip Redis
        self._outage = False
        self._outage_uuids: set[str] = set()
        self._spool_lock = gevent.lock.RLock()
        self._held: dict[str, float] = {}  # spool file -> monotonic time Redis (`_run_id`) was known to hold it
        self._lacking: set[str] = set()  # spool files of this process Redis may lack (down, or since replaced)
        self._run_id: Optional[str] = None
        self._closing = gevent.event.Event()
        self._maintainer: Optional[gevent.Greenlet] = None
        prefix = settings.key_prefix
        self.counters_key = f"{prefix}:counters"
        self.stream_key = f"{prefix}:{settings.stream}"
        self.dead_letter_key = f"{prefix}:{settings.dead_letter_stream}"

    @classmethod
    def open(cls, cfg: Any, clock: Optional[Clock] = None) -> "Store":
        """`Store(cfg.redis, cfg.server.state_dir)`, started."""
        return cls(cfg.redis, cfg.server.state_dir, clock).start()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, *, maintain: bool = True) -> "Store":
        """Connect (or start the embedded Redis); with `maintain`, a greenlet restarts a dead embedded Redis
        and syncs the spool every `replay_interval_s`."""
        if self.url:
            self._client = connect(self.url)
        else:
            self.embedded = EmbeddedRedis(self.state_dir / "redis").start()
            self._client = self.embedded.client(**_client_options(SOCKET_TIMEOUT_S))
        where = self.url or self.embedded.url
        try:
            self._run_id = self._client.info("server")["run_id"]
            log.info("redis connected", extra={"redis": where, "records_on_disk": len(self.spool)})
        except redis.RedisError as exc:
            self._mark_down(None, "start", exc)
        if maintain:
            self.sync_spool()
            self._maintainer = gevent.spawn(self._maintain)
        return self

    def close(self) -> None:
        self._closing.set()
        if self._maintainer is not None:
            self._maintainer.kill(block=True, timeout=5)
        if self._client is not None:
            self._client.close()
        if self.embedded is not None and self.embedded.stop():
            with self._spool_lock:  # a clean shutdown fsynced the AOF: what the server held is safe
                for name in self._held:
                    self.spool.remove(self.spool.directory / name)
                self._held.clear()

    @property
    def redis(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("Store.start() was not called")
        return self._client

    def key(self, *parts: str) -> str:
        return ":".join((self.settings.key_prefix, *parts))

    def restart_embedded_if_dead(self) -> bool:
        """Start the private Redis again (same data dir, AOF replayed) if it died; True when it did."""
        if self.embedded is None or self.embedded.alive():
            return False
        log.warning("embedded redis is not running; restarting it on %s", self.embedded.data_dir)
        self.embedded.start()
        self._down_until = 0.0
        return True

    def _maintain(self) -> None:
        while not self._closing.wait(self.replay_interval_s):
            try:
                self.restart_embedded_if_dead()
                if self.spool.pending():
                    self.sync_spool()
            except Exception:  # the loop must outlive any one failure; the next round tries again
                log.exception("store maintenance failed")

    # -- outage handling -------------------------------------------------------------------------------------

    def _available(self) -> bool:
        return self.clock.monotonic() >= self._down_until

    def _mark_down(self, uuid: Optional[str], op: str, exc: Exception) -> None:
        self._down_until = self.clock.monotonic() + RETRY_AFTER_S
        if not self._outage:
            self._outage = True
            log.warning("redis unavailable (%s: %s); calls carry on, records wait in the spool", op, exc)
        self._note_call(uuid, op, exc)

    def _note_call(self, uuid: Optional[str], op: str, exc: Optional[Exception]) -> None:
        """One line per call per outage, so grepping a call's uuid shows that its state is incomplete."""
        if uuid and uuid not in self._outage_uuids:
            self._outage_uuids.add(uuid)
            why = f": {exc}" if exc else " (skipped while it is down)"
            call_logger(uuid, "switchboard.store").warning("redis unavailable during %s%s", op, why)

    def _mark_up(self) -> None:
        if self._outage:
            log.info("redis is back", extra={"calls_affected": len(self._outage_uuids)})
            self._outage, self._down_until = False, 0.0
            self._outage_uuids.clear()

    def _safe(self, uuid: Optional[str], op: str, fn: Callable[[redis.Redis], T], default: T) -> T:
        if self._client is None or not self._available():
            self._note_call(uuid, op, None)
            return default
        try:
            result = fn(self._client)
        except redis.RedisError as exc:
            self._mark_down(uuid, op, exc)
            return default
        self._mark_up()
        return result

    # -- per-call state --------------------------------------------------------------------------------------

    def _call_key(self, uuid: str, suffix: str = "") -> str:
        return self.key("call", uuid) + (f":{suffix}" if suffix else "")

    def call_started(self, uuid: str, agent: str, caller: str, variables: dict[str, Any]) -> None:
        now = self.clock.now().isoformat()
        self._write_fields(uuid, "call_started", {"uuid": uuid, "agent": agent, "caller": caller, "state": "ringing",
                                                  "started_at": now, "updated_at": now, "variables": variables})

    def update_call(self, uuid: str, **fields: Any) -> None:
        """Set hash fields (each stored as JSON), e.g. `update_call(u, state="answered", answered_at=...)`."""
        self._write_fields(uuid, "update_call", {**fields, "updated_at": self.clock.now().isoformat()})

    def _write_fields(self, uuid: str, op: str, fields: dict[str, Any]) -> None:
        key, ttl = self._call_key(uuid), int(self.settings.call_ttl_s)

        def write(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.hset(key, mapping={name: _dumps(value) for name, value in fields.items()})
            pipe.expire(key, ttl)
            pipe.execute()

        self._safe(uuid, op, write, None)

    def incr_call(self, uuid: str, counter: str, by: int = 1) -> Optional[int]:
        """A per-call counter (`count:<counter>` in the call hash); None while Redis is down."""
        key, ttl = self._call_key(uuid), int(self.settings.call_ttl_s)

        def incr(r: redis.Redis) -> int:
            pipe = r.pipeline(transaction=False)
            pipe.hincrby(key, f"count:{counter}", by)
            pipe.expire(key, ttl)
            return int(pipe.execute()[0])

        return self._safe(uuid, "incr_call", incr, None)

    def append_transcript(self, uuid: str, entry: dict[str, Any]) -> None:
        self._push(uuid, "transcript", entry)

    def append_action(self, uuid: str, entry: dict[str, Any]) -> None:
        self._push(uuid, "actions", entry)

    def _push(self, uuid: str, which: str, entry: dict[str, Any]) -> None:
        key, ttl = self._call_key(uuid, which), int(self.settings.call_ttl_s)

        def push(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.rpush(key, _dumps(entry))
            pipe.expire(key, ttl)
            pipe.expire(self._call_key(uuid), ttl)
            pipe.execute()

        self._safe(uuid, f"append_{which}", push, None)

    def call_state(self, uuid: str) -> dict[str, Any]:
        """The call hash decoded, plus `transcript` and `actions`; {} when unknown, expired, or Redis is down."""
        def read(r: redis.Redis) -> dict[str, Any]:
            pipe = r.pipeline(transaction=False)
            pipe.hgetall(self._call_key(uuid))
            pipe.lrange(self._call_key(uuid, "transcript"), 0, -1)
            pipe.lrange(self._call_key(uuid, "actions"), 0, -1)
            fields, transcript, actions = pipe.execute()
            if not fields and not transcript and not actions:
                return {}
            state = {k.decode(): json.loads(v) for k, v in fields.items()}
            state["transcript"] = [json.loads(item) for item in transcript]
            state["actions"] = [json.loads(item) for item in actions]
            return state

        return self._safe(uuid, "call_state", read, {})

    def call_ttl(self, uuid: str) -> Optional[int]:
        """Seconds left before the call's state expires (None when unknown or Redis is down)."""
        ttl = self._safe(uuid, "call_ttl", lambda r: r.ttl(self._call_key(uuid)), None)
        return ttl if ttl is not None and ttl >= 0 else None

    # -- global counters -------------------------------------------------------------------------------------

    def incr(self, counter: str, by: int = 1, uuid: Optional[str] = None) -> Optional[int]:
        """HINCRBY `<p>:counters <counter> <by>`; None while Redis is down."""
        return self._safe(uuid, "incr", lambda r: int(r.hincrby(self.counters_key, counter, by)), None)

    def counters(self) -> dict[str, int]:
        raw = self._safe(None, "counters", lambda r: r.hgetall(self.counters_key), {})
        return {k.decode(): int(v) for k, v in sorted(raw.items())}

    # -- after-call stream -----------------------------------------------------------------------------------

    def append_record(self, record: dict[str, Any]) -> Optional[str]:
        """Spool the record, then XADD `<p>:<stream> * record <json>`; the stream id, or None while Redis is
        down (the record waits in the spool).

        A `record_id` is added when missing: the worker keys its progress on it, so a record added twice
        (a Redis restart before its file was deleted) does not send its emails twice.
        """
        record = {**record, "record_id": record.get("record_id") or uuidlib.uuid4().hex}
        payload = _dumps(record)
        uuid = record.get("uuid")
        with self._spool_lock:
            if self._client is not None and self._available() and self._waiting():
                self.sync_spool()  # records spooled earlier go first
            clog = call_logger(uuid or "-", "switchboard.store")
            try:
                path = gevent.get_hub().threadpool.apply(self.spool.write, (payload, int(self.clock.wall() * 1e6)))
            except OSError as exc:
                path = None
                clog.error("cannot write the call record to %s (%s): it goes to redis alone, unprotected from a "
                           "redis crash; free the disk or fix the directory", self.spool.directory, exc)
            if self._client is not None and self._available() and (path is None or not self._waiting(but=path.name)):
                try:
                    entry_id = self._add(payload, record["record_id"])
                except redis.RedisError as exc:
                    self._mark_down(uuid, "append_record", exc)
                else:
                    self._mark_up()
                    if path is not None:
                        self._held[path.name] = time.monotonic()
                    return entry_id
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
        pipe.expire(marker, PROGRESS_TTL_S)
        return pipe.execute()[0].decode()

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
