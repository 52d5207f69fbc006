"""One call an agent places (`switchboard call`), from the number typed to the outcome and, when the call never
reaches `serve`, its record.

In order: the number and the variables are checked; one of the agent's outbound slots is taken in Redis
(Store.outbound_reserve: at most `agents.<id>.outbound.max_concurrent` at once, across processes); the agent's
before-call workflows run here, within its ring budget, and what they kept is stored under the call's uuid for
`serve` (call/placed.py); then the originate goes to FreeSWITCH's inbound event socket. Whoever takes that
stored state writes the record: `serve` for an answered call, this module otherwise (busy, no answer, rejected,
failed, dropped before the agent's session), so every placed call has exactly one record.
"""
from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import TypeAdapter, ValidationError

from controller.call.before_call import run_before_call
from controller.call.originate import originate_for
from controller.call.placed import BEFORE_CALL
from controller.call.record import CallRecord, Moment, iso
from controller.clock import Clock
from controller.config.base import VarName
from controller.esl.inbound import SESSION_START_S, InboundError, originate
from controller.esl.values import normalise_number
from controller.log import call_logger
from controller.state.store import Store

VALUE_MAX = 500
# Set from the call itself: a --var or CSV column of these names would lie about the call.
RESERVED = frozenset({"caller_number", "caller_name", "destination", "direction", "uuid", "agent", "sip_headers"})
NO_ANSWER = frozenset({"NO_ANSWER", "ALLOTTED_TIMEOUT", "NO_USER_RESPONSE", "PROGRESS_TIMEOUT"})
# The callee's side said no: the call was placed as asked (exit 0 in a batch), unlike a system failure.
REFUSED_BY_CALLEE = frozenset({"USER_BUSY", "CALL_REJECTED", "UNALLOCATED_NUMBER", "SUBSCRIBER_ABSENT",
                               "NUMBER_CHANGED"}) | NO_ANSWER
SLOT_POLL_S = 0.2
_var_name: TypeAdapter[str] = TypeAdapter(VarName)


class OverCapacity(Exception):
    """All the agent's outbound slots are taken (the input is fine: exit 1, not 2)."""


class PlaceError(Exception):
    """The call could not be placed for a system reason (event socket, Redis); the message says what to fix."""


def variable_problem(name: str, value: str) -> Optional[str]:
    """Why `name=value` cannot be a call variable (and the fix), or None. Values stay call variables: nothing
    of them reaches the dial string."""
    try:
        _var_name.validate_python(name)
    except ValidationError:
        return f"variable name {name!r}: use a lowercase name like customer_name ([a-z_][a-z0-9_]*, 64 at most)"
    if name in RESERVED:
        return f"variable {name!r} is set by the call itself; pick another name (not {', '.join(sorted(RESERVED))})"
    if len(value) > VALUE_MAX:
        return f"variable {name!r}: {len(value)} characters; at most {VALUE_MAX}"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"variable {name!r}: control characters (line breaks, tabs) are not allowed; write it on one line"
    return None


@dataclass(frozen=True)
class Placed:
    """How one placed call went: `answered`, `no_answer`, `busy` or `failed` (with FreeSWITCH's cause)."""

    number: str
    uuid: str
    outcome: str
    cause: str = ""
    how: str = "answered"  # what the event socket saw (esl/inbound.py Originated): not_answered, dropped...

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def system_failure(self) -> bool:
        """Failed for a reason of ours (gateway, event socket, the agent's session), not the callee's."""
        return self.outcome == "failed" and self.cause not in REFUSED_BY_CALLEE


