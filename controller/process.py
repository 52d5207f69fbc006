"""How a Switchboard process sets gevent up: first thing, before anything else is imported."""
from __future__ import annotations

import sys

# The embedders run on their own threads; the hub waits for the GIL up to this long when they hold it.
# Python's 5 ms default left the hub's longest stall with 50 concurrent decisions at 7-9 ms, 1 ms at 4.4-6
# (bench/brain.py, same machine, three runs each).
GIL_SWITCH_INTERVAL_S = 0.001


def cooperative() -> None:
    """Monkey-patch the standard library for gevent, and shorten the GIL switch interval."""
    from gevent import monkey
    monkey.patch_all()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


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
