"""`serve`'s side of a call `switchboard call` placed: continue what the CLI started, free its slot at the end.

The CLI ran the before-call workflows and stored their variables and action log under the call's uuid
(Store.outbound_placed); at connect the session takes them (one step: get and delete), so the answered call's
record holds them and its greeting can use them. Whoever takes that state writes the call's record: `serve` once
it took it, else the CLI (the call never reached `serve`: busy, no answer, failed, dropped before set-up).
"""
from __future__ import annotations

from typing import Optional

from controller.call.record import ActionLog, CallRecord
from controller.state.store import Store

BEFORE_CALL = "before_call"  # the record's moment for what ran before the originate


def continue_placed(store: Store, record: CallRecord) -> Optional[str]:
    """Take the placed call's state into `record` (variables over the connect's, actions, moments); the agent
    that placed it (its outbound slot is released at the end), or None when the CLI stored nothing."""
    placed = store.take_placed(record.uuid)
    if placed is None:
        return None
    now = record.clock.wall()
    record.variables = {**record.variables, **(placed.get("variables") or {}), "agent": record.agent_id}
    record.actions = [ActionLog.from_stored(entry, now) for entry in placed.get("actions") or []] + record.actions
    record.moments = {**{k: float(v) for k, v in (placed.get("moments") or {}).items()}, **record.moments}
    return str(placed.get("agent") or record.agent_id)
