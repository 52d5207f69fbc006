"""`switchboard worker --drain`: process what the queue holds now, then stop; for scripts, cron and tests.

Everything in the stream is read, entries idle on a dead worker are reclaimed, and retries due meanwhile are
made; a retry scheduled past the end is not waited for (it stays in the queue for the next worker). The exit
status says whether the queue is clean: 0 when every record was delivered, 1 when one went to the dead letters
or still waits for a retry.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from controller.aftercall.worker import Worker

ROUND_MS = 50


@dataclass(frozen=True)
class DrainReport:
    finished: int
    dead: int
    waiting: int
    next_retry_s: float | None
    elsewhere: int  # pending on other workers, not idle long enough to be taken over (they may be alive)

    @property
    def clean(self) -> bool:
        return self.dead == 0 and self.waiting == 0


def drain(worker: Worker, max_s: float = 600.0) -> DrainReport:
    """Process until nothing is left to read and no retry is due (at most `max_s`); what happened."""
    worker.reclaim_interval_s = 0.0  # reclaim on every round: a dead worker's entries are part of the queue
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        handled = worker.process_once(block_ms=ROUND_MS)
        now = worker.clock.wall()
        if handled == 0 and not any(at <= now for at in worker.waiting().values()):
            break
    waiting = worker.waiting()
    next_retry = min(waiting.values()) - worker.clock.wall() if waiting else None
    pending = int(worker.store.redis.xpending(worker.store.stream_key, worker.group)["pending"])
    return DrainReport(worker.finished, worker.dead_lettered, len(waiting), next_retry, max(0, pending - len(waiting)))
