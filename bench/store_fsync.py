"""What `appendfsync always` costs the embedded Redis, against `everysec` measured in the same run.

Per-write latency of the two writes a call makes (HSET of call state, XADD of the after-call record), one
client at a time and 50 concurrent greenlets (calls hanging up together). Run:
    .venv/bin/python bench/store_fsync.py
"""
from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from controller.state.embedded_redis import EmbeddedRedis  # noqa: E402

RECORD = json.dumps({"uuid": "0" * 36, "transcript": [{"who": "caller", "text": "a sentence of a call " * 4}] * 30})
SEQUENTIAL, CONCURRENT, PER_GREENLET = 500, 50, 20


def measure(policy: str) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="sb-bench-", dir="/tmp"))
    server = EmbeddedRedis(root / "redis", appendfsync=policy).start()
    try:
        client = server.client()
        for _ in range(50):
            client.xadd("warm", {"record": RECORD})
        figures = {}
        for name, write in (("hset", lambda c, i: c.hset(f"call:{i % 50}", "state", "in_call")),
                            ("xadd", lambda c, i: c.xadd("calls", {"record": RECORD}))):
            samples = []
            for i in range(SEQUENTIAL):
                started = time.perf_counter()
                write(client, i)
                samples.append(time.perf_counter() - started)
            figures[f"{name} p50 us"] = statistics.median(samples) * 1e6
            figures[f"{name} p99 us"] = sorted(samples)[int(len(samples) * 0.99)] * 1e6
        pool = server.client(max_connections=CONCURRENT)

        def burst(n: int) -> None:
            for i in range(PER_GREENLET):
                pool.xadd("calls", {"record": RECORD})

        started = time.perf_counter()
        gevent.joinall([gevent.spawn(burst, n) for n in range(CONCURRENT)])
        figures["xadd x50 concurrent, writes/s"] = CONCURRENT * PER_GREENLET / (time.perf_counter() - started)
        return figures
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    baseline, always = measure("everysec"), measure("always")
    print(f"{'figure':34} {'everysec':>10} {'always':>10} {'ratio':>7}")
    for key in baseline:
        print(f"{key:34} {baseline[key]:10.0f} {always[key]:10.0f} {always[key] / baseline[key]:7.2f}")
    p50 = next(k for k in baseline if k.endswith("p50 us"))
    rate = "xadd x50 concurrent, writes/s"
    print(f"RESULT everysec_p50_us={baseline[p50]:.0f} always_p50_us={always[p50]:.0f} "
          f"ratio={always[p50] / baseline[p50]:.2f} concurrent_ratio={always[rate] / baseline[rate]:.2f}")


if __name__ == "__main__":
    main()
