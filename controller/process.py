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
