"""One CallSession per call: the socket set-up, the three moments (ringing -> in call -> ended), the record.

The call reads straight down: set up the socket, run the before-call workflows while it rings, answer, hand the
call to the conversation, and whatever ends it (the caller hanging up surfaces as CallHangup from any wait),
store the record before sending `exit`. A call handed to another agent stores its state and lets go of the socket
without `exit` instead (captures 12, 18); the next agent's session continues the same record.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import gevent

from controller.esl.session import CallHangup, CommandError, EslError, EslSession, EslTimeout
from controller.log import call_logger

if TYPE_CHECKING:
    from controller.runtime import Runtime

LINGER_S = 30


class Moment(str, enum.Enum):
    RINGING = "ringing"
    IN_CALL = "in_call"
    ENDED = "ended"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class ActionLog:
    """One action run: what, when, and the typed result the brain and the record see."""

    moment: str
    name: str
    type: str
    started_at: float
    ended_at: float | None = None
    result: str = "running"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"moment": self.moment, "name": self.name, "type": self.type,
                "started_at": _iso(self.started_at),
                "ended_at": _iso(self.ended_at) if self.ended_at else None,
                "duration_ms": round((self.ended_at - self.started_at) * 1000, 1) if self.ended_at else None,
                "result": self.result, "detail": self.detail}


class CallSession:
    """Owns one call from the socket's `connect` to the record stored in Redis."""

    def __init__(self, esl: EslSession, runtime: "Runtime") -> None:
        self.esl = esl
        self.runtime = runtime
        self.clock = runtime.clock
        self.config = runtime.config
        self.agent = None
        self.moment: Moment | None = None
        self.moments: dict[str, float] = {}
        self.variables: dict[str, Any] = {}
        self.sip_headers: dict[str, str] = {}
        self.transcript: list[dict[str, Any]] = []
        self.actions: list[ActionLog] = []
        self.metrics: dict[str, Any] = {"turn_latency_ms": []}
        self.hangup_by: str | None = None
        self.hangup_cause: str | None = None
        self.handed_off = False
        self.resumed = False
        self.features = None
        self.log = call_logger("-")

    # ------------------------------------------------------------------ identity
    @property
    def uuid(self) -> str:
        return self.esl.uuid

    @property
    def caller(self) -> str:
        return self.esl.channel.get("Caller-Caller-ID-Number", "")

    @property
    def answered_on_connect(self) -> bool:
        return self.esl.channel.get("Answer-State") == "answered"

    def enter(self, moment: Moment) -> None:
        self.moment = moment
        self.moments.setdefault(moment.value, self.clock.wall())  # a hand-off's second session keeps the first
        self.log.info("moment: %s", moment.value)
        self.runtime.store.update_call(self.uuid, state=moment.value)

    # ------------------------------------------------------------------ the call
    def run(self) -> None:
        try:
            self._set_up()
        except (EslError, OSError) as exc:
            self.log.error("socket set-up failed, the dialplan's next action takes the call: %s", exc)
            return
        try:
            if not self.resumed:
                if self.answered_on_connect:
                    self.log.info("channel already answered: skipping ringing and answer")
                else:
                    self.enter(Moment.RINGING)
                    self.runtime.before_call(self)
                    self.esl.execute("answer", timeout=self.runtime.execute_timeout)
            self.enter(Moment.IN_CALL)
            self.runtime.in_call(self)
            if not self.esl.hungup.is_set() and not self.handed_off:
                self.hangup_by = self.hangup_by or "agent"
                self.esl.hangup("NORMAL_CLEARING")
                self.esl.hungup.wait(timeout=self.runtime.command_timeout)
        except CallHangup as hangup:
            self.hangup_by = self.hangup_by or "caller"
            self.hangup_cause = hangup.cause
        except (EslTimeout, CommandError) as exc:
            self.log.error("FreeSWITCH did not do what was asked (%s); hanging up this call", exc)
            self.hangup_by = "system"
            self._hang_up_quietly("NORMAL_TEMPORARY_FAILURE")
        except Exception:
            self.log.exception("call failed unexpectedly; hanging up this call, others are not affected")
            self.hangup_by = "system"
            self._hang_up_quietly("NORMAL_TEMPORARY_FAILURE")
        finally:
            self._end()

    def _set_up(self) -> None:
        """`connect`, `myevents`, `divert_events on`, `linger 30`, then the extra subscriptions.

        `divert_events on` comes right after `myevents`: without it a running speak/playback swallows the
        speech events and barge-in never fires (capture 11).
        """
        timeout = self.runtime.command_timeout
        self.esl.connect(timeout=timeout)
        self.log = call_logger(self.uuid or "-")
        self.esl.command("myevents", timeout)
        self.esl.command("divert_events on", timeout)
        self.esl.command(f"linger {LINGER_S}", timeout)
        extra = self.runtime.extra_events
        if extra:
            self.esl.command("event plain " + " ".join(extra), timeout)
        self.agent = self.runtime.choose_agent(self.esl.channel.get("variable_switchboard_agent"), self.log)
        self.features = self.runtime.features.for_session(self.esl)
        self.sip_headers = {k[len("variable_sip_h_"):]: v for k, v in self.esl.channel.items()
                            if k.startswith("variable_sip_h_X-")}
        previous = self.runtime.store.call_state(self.uuid) if self.answered_on_connect else {}
        if previous.get("handoff_to") == self.agent.id:
            self._resume(previous)
        else:
            self.variables = {
                "caller_number": self.caller,
                "caller_name": self.esl.channel.get("Caller-Caller-ID-Name", ""),
                "destination": self.esl.channel.get("Caller-Destination-Number", ""),
                "direction": "outbound" if self.esl.channel.get("Call-Direction") == "outbound" else "inbound",
                "uuid": self.uuid,
                "agent": self.agent.id,
                "sip_headers": dict(self.sip_headers),
            }
            self.runtime.store.call_started(self.uuid, self.agent.id, self.caller, self.variables)
        if self.variables.get("direction") == "outbound":
            self.log.info("call to %s placed by agent %s", self.variables.get("destination") or "unknown",
                          self.agent.id)
        else:
            self.log.info("call from %s for agent %s", self.caller or "unknown", self.agent.id)

    def _resume(self, previous: dict[str, Any]) -> None:
        """A hand-off's second socket: continue the same call record and variables (capture 12)."""
        self.resumed = True
        self.variables = dict(previous.get("variables") or {})
        self.variables["agent"] = self.agent.id
        self.transcript = list(previous.get("transcript") or [])
        self.moments = {k: float(v) for k, v in (previous.get("moments") or {}).items()}
        for entry in previous.get("actions") or []:
            self.actions.append(ActionLog(entry.get("moment", ""), entry.get("name", ""), entry.get("type", ""),
                                          float(entry.get("started_ts") or self.clock.wall()),
                                          float(entry.get("ended_ts") or self.clock.wall()),
                                          entry.get("result", ""), entry.get("detail") or {}))
        self.runtime.store.update_call(self.uuid, agent=self.agent.id, handoff_to="")
        self.log.info("hand-off received: continuing the call record with agent %s", self.agent.id)

    def _hang_up_quietly(self, cause: str) -> None:
        try:
            self.esl.hangup(cause)
        except EslError:
            pass

    def _end(self) -> None:
        """Ended: store the record (Redis stream, or the spool) and only then send `exit`."""
        if self.agent is None:
            return
        self.hangup_cause = self.hangup_cause or self.esl.hangup_cause or "NORMAL_CLEARING"
        if self.handed_off:  # its state was stored before the socket was let go (actions/transfer.py)
            self.log.info("call handed off: the next agent's session writes the record")
            return
        self.enter(Moment.ENDED)
        record = self.record()
        stream_id = self.runtime.store.append_record(record)
        self.log.info("call ended (%s by %s); record %s", self.hangup_cause, self.hangup_by or "caller",
                      stream_id or "not in redis yet (the line above says where it is)")
        self.runtime.on_call_ended(self, record)

    # ------------------------------------------------------------------ bookkeeping
    def start_action(self, moment: str, name: str, type_: str, **detail: Any) -> ActionLog:
        entry = ActionLog(moment, name, type_, self.clock.wall(), detail=dict(detail))
        self.actions.append(entry)
        return entry

    def finish_action(self, entry: ActionLog, result: str, **detail: Any) -> None:
        entry.ended_at = self.clock.wall()
        entry.result = result
        entry.detail.update(detail)
        data = entry.as_dict()
        data.update(started_ts=entry.started_at, ended_ts=entry.ended_at)
        self.runtime.store.append_action(self.uuid, data)
        self.runtime.store.incr(f"action:{self.agent.id}.{entry.name}:{result}")
        self.log.info("action %s (%s): %s", entry.name, entry.type, result)

    def add_turn(self, who: str, text: str, **extra: Any) -> dict[str, Any]:
        turn = {"who": who, "text": text, "at": _iso(self.clock.wall()), **extra}
        self.transcript.append(turn)
        self.runtime.store.append_transcript(self.uuid, turn)
        return turn

    def state_snapshot(self) -> dict[str, Any]:
        return {"variables": self.variables, "transcript": self.transcript, "moments": self.moments,
                "actions": [dict(a.as_dict(), started_ts=a.started_at, ended_ts=a.ended_at) for a in self.actions]}

    def record(self) -> dict[str, Any]:
        """The after-call record: everything the worker, emails and webhooks may use."""
        started = self.moments.get("ringing") or self.moments.get("in_call") or self.clock.wall()
        ended = self.moments.get("ended", self.clock.wall())
        answered = self.moments.get("in_call")
        return {
            "uuid": self.uuid,
            "agent": self.agent.id if self.agent else None,
            "caller": self.caller,
            "caller_name": self.variables.get("caller_name", ""),
            "destination": self.variables.get("destination", ""),
            "direction": self.variables.get("direction", "inbound"),
            "moments": {k: _iso(v) for k, v in self.moments.items()},
            "started_at": _iso(started),
            "ended_at": _iso(ended),
            "duration_s": round(ended - started, 3),
            "talk_s": round(ended - answered, 3) if answered else 0.0,
            "hangup_by": self.hangup_by or "caller",
            "transferred": any(a.type == "transfer" and a.result in ("answered", "handed_off", "transferred")
                               for a in self.actions),
            "hangup_cause": self.hangup_cause,
            "variables": self.variables,
            "sip_headers": self.sip_headers,
            "transcript": self.transcript,
            "actions": [a.as_dict() for a in self.actions],
            "metrics": self.metrics,
            "missing_modules": self.features.missing() if self.features else [],
        }


def run_concurrently(jobs: list[Any], budget_s: float) -> list[Any]:
    """Run callables concurrently, killing what is still running after `budget_s`; returns their greenlets."""
    greenlets = [gevent.spawn(job) for job in jobs]
    gevent.joinall(greenlets, timeout=budget_s)
    for greenlet in greenlets:
        if not greenlet.ready():
            greenlet.kill(block=False)
    return greenlets
