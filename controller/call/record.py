"""What a call keeps about itself while it runs: moments, variables, transcript, actions; and the record it ends with.

Every change is written through to Redis as it happens (the call's hash), so a hand-off's next session, a crash
recovery and `switchboard jobs` see the call as it is; `as_record()` is the after-call record the worker reads.
"""
from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from controller.clock import Clock
from controller.latency import Latencies
from controller.state.store import Store


class Moment(str, enum.Enum):
    RINGING = "ringing"
    IN_CALL = "in_call"
    ENDED = "ended"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class ActionLog:
    """One action run: what, when, and the typed result the brain and the record see."""

    moment: str
    name: str
    type: str
    started_at: float
    ended_at: Optional[float] = None
    result: str = "running"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"moment": self.moment, "name": self.name, "type": self.type,
                "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at) if self.ended_at else None,
                "duration_ms": round((self.ended_at - self.started_at) * 1000, 1) if self.ended_at else None,
                "result": self.result, "detail": self.detail}

    def stored(self) -> dict[str, Any]:
        """As kept in the call's hash: with the raw instants, so a hand-off's next session can rebuild it."""
        return dict(self.as_dict(), started_ts=self.started_at, ended_ts=self.ended_at)

    @classmethod
    def from_stored(cls, entry: dict[str, Any], now: float) -> "ActionLog":
        return cls(entry.get("moment", ""), entry.get("name", ""), entry.get("type", ""),
                   float(entry.get("started_ts") or now), float(entry.get("ended_ts") or now),
                   entry.get("result", ""), entry.get("detail") or {})


_DIGIT_RUN = re.compile(r"\d(?:[ .\-/]?\d)*")


def redact_digit_runs(text: str, min_digits: int) -> str:
    """Every run of at least `min_digits` digits (spaces, dots, dashes and slashes between them allowed: a card,
    an IBAN's digits, a PIN typed on the keypad) becomes `•` per digit, its separators kept."""
    def hide(match: re.Match[str]) -> str:
        run = match.group()
        return re.sub(r"\d", "•", run) if sum(c.isdigit() for c in run) >= min_digits else run
    return _DIGIT_RUN.sub(hide, text)


