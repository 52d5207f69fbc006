"""What writing the spool before the XADD costs a call's end, against a bare XADD measured in the same run.

`Store.append_record` fsyncs the record to a spool file (in gevent's threadpool) and then XADDs it with its
marker in one MULTI (records.py says why); the baseline is a bare XADD of the same record to the same embedded
Redis. Sequential latency, then 50 calls hanging up at once, with the longest hub stall seen by a 1 ms ticker
(the fsyncs must not stall the other calls). Run:
    .venv/bin/python bench/record_append.py
"""
from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import gevent  # noqa: E402

from controller.state.connection import StoreSettings  # noqa: E402
from controller.state.store import Store  # noqa: E402

RECORD = {"uuid": "0" * 36, "agent": "support",
          "transcript": [{"who": "caller", "text": "une phrase de l'appel " * 4}] * 30}
SEQUENTIAL, CONCURRENT, PER_GREENLET = 300, 50, 6


class Ticker:
    """The longest gap between 1 ms timer ticks: how long the hub was kept from running other greenlets."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        last = time.perf_counter()
        while True:
            gevent.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.001)
            last = now

    def stop(self) -> float:
        self._greenlet.kill()
        return self.worst * 1000


def measure(write: Callable[[int], object]) -> dict[str, float]:
    samples = []
    for i in range(SEQUENTIAL):
        started = time.perf_counter()
        write(i)
        samples.append(time.perf_counter() - started)
    ticker = Ticker()
    started = time.perf_counter()
    gevent.joinall([gevent.spawn(lambda n=n: [write(n * PER_GREENLET + i) for i in range(PER_GREENLET)])
                    for n in range(CONCURRENT)])
    elapsed = time.perf_counter() - started
    return {"p50_us": statistics.median(samples) * 1e6, "p99_us": sorted(samples)[int(len(samples) * 0.99)] * 1e6,
            "concurrent_per_s": CONCURRENT * PER_GREENLET / elapsed, "stall_ms": ticker.stop()}


def main() -> None:
    os.environ.pop("REDIS_URL", None)
    root = Path(tempfile.mkdtemp(prefix="sb-bench-", dir="/tmp"))
    store = Store(StoreSettings(key_prefix="bench"), root, confirm_after_s=0.5).start(maintain=False)
    try:
        payload = json.dumps(RECORD)
        for _ in range(50):
            store.redis.xadd("warm", {"record": payload})
        bare = measure(lambda i: store.redis.xadd("bare", {"record": payload}))
        spooled = measure(lambda i: store.append_record(dict(RECORD)))
        time.sleep(0.6)
        store.sync_spool()
        left = len(store.spool)
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'figure':22} {'bare xadd':>10} {'spool+xadd':>11} {'ratio':>7}")
    for key in bare:
        ratio = spooled[key] / bare[key] if bare[key] else float("nan")
        print(f"{key:22} {bare[key]:10.1f} {spooled[key]:11.1f} {ratio:7.2f}")
    print(f"spool files left after the confirmation delay: {left}")
    print(f"RESULT append_p50_us={spooled['p50_us']:.0f} xadd_p50_us={bare['p50_us']:.0f} "
          f"ratio={spooled['p50_us'] / bare['p50_us']:.2f} append_p99_us={spooled['p99_us']:.0f} "
          f"stall_ms={spooled['stall_ms']:.2f} bare_stall_ms={bare['stall_ms']:.2f} files_left={left}")


if __name__ == "__main__":
    main()
