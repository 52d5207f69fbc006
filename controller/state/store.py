"""Redis state of live calls and the global counters, on top of the after-call stream; none may fail a call.

Keys (`<p>` is `redis.key_prefix`; the stream's keys are in records.py):
  `<p>:call:<uuid>`             hash, every value JSON: uuid, agent, caller, state, started_at, updated_at,
                                variables, `count:<name>` per-call counters; TTL `call_ttl_s`, refreshed on write
  `<p>:call:<uuid>:transcript`  list of JSON entries, same TTL
  `<p>:call:<uuid>:actions`     list of JSON entries, same TTL
  `<p>:counters`                hash of global counters (`calls:refused` over max_connections, `calls:setup_failed`
                                no `connect` reply in time, `action:<agent>.<action>:<result>`)
  `<p>:live`                    set of the uuids of calls in progress (added at call_started, removed once the
                                call's record is written)
  `<p>:outbound:<agent>`        sorted set of the agent's placed calls in progress (uuid, score: when the slot
                                expires); at most `agents.<id>.outbound.max_concurrent` members (outbound_reserve)
  `<p>:placed:<uuid>`           JSON agent, variables, actions, moments of a call `switchboard call` placed, until `serve`
                                takes it at connect or the CLI writes its record (whoever deletes it writes)
  `<p>:owner:<instance>`        the heartbeat of one `serve` start: JSON pid, host, state_dir; TTL `owner_ttl_s`

Who owns a call: each call hash has `owner` = {pid, instance} of the `serve` start that runs it (the instance id
is new at every start, so a reused pid is never mistaken for the old process). That start is alive while its
heartbeat key exists: `serve` sets it before its first call and then every `HEARTBEAT_S` (5 s) for
`OWNER_TTL_S` (15 s), and deletes it on a clean stop. The heartbeat alone would leave a SIGKILLed `serve`
looking alive for up to 15 s; so a `serve` that holds its state dir's lock (`<state_dir>/serve.lock`, an
flock the kernel drops with the process) knows at once that an earlier start on the same host and state dir is
dead. A call whose owner is dead is claimed with one Lua script (the owner compared, then replaced), so when
several processes look at once exactly one writes its record (call/recovery.py).

Every method here goes through the connection's outage guard (connection.py): while Redis is down it
returns its default at once and the call carries on. Writes nobody waits for are written behind (connection.py);
the call hash gets its TTL at every field write, a transcript or actions push refreshes TTLs only every tenth of
the TTL (a list the push finds new gets one again); a new call's write carries a heartbeat only when the last one
is a third of `owner_ttl_s` old.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
import uuid as uuidlib
from typing import IO, Any, Optional

import redis
from redis.client import Pipeline

from controller.clock import Clock
from controller.state.connection import dumps
from controller.state.private import private_opener
from controller.state.records import RecordStream

log = logging.getLogger("switchboard.store")

HEARTBEAT_S = 5.0
OWNER_TTL_S = 15.0  # three heartbeats: one late refresh does not make a live serve look dead
LIVE_STATES = ("ringing", "in_call")

# Take a call from its dead owner: only if the owner is still the one judged dead and the call still running.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= '"ringing"' and state ~= '"in_call"' then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
return 1
"""

# One slot of an agent's outbound cap: expired members dropped, then the uuid added only under the cap.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""
_TAKE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""


