"""serve's full garbage collections run on a clock, not on allocation counts (controller/process.py says why)."""
from __future__ import annotations

import gc
import logging
import weakref

import gevent
import pytest

from controller.process import pace_full_collections


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def test_full_collections_run_on_the_clock_and_free_cycles(caplog: pytest.LogCaptureFixture) -> None:
    thresholds = gc.get_threshold()
    caplog.set_level(logging.INFO, logger="switchboard.process")
    collector = pace_full_collections(interval_s=0.05)
    try:
        assert gc.get_threshold()[:2] == thresholds[:2] and gc.get_threshold()[2] >= 1 << 30
        a, b = _Node(), _Node()
        a.peer, b.peer = b, a
        gc.collect(1)  # the young collections promote the cycle; none of them would free it now
        freed = weakref.ref(a)
        del a, b
        for _ in range(40):
            if freed() is None:
                break
            gevent.sleep(0.05)
        assert freed() is None
        assert any("full garbage collection:" in r.getMessage() and " ms" in r.getMessage() for r in caplog.records)
    finally:
        collector.kill()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