class Dialer:
    """Places an agent's calls through FreeSWITCH's inbound event socket; safe to share between greenlets."""

    def __init__(self, config: Any, store: Store, clock: Clock, password: str, *,
                 event_socket: Optional[tuple[str, int]] = None,
                 socket_address: Optional[tuple[str, int]] = None) -> None:
        """`event_socket` (default freeswitch.host/port) and `socket_address` (where the answered call goes,
        default serve's server.host/port) differ for `switchboard simulate`, whose FreeSWITCH is the simulator."""
        self.config = config
        self.store = store
        self.clock = clock
        self.password = password
        self.event_socket = event_socket or (config.freeswitch.host, config.freeswitch.port)
        self.socket_address = socket_address

    def place(self, agent_id: str, number: str, variables: dict[str, str], *, country: Optional[str] = None,
              via: Optional[str] = None, caller_id: Optional[str] = None, wait_for_slot: bool = False,
              call_uuid: Optional[str] = None) -> Placed:
        """Place one call and follow it to its outcome. Raises DialStringError (bad input, nothing done),
        OverCapacity (all slots taken and not `wait_for_slot`) or PlaceError (nothing was dialled)."""
        call_uuid = call_uuid or str(uuidlib.uuid4())
        command = originate_for(self.config, agent_id, number, call_uuid, country=country, via=via,
                                caller_id=caller_id, socket_address=self.socket_address)
        target = normalise_number(country, number)
        agent = self.config.agents[agent_id]
        self._reserve(agent, call_uuid, wait_for_slot)
        record = self._before_call(agent, call_uuid, target, caller_id or agent.number or "", variables)
        fs = self.config.freeswitch
        try:
            placed = originate(self.event_socket, self.password, command, call_uuid, fs.originate_timeout_s + 15,
                               SESSION_START_S)
        except InboundError as exc:
            self.store.take_placed(call_uuid)
            self.store.outbound_release(agent.id, call_uuid)
            raise PlaceError(str(exc)) from exc
        if placed.answered:
            return Placed(target, call_uuid, "answered")
        cause = placed.detail if placed.outcome in ("not_answered", "dropped") else "NORMAL_TEMPORARY_FAILURE"
        outcome = "no_answer" if cause in NO_ANSWER else "busy" if cause == "USER_BUSY" else "failed"
        if self.store.take_placed(call_uuid) is not None:  # serve never took the call: its record is ours
            self._write_record(record, cause)
            self.store.outbound_release(agent.id, call_uuid)
        return Placed(target, call_uuid, outcome, cause, placed.outcome)

    def _reserve(self, agent: Any, call_uuid: str, wait: bool) -> None:
        cap = agent.outbound.max_concurrent
        # a slot outlives the longest call it may hold; a CLI or serve killed mid-call leaves it to expire
        hold_s = (self.config.freeswitch.originate_timeout_s + 15 + SESSION_START_S
                  + self.clock.scaled(agent.limits.max_call_s) + 60)
        while True:
            taken = self.store.outbound_reserve(agent.id, call_uuid, cap, hold_s)
            if taken is None:
                raise PlaceError("redis is unreachable, so agent outbound calls cannot be counted against "
                                 f"agents.{agent.id}.outbound.max_concurrent; start redis (or check redis.url)")
            if taken:
                return
            if not wait:
                raise OverCapacity(f"agent {agent.id} already has {cap} outbound call(s) in progress "
                                   f"(agents.{agent.id}.outbound.max_concurrent: {cap}); retry once one ends, "
                                   "or raise the cap")
            time.sleep(SLOT_POLL_S)

    def _before_call(self, agent: Any, call_uuid: str, target: str, caller: str,
                     extra: dict[str, str]) -> CallRecord:
        """The call's variables and before-call workflows (moment `before_call`), stored for `serve`."""
        record = CallRecord(self.store, self.clock, call_logger(call_uuid))
        record.uuid, record.agent_id, record.caller = call_uuid, agent.id, caller
        record.moments[BEFORE_CALL] = self.clock.wall()
        record.variables = {"caller_number": caller, "caller_name": "", "destination": target,
                            "direction": "outbound", "uuid": call_uuid, "agent": agent.id, "sip_headers": {},
                            **extra}
        if agent.actions.before_call:
            run_before_call(agent.actions.before_call, record, call_uuid, self.clock, agent.ring_budget_s)
        ttl_s = self.config.freeswitch.originate_timeout_s + 15 + SESSION_START_S + 30
        self.store.outbound_placed(call_uuid, agent.id, record.variables, [a.stored() for a in record.actions],
                                   record.moments, ttl_s)
        return record

    def _write_record(self, record: CallRecord, cause: str) -> None:
        """The record of a call nobody answered: moments before_call and ended, answered false, duration 0."""
        record.hangup_cause = cause
        record.hangup_by = "callee" if cause in REFUSED_BY_CALLEE else "system"
        record.moments[Moment.ENDED.value] = self.clock.wall()
        data = record.as_record()
        data.update(started_at=iso(record.moments[BEFORE_CALL]), duration_s=0.0, talk_s=0.0, answered=False)
        stream_id = self.store.append_record(data)
        record.log.info("call to %s not answered (%s); record %s", record.variables["destination"], cause,
                        stream_id or "kept in the spool until redis takes it")