class Store(RecordStream):
    """Per-call state and counters on Redis; the after-call stream and the connection come from the bases."""

    def __init__(self, *args: Any, owner_ttl_s: float = OWNER_TTL_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = {"pid": os.getpid(), "instance": uuidlib.uuid4().hex}
        self.owner_ttl_s = owner_ttl_s
        self._dir_lock: Optional[IO[str]] = None
        self._ttl_set: dict[str, float] = {}  # call key -> monotonic time this process last set its TTL
        self._beaten_at = float("-inf")  # monotonic time of the last heartbeat sent (or queued)

    @classmethod
    def open(cls, cfg: Any, clock: Optional[Clock] = None) -> "Store":
        """`Store(cfg.redis, cfg.server.state_dir)`, started."""
        return cls(cfg.redis, cfg.server.state_dir, clock).start()

    @property
    def counters_key(self) -> str:
        return self.key("counters")

    # -- per-call state --------------------------------------------------------------------------------------

    def _call_key(self, uuid: str, suffix: str = "") -> str:
        return self.key("call", uuid) + (f":{suffix}" if suffix else "")

    def call_started(self, uuid: str, agent: str, caller: str, variables: dict[str, Any]) -> None:
        """A new call, owned by this process."""
        now = self.clock.now().isoformat()
        self._write_fields(uuid, "call_started", {"uuid": uuid, "agent": agent, "caller": caller, "state": "ringing",
                                                  "started_at": now, "updated_at": now, "variables": variables},
                           own=True)

    def take_call(self, uuid: str, **fields: Any) -> None:
        """`update_call`, and this process owns the call from now on (a hand-off's next session)."""
        self._write_fields(uuid, "take_call", {**fields, "updated_at": self.clock.now().isoformat()}, own=True)

    def update_call(self, uuid: str, **fields: Any) -> None:
        """Set hash fields (each stored as JSON), e.g. `update_call(u, state="answered", answered_at=...)`."""
        self._write_fields(uuid, "update_call", {**fields, "updated_at": self.clock.now().isoformat()})

    def call_ended(self, uuid: str) -> None:
        """The call's record is written (or handed to the spool): no longer a call in progress."""
        for key in (self._call_key(uuid), self._call_key(uuid, "transcript"), self._call_key(uuid, "actions")):
            self._ttl_set.pop(key, None)
        self._queue(uuid, "call_ended", lambda pipe: pipe.srem(self.key("live"), uuid))

    def _write_fields(self, uuid: str, op: str, fields: dict[str, Any], own: bool = False) -> None:
        key, ttl = self._call_key(uuid), int(self.settings.call_ttl_s)
        fields = {**fields, "owner": self.owner} if own else fields
        values = {name: dumps(value) for name, value in fields.items()}
        # Always its TTL: a write lost in an outage, or a hash purged under a live call, must not leave a hash
        # that never expires (HSET's reply cannot tell a new hash from an old one); pushes refresh it when due.
        self._ttl_set[key] = self.clock.monotonic()
        # The heartbeat first: a call never names an owner other processes would find dead (one beaten within
        # a third of its TTL has two thirds left, far more than the write-behind delay).
        beat = own and self.clock.monotonic() - self._beaten_at >= self.owner_ttl_s / 3

        def write(pipe: Pipeline) -> None:
            if beat:
                self._beat(pipe)
            if own:
                pipe.sadd(self.key("live"), uuid)
            pipe.hset(key, mapping=values)
            pipe.expire(key, ttl)

        self._queue(uuid, op, write)

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

    def _ttl_due(self, key: str) -> bool:
        """Whether `key`'s TTL needs setting: never set by this process, or last set a tenth of the TTL ago (a
        call's keys outlive it by the TTL, so refreshing each on every write only costs commands)."""
        now, last = self.clock.monotonic(), self._ttl_set.get(key)
        if last is not None and now - last < self.settings.call_ttl_s / 10:
            return False
        self._ttl_set[key] = now
        return True

    def _push(self, uuid: str, which: str, entry: dict[str, Any]) -> None:
        key, call_key, ttl = self._call_key(uuid, which), self._call_key(uuid), int(self.settings.call_ttl_s)
        value, expire = dumps(entry), [k for k in (key, call_key) if self._ttl_due(k)]

        def push(pipe: Pipeline) -> None:
            pipe.rpush(key, value)
            for k in expire:
                pipe.expire(k, ttl)

        def check(replies: list[Any]) -> None:
            if replies[0] == 1 and key not in expire:  # the list was deleted meanwhile (a purge): a TTL again
                self._queue(uuid, f"append_{which}", lambda pipe: pipe.expire(key, ttl))

        self._queue(uuid, f"append_{which}", push, check)

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

    # -- ownership of calls (the module docstring says how dead is told from alive) ----------------------------

    def hold_state_dir(self) -> bool:
        """Take `<state_dir>/serve.lock` for this process's life; False (and a warning) when another holds it."""
        fh = open(self.state_dir / "serve.lock", "a", opener=private_opener)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            log.warning("another process holds %s: is a second serve running on this state_dir? Calls of a "
                        "dead serve are then recovered only once its heartbeat expires", fh.name)
            return False
        self._dir_lock = fh
        return True

    def heartbeat(self) -> None:
        """This start is alive, for `owner_ttl_s` more seconds; TTL marks old enough to be due are forgotten
        (calls that ended without `call_ended`, e.g. handed to another process)."""
        horizon = self.clock.monotonic() - self.settings.call_ttl_s / 10
        self._ttl_set = {key: at for key, at in self._ttl_set.items() if at >= horizon}

        def beat(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            self._beat(pipe)
            pipe.execute()

        self._safe(None, "heartbeat", beat, None)

    def _beat(self, pipe: Pipeline) -> None:
        self._beaten_at = self.clock.monotonic()
        value = dumps({**self.owner, "host": socket.gethostname(), "state_dir": str(self.state_dir)})
        pipe.set(self.key("owner", self.owner["instance"]), value, px=int(self.owner_ttl_s * 1000))

    def release_ownership(self) -> None:
        """A clean stop: the heartbeat goes at once, so any call this start still owned is recovered at once."""
        self._safe(None, "release_ownership", lambda r: r.delete(self.key("owner", self.owner["instance"])), None)
        self._unlock()

    def _unlock(self) -> None:
        if self._dir_lock is not None:
            self._dir_lock.close()
            self._dir_lock = None

    def close(self) -> bool:
        self._unlock()
        return super().close()

    def orphaned_calls(self) -> list[tuple[str, bytes]]:
        """(uuid, owner as stored) of the calls in progress whose owner is dead; calls that ended or expired
        leave the live set on the way."""
        def find(r: redis.Redis) -> list[tuple[str, bytes]]:
            found, verdicts = [], {}
            uuids = [raw.decode() for raw in r.smembers(self.key("live"))]
            pipe = r.pipeline(transaction=False)
            for uuid in uuids:
                pipe.hmget(self._call_key(uuid), "owner", "state")
            for uuid, (owner, state) in zip(uuids, pipe.execute()):
                if state is None or json.loads(state) not in LIVE_STATES:
                    r.srem(self.key("live"), uuid)  # expired, or ended just before its process died
                    continue
                if owner is not None:
                    if owner not in verdicts:
                        verdicts[owner] = self._owner_dead(r, json.loads(owner))
                    if verdicts[owner]:
                        found.append((uuid, owner))
            return found

        return self._safe(None, "orphaned_calls", find, [])

    def _owner_dead(self, r: redis.Redis, owner: dict[str, Any]) -> bool:
        if owner.get("instance") == self.owner["instance"]:
            return False
        beat = r.get(self.key("owner", str(owner.get("instance"))))
        if beat is None:
            return True
        beat = json.loads(beat)  # fresh, but if it is an earlier start on our lock, that start is gone
        return self._dir_lock is not None and beat.get("host") == socket.gethostname() \
            and beat.get("state_dir") == str(self.state_dir)

    def claim_call(self, uuid: str, dead_owner: bytes) -> bool:
        """Make this process the owner of a dead owner's call; False when another process claimed it first."""
        return bool(self._safe(uuid, "claim_call", lambda r: r.eval(_CLAIM, 1, self._call_key(uuid), dead_owner,
                                                                    dumps(self.owner)), 0))

    def has_record(self, record_id: str) -> bool:
        """Whether a record with this id was added to the stream (its marker, records.py)."""
        return bool(self._safe(None, "has_record", lambda r: r.exists(self.key("after", record_id)), 0))

    # -- calls `switchboard call` places (call/dialer.py) -----------------------------------------------------

    def outbound_reserve(self, agent: str, uuid: str, cap: int, hold_s: float) -> Optional[bool]:
        """Take one of the agent's `cap` outbound slots for `uuid`, for `hold_s` (wall seconds) at most; False
        when all are taken, None while Redis is down. Members past their score expire on the way."""
        now = time.time()

        def reserve(r: redis.Redis) -> bool:
            return bool(r.eval(_RESERVE, 1, self.key("outbound", agent), now, now + hold_s, uuid, cap))

        return self._safe(uuid, "outbound_reserve", reserve, None)

    def outbound_release(self, agent: str, uuid: str) -> None:
        self._safe(uuid, "outbound_release", lambda r: r.zrem(self.key("outbound", agent), uuid), None)

    def outbound_in_flight(self, agent: str) -> int:
        """The agent's slots taken now (expired ones not counted)."""
        return int(self._safe(None, "outbound_in_flight",
                              lambda r: r.zcount(self.key("outbound", agent), time.time(), "+inf"), 0))

    def outbound_placed(self, uuid: str, agent: str, variables: dict[str, Any], actions: list[dict[str, Any]],
                        moments: dict[str, float], ttl_s: float) -> None:
        """What `switchboard call` ran before placing `uuid`, for `serve` to continue at connect."""
        value = dumps({"agent": agent, "variables": variables, "actions": actions, "moments": moments})
        self._safe(uuid, "outbound_placed",
                   lambda r: r.set(self.key("placed", uuid), value, px=int(ttl_s * 1000)), None)

    def take_placed(self, uuid: str) -> Optional[dict[str, Any]]:
        """The placed call's state, deleted in the same step: exactly one taker (serve at connect, or the CLI
        when the call never reached serve) gets it and writes the call's record."""
        raw = self._safe(uuid, "take_placed", lambda r: r.eval(_TAKE, 1, self.key("placed", uuid)), None)
        return json.loads(raw) if raw else None

    # -- global counters -------------------------------------------------------------------------------------

    def incr(self, counter: str, by: int = 1, uuid: Optional[str] = None) -> None:
        """HINCRBY `<p>:counters <counter> <by>`, written behind."""
        self._queue(uuid, "incr", lambda pipe: pipe.hincrby(self.counters_key, counter, by))

    def counters(self) -> dict[str, int]:
        raw = self._safe(None, "counters", lambda r: r.hgetall(self.counters_key), {})
        return {k.decode(): int(v) for k, v in sorted(raw.items())}
