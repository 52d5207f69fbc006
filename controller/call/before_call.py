"""Before-call workflows: concurrently, within the agent's ring budget; their results become call variables.

An inbound call runs them while it rings (session.py); a placed call runs them in `switchboard call` before
the originate (dialer.py), so whoever answers hears a greeting that already knows them.
"""
from __future__ import annotations

from typing import Any, Callable

import gevent

from controller.call.record import CallRecord
from controller.clock import Clock
from controller.workflow.run import run_workflow


def run_before_call(workflows: list[Any], record: CallRecord, uuid: str, clock: Clock, budget_s: float) -> None:
    """Run `workflows` on `record.variables`, each logged in `record` (moment `before_call`), all killed once
    `budget_s` call seconds are spent; the variables they keep are merged into `record.variables`."""

    def job(action: Any) -> Callable[[], None]:
        def run() -> None:
            entry = record.start_action("before_call", action.name, "workflow")
            try:
                result = run_workflow(action, record.variables, uuid=uuid, clock=clock, max_s=budget_s)
            except gevent.GreenletExit:
                record.finish_action(entry, "timeout", error=f"ring budget of {budget_s}s spent")
                raise
            record.variables.update(result.variables)
            outcome = "ok" if result.ok else ("timeout" if result.timed_out else "failed")
            record.finish_action(entry, outcome, status=result.status, error=result.error,
                                 kept=sorted(result.variables))
        return run

    run_concurrently([job(a) for a in workflows], clock.scaled(budget_s) + 0.05)


def run_concurrently(jobs: list[Callable[[], None]], budget_s: float) -> list[gevent.Greenlet]:
    """Run callables concurrently, killing what is still running after `budget_s`; returns their greenlets."""
    greenlets = [gevent.spawn(job) for job in jobs]
    gevent.joinall(greenlets, timeout=budget_s)
    for greenlet in greenlets:
        if not greenlet.ready():
            greenlet.kill(block=False)
    return greenlets
