"""How a Switchboard process sets gevent up: first thing, before anything else is imported."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gevent

# The embedders run on their own threads; the hub waits for the GIL up to this long when they hold it.
# Python's 5 ms default left the hub's longest stall with 50 concurrent decisions at 7-9 ms, 1 ms at 4.4-6
# (bench/brain.py, same machine, three runs each).
GIL_SWITCH_INTERVAL_S = 0.001


def cooperative() -> None:
    """Monkey-patch the standard library for gevent, and shorten the GIL switch interval."""
    from gevent import monkey
    monkey.patch_all()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


# Full garbage collections walk every live call's objects: 40-180 ms of hub at 2,000 calls, a few per minute when
# they follow allocation counts, and they made the p99 of bench/load.py (60-216 ms; 36 ms without them, the same
# RSS). An ended call is freed by reference counting (a full collection after 40 calls found none of serve's
# objects unreachable) and its socket and file are closed by session.py, so a full collection on a clock only
# bounds what a rarer path might still leave in cycles.
FULL_COLLECTION_INTERVAL_S = 300.0
_NEVER = 1 << 30


def pace_full_collections(interval_s: float = FULL_COLLECTION_INTERVAL_S) -> "gevent.Greenlet":
    """Freeze what exists now (imports, models, indexes: never walked again), keep the young collections, and run
    full ones every `interval_s` from the returned greenlet instead of when allocation counts say."""
    import gc
    import logging
    import time

    import gevent
    log = logging.getLogger("switchboard.process")
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)

    def collect() -> None:
        while True:
            gevent.sleep(interval_s)
            started = time.perf_counter()
            found = gc.collect()
            log.info("full garbage collection: %d unreachable objects, %.0f ms", found,
                     (time.perf_counter() - started) * 1000)

    return gevent.spawn(collect)


# Descriptors besides the calls' sockets: Redis connections, log files, the embedded redis-server's pipes, model
# files, the worker's SMTP and HTTP connections. Each call may hold a second one (a UDP audio stream, an HTTP call).
BASE_DESCRIPTORS = 64
DESCRIPTORS_PER_CALL = 2


def fit_descriptors(max_connections: int) -> str | None:
    """Raise the soft open-file limit to what `max_connections` calls need (at most the hard limit); None when it
    fits, otherwise what to change. At the limit accept() fails and calls wait in the backlog (esl/listener.py)."""
    import resource
    needed = BASE_DESCRIPTORS + DESCRIPTORS_PER_CALL * max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        return (f"server.max_connections: {max_connections} calls need about {needed} open files "
                f"({BASE_DESCRIPTORS} + {DESCRIPTORS_PER_CALL} per call) and this process may open {soft} (hard "
                f"limit): raise LimitNOFILE in the systemd unit (or `ulimit -n` in the shell) to {needed}, or lower "
                f"server.max_connections to {max(1, (soft - BASE_DESCRIPTORS) // DESCRIPTORS_PER_CALL)}")
    return None
