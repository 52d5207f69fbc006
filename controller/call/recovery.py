"""Calls a dead `serve` left in progress: each becomes a record once, so its after-call actions still run.

A SIGKILL, an OOM kill or a power cut ends `serve` without writing the records of its live calls; their state
stays in Redis (`state` ringing or in_call, transcript, actions, variables). At start and then every
`HEARTBEAT_S`, `serve` looks for such calls whose owner is dead (state/store.py says how that is told), claims
each one atomically, and writes its record as the call stood: `hangup_by: system`, hangup cause
`controller_restart`, ended at the call's last known activity. The record has the call's own record id
(`call-<uuid>`, call/record.py), and none is written when the stream already had that record: the call's real
one, appended from the spool after a Redis outage hid its end, or one written by a recovery that died before
marking the call ended.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.call.record import CallRecord, Moment
from controller.clock import Clock
from controller.log import call_logger
from controller.state.store import Store

RESTART_CAUSE = "controller_restart"


def recover_orphans(store: Store, clock: Clock) -> int:
    """Write the record of every call in progress whose owner is dead; the number of records this process wrote.

    This process's heartbeat is renewed first: a claim makes it the owner, so it must look alive to the others.
    """
    store.heartbeat()
    written = 0
    for uuid, dead_owner in store.orphaned_calls():
        if not store.claim_call(uuid, dead_owner):
            continue  # another process claimed it first
        log = call_logger(uuid, "switchboard.recovery")
        state = store.call_state(uuid)
        if not state:  # expired, or Redis went away meanwhile: the claim holds, the next round tries again
            continue
        record = _record(store, clock, log, state)
        if store.has_record(record["record_id"]):
            log.info("call left in progress by a process that died: its record was written already")
        else:
            store.append_record(record)
            log.warning("call left in progress by a process that died (%s): its record is written with hangup "
                        "cause %s, so its after-call actions run", dead_owner.decode(errors="replace"),
                        RESTART_CAUSE)
            written += 1
        store.update_call(uuid, state=Moment.ENDED.value, hangup_by="system", hangup_cause=RESTART_CAUSE)
        store.call_ended(uuid)
    return written


def _record(store: Store, clock: Clock, log: Any, state: dict[str, Any]) -> dict[str, Any]:
    record = CallRecord(store, clock, log)
    record.uuid, record.agent_id, record.caller = state["uuid"], state.get("agent") or "", state.get("caller") or ""
    record.restore(state)
    record.sip_headers = dict(record.variables.get("sip_headers") or {})
    record.moments.setdefault(Moment.RINGING.value, _ts(state.get("started_at")) or clock.wall())
    record.moments[Moment.ENDED.value] = _last_activity(state, record)
    record.hangup_by, record.hangup_cause = "system", RESTART_CAUSE
    return record.as_record()


def _last_activity(state: dict[str, Any], record: CallRecord) -> float:
    """When the call was last seen doing something: its last write, turn, action or moment."""
    seen = [_ts(state.get("updated_at"))] + [_ts(turn.get("at")) for turn in record.transcript]
    seen += [a.ended_at or a.started_at for a in record.actions] + list(record.moments.values())
    return max(t for t in seen if t is not None)


def _ts(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None
