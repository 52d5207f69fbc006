"""Redis state of live calls and the global counters, on top of the after-call stream; none may fail a call.

Keys (`<p>` is `redis.key_prefix`; the stream's keys are in records.py):
  `<p>:call:<uuid>`             hash, every value JSON: uuid, agent, caller, state, started_at, updated_at,
                                variables, `count:<name>` per-call counters; TTL `call_ttl_s`, refreshed on write
  `<p>:call:<uuid>:transcript`  list of JSON entries, same TTL
  `<p>:call:<uuid>:actions`     list of JSON entries, same TTL
  `<p>:counters`                hash of global counters (`calls:refused`, `action:<agent>.<action>:<result>`)

Every method here goes through the connection's outage guard (connection.py): while Redis is down it
returns its default at once and the call carries on.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import redis

from controller.clock import Clock
from controller.state.connection import dumps
from controller.state.records import RecordStream


class Store(RecordStream):
    """Per-call state and counters on Redis; the after-call stream and the connection come from the bases."""

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
            pipe.hset(key, mapping={name: dumps(value) for name, value in fields.items()})
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
            pipe.rpush(key, dumps(entry))
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
