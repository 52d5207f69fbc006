"""Reaching Redis from code that must never fail a call: the client, the embedded server, outages.

Redis is chosen by `REDIS_URL` (env first, then `redis.url`): `redis://`, `rediss://`, `unix://`, or
`redis+sentinel://[:password@]host:port,host:port/<master>`. With neither, a private Redis runs under
`<state_dir>/redis/` (embedded_redis.py) with `appendonly yes`, `appendfsync everysec`.

When Redis is unreachable, call-time methods log once per outage (and once per call, with its uuid), skip
Redis for `RETRY_AFTER_S` so calls do not wait on timeouts, and carry on with a default.

Call-time writes nobody waits for (a call's fields, transcript, counters) are written behind: queued, then sent
together with every other call's writes of the next `WRITE_BEHIND_S`, in one pipeline: one round trip instead of
one per write (13 per call, a quarter of the hub's time at 400 calls: bench/load.py). Every synchronous
operation, and every use of the raw client (`.redis`), sends the queue first, so Redis sees all writes in the
order they were made and a read sees what was written before it. A SIGKILL loses at most the last
`WRITE_BEHIND_S` of state writes; call records are never written behind (records.py).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Self, TypeVar
from urllib.parse import unquote, urlsplit

import gevent
import gevent.lock
import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from controller.clock import Clock
from controller.log import call_logger
from controller.state.embedded_redis import EmbeddedRedis

log = logging.getLogger("switchboard.store")

RETRY_AFTER_S = 1.0
WRITE_BEHIND_S = 0.02  # how long a queued write may wait to share a round trip (the module docstring says why)
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
T = TypeVar("T")
# A queued write: the call it belongs to, its name for logs, what it adds to the pipeline, and what to do with
# its replies once sent (None: nothing).
Write = tuple[Optional[str], str, Callable[[Pipeline], None], Optional[Callable[[list[Any]], None]]]


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
    max_attempts: int = 12
    retry_backoff_s: float = 5.0
    retry_backoff_max_s: float = 300.0
    requeue_dead_after_s: float = 1800.0
    max_requeues: int = 3
    retention_days: float = 30.0


def client_options(socket_timeout: float) -> dict[str, Any]:
    """Timeouts, and one immediate retry on a dropped connection only: the outage logic does the rest."""
    return dict(socket_timeout=socket_timeout, socket_connect_timeout=CONNECT_TIMEOUT_S,
                retry=Retry(NoBackoff(), 1, (redis.ConnectionError,)))


def connect(url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for `url`; `redis+sentinel://` asks the sentinels for the current master (and follows failover)."""
    options = client_options(socket_timeout)
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
    sentinel = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=client_options(socket_timeout))
    return sentinel.master_for(master, password=password, **options)


def dumps(value: Any) -> str:
    """A value as Redis keeps it: compact JSON, accents readable, what JSON lacks (datetimes) as text."""
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


class Connection:
    """The Redis client (or the embedded server it talks to) and the outage state every call-time write shares."""

    def __init__(self, settings: Any, state_dir: Path, clock: Optional[Clock] = None) -> None:
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.clock = clock or Clock()
        self.url: Optional[str] = os.environ.get("REDIS_URL") or getattr(settings, "url", None)
        self.embedded: Optional[EmbeddedRedis] = None
        self._client: Optional[redis.Redis] = None
        self._down_until = 0.0  # monotonic; while in the future, call-time methods skip Redis
        self._outage = False
        self._outage_uuids: set[str] = set()
        self._run_id: Optional[str] = None  # tells a restarted or failed-over server from the one that answered
        self.write_behind_s = WRITE_BEHIND_S
        self._queued: list[Write] = []
        self._flush_lock = gevent.lock.Semaphore()
        self._flush_timer: Optional[gevent.Greenlet] = None

    def start(self) -> Self:
        """Connect to `url`, or start the embedded Redis; an unreachable server is an outage, not an error."""
        if self.url:
            self._client = connect(self.url)
        else:
            self.embedded = EmbeddedRedis(self.state_dir / "redis").start()
            self._client = self.embedded.client(**client_options(SOCKET_TIMEOUT_S))
        try:
            self._run_id = self._client.info("server")["run_id"]
            log.info("redis connected", extra={"redis": self.url or self.embedded.url})
        except redis.RedisError as exc:
            self._mark_down(None, "start", exc)
        return self

    def close(self) -> bool:
        """Send the queued writes, close the client and stop the embedded Redis; True when that server stopped
        cleanly (AOF fsynced)."""
        if self._flush_timer is not None:
            self._flush_timer.kill(block=False)
            self._flush_timer = None
        self.flush()
        if self._client is not None:
            self._client.close()
        return self.embedded is not None and self.embedded.stop()

    @property
    def redis(self) -> redis.Redis:
        """The client, once the queued writes are sent (whatever is done with it comes after them)."""
        if self._client is None:
            raise RuntimeError("Store.start() was not called")
        self.flush()
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
        """`fn(client)` after the queued writes, or `default` while Redis is down or when this call finds it down."""
        self.flush()
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

    def _queue(self, uuid: Optional[str], op: str, add: Callable[[Pipeline], None],
               then: Optional[Callable[[list[Any]], None]] = None) -> None:
        """Write behind: `add(pipeline)` is sent within `write_behind_s` with the other queued writes; `then`
        gets its replies. Skipped (and noted for the call) while Redis is down, as `_safe` does."""
        if self._client is None or not self._available():
            self._note_call(uuid, op, None)
            return
        self._queued.append((uuid, op, add, then))
        if self._flush_timer is None:
            self._flush_timer = gevent.spawn_later(self.write_behind_s, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_timer = None
        self.flush()

    def flush(self) -> None:
        """Send the queued writes now, in one pipeline, in the order they were queued; a flush already under way
        is waited for, so nothing sent after this returns can overtake them."""
        if not self._queued and not self._flush_lock.locked():
            return
        with self._flush_lock:
            batch, self._queued = self._queued, []
            if not batch:
                return
            if self._client is None or not self._available():
                for uuid, op, _, _ in batch:
                    self._note_call(uuid, op, None)
                return
            pipe = self._client.pipeline(transaction=False)
            spans = []
            for _, _, add, _ in batch:
                start = len(pipe)
                add(pipe)
                spans.append((start, len(pipe)))
            try:
                replies = pipe.execute(raise_on_error=False)
            except redis.RedisError as exc:
                self._mark_down(None, "queued writes", exc)
                for uuid, op, _, _ in batch:
                    self._note_call(uuid, op, exc)
                return
            self._mark_up()
        for (uuid, op, _, then), (start, end) in zip(batch, spans):
            mine = replies[start:end]
            refused = next((reply for reply in mine if isinstance(reply, Exception)), None)
            if refused is not None:  # a command Redis refuses (WRONGTYPE, OOM): that write only
                call_logger(uuid or "-", "switchboard.store").error("redis refused %s: %s", op, refused)
            elif then is not None:
                then(mine)