class CallRecord:
    """The state of one call, written through to the store; the call session and its conversation share it.

    With `redact_digits` (`privacy.redact_digit_runs`), the transcript is stored and recorded with long digit runs
    hidden; the brain still gets each turn as heard.
    """

    def __init__(self, store: Store, clock: Clock, log: logging.LoggerAdapter,
                 redact_digits: Optional[int] = None, latencies: Optional[Latencies] = None) -> None:
        self.redact_digits = redact_digits
        self.latencies = latencies
        self.store = store
        self.clock = clock
        self.log = log
        self.uuid = ""
        self.agent_id = ""
        self.caller = ""
        self.moments: dict[str, float] = {}
        self.variables: dict[str, Any] = {}
        self.sip_headers: dict[str, str] = {}
        self.transcript: list[dict[str, Any]] = []
        self.actions: list[ActionLog] = []
        self.metrics: dict[str, Any] = {"turn_latency_ms": []}
        self.hangup_by: Optional[str] = None
        self.hangup_cause: Optional[str] = None
        self.missing_modules: list[str] = []
        self.answered_by: Optional[str] = None  # machine detection's verdict (call/detection.py); None: not run
        self.answered_detail: dict[str, Any] = {}

    def answered(self, who: str, **detail: Any) -> None:
        """Machine detection's verdict: human, machine, ivr or unknown, with how it was decided."""
        self.answered_by, self.answered_detail = who, dict(detail)
        self.store.update_call(self.uuid, answered_by=who, answered_detail=self.answered_detail)
        self.log.info("answered by: %s (%s)", who, ", ".join(f"{k}={v}" for k, v in detail.items()))

    def enter(self, moment: Moment) -> None:
        self.moments.setdefault(moment.value, self.clock.wall())  # a hand-off's second session keeps the first
        self.log.info("moment: %s", moment.value)
        self.store.update_call(self.uuid, state=moment.value, moments=self.moments)  # a recovery reads them

    def resume(self, previous: dict[str, Any]) -> None:
        """Continue the record a hand-off's first session stored (capture 12); this process owns the call now."""
        self.restore(previous)
        self.variables["agent"] = self.agent_id
        self.store.take_call(self.uuid, agent=self.agent_id, handoff_to="")

    def restore(self, previous: dict[str, Any]) -> None:
        """Variables, transcript, moments, actions and who answered, as the call's state in Redis holds them."""
        now = self.clock.wall()
        self.variables = dict(previous.get("variables") or {})
        self.transcript = list(previous.get("transcript") or [])
        self.moments = {k: float(v) for k, v in (previous.get("moments") or {}).items()}
        self.actions = [ActionLog.from_stored(entry, now) for entry in previous.get("actions") or []]
        self.answered_by = previous.get("answered_by")
        self.answered_detail = dict(previous.get("answered_detail") or {})

    def start_action(self, moment: str, name: str, type_: str, **detail: Any) -> ActionLog:
        entry = ActionLog(moment, name, type_, self.clock.wall(), detail=dict(detail))
        self.actions.append(entry)
        return entry

    def finish_action(self, entry: ActionLog, result: str, **detail: Any) -> None:
        entry.ended_at = self.clock.wall()
        entry.result = result
        entry.detail.update(detail)
        self.store.append_action(self.uuid, entry.stored())
        self.store.incr(f"action:{self.agent_id}.{entry.name}:{result}")
        if entry.type == "transfer":  # by FreeSWITCH's cause too: NO_ANSWER and USER_BUSY call for different fixes
            cause = entry.detail.get("cause") or entry.detail.get("disposition") or "NONE"
            self.store.incr(f"transfer:{self.agent_id}.{entry.name}:{result}:{cause}")
        self.log.info("action %s (%s): %s", entry.name, entry.type, result)

    def turn_latency(self, ms: float) -> None:
        """An answer queued `ms` after the caller's turn: in the record's metrics and the process's histogram."""
        self.metrics["turn_latency_ms"].append(round(ms, 2))
        if self.latencies is not None:
            self.latencies.turn.observe(ms / 1000)

    def add_turn(self, who: str, text: str, **extra: Any) -> dict[str, Any]:
        if self.redact_digits:
            text = redact_digit_runs(text, self.redact_digits)
        turn = {"who": who, "text": text, "at": iso(self.clock.wall()), **extra}
        self.transcript.append(turn)
        self.store.append_transcript(self.uuid, turn)
        return turn

    def snapshot(self) -> dict[str, Any]:
        """What a hand-off stores for the next agent's session."""
        return {"variables": self.variables, "transcript": self.transcript, "moments": self.moments,
                "actions": [a.stored() for a in self.actions]}

    def as_record(self) -> dict[str, Any]:
        """The after-call record: everything the worker, emails and webhooks may use.

        Its id is the call's: a call has one record (a hand-off continues it), so a copy written twice (once
        from the spool after a Redis outage, once by a recovery, call/recovery.py) is known as the same one.
        """
        started = self.moments.get("ringing") or self.moments.get("in_call") or self.clock.wall()
        ended = self.moments.get("ended", self.clock.wall())
        answered = self.moments.get("in_call")
        return {
            "uuid": self.uuid,
            "record_id": f"call-{self.uuid}",
            "agent": self.agent_id or None,
            "caller": self.caller,
            "caller_name": self.variables.get("caller_name", ""),
            "destination": self.variables.get("destination", ""),
            "direction": self.variables.get("direction", "inbound"),
            "moments": {k: iso(v) for k, v in self.moments.items()},
            "started_at": iso(started),
            "ended_at": iso(ended),
            "duration_s": round(ended - started, 3),
            "talk_s": round(ended - answered, 3) if answered else 0.0,
            "answered": answered is not None,
            "hangup_by": self.hangup_by or "caller",
            "transferred": any(a.type == "transfer" and a.result in ("answered", "handed_off", "transferred")
                               for a in self.actions),
            "hangup_cause": self.hangup_cause,
            "answered_by": self.answered_by,
            "answered_detail": self.answered_detail,
            "variables": self.variables,
            "sip_headers": self.sip_headers,
            "transcript": self.transcript,
            "actions": [a.as_dict() for a in self.actions],
            "metrics": self.metrics,
            "missing_modules": self.missing_modules,
        }
