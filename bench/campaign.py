"""Benchmark of placed calls (`switchboard call`): what the outbound machinery adds to an originate, and a batch.

    python bench/campaign.py                 # about 20 s
    python bench/campaign.py --calls 80

The real controller (serve, Redis) and the simulator's inbound event socket over loopback TCP, in one process.
Per busy number: `Dialer.place` (slot taken in Redis by Lua, before-call state stored, originate, the unanswered
record written, slot freed) against a bare `originate` on the same socket, alternated (baseline: the bare
originate, measured in the same run). Target: median overhead under 10 ms. Batch: `--calls` rows, half answered
(a short call with the agent), half busy, through `run_campaign` at concurrency 1 then 8 (agent cap 8); the
speedup of the second. Last line: `RESULT overhead_ms=... ratio=... speedup_8=... max_in_flight=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard call` does

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid as uuidlib  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.call.campaign import Target, run_campaign, summary  # noqa: E402
from controller.call.originate import originate_for  # noqa: E402
from controller.call.dialer import Dialer  # noqa: E402
from controller.config.load import load_config  # noqa: E402
from controller.esl.inbound import originate  # noqa: E402
from fssim import Scenario  # noqa: E402
from fssim.inbound import InboundServer  # noqa: E402
from tests.support.controller import BASE_AGENT, SessionRedis, running, write_config  # noqa: E402

TIME_SCALE = 0.01
BUSY = "+33612340000"
TRUNK = "\nsip_connections:\n  trunk: {gateway: carrier_main}\ndefault_sip_connection: trunk\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sb-bench-campaign-"))
    session_redis = SessionRedis()
    agent = BASE_AGENT + "outbound: {max_concurrent: 8}\n"
    callee = Scenario.from_dict({"name": "callee", "end_after_s": 1, "script": [{"silence": 30}],
                                 "targets": {BUSY: "busy"}})
    inbound = InboundServer("ClueCon", callee, TIME_SCALE)
    try:
        with running(write_config(tmp, {"support": agent}, extra=TRUNK, time_scale=TIME_SCALE),
                     session_redis) as runtime:
            port = inbound.start()
            (tmp / "cli").mkdir()
            config = load_config(write_config(tmp / "cli", {"support": agent}, port=runtime.listener.port,
                                              time_scale=TIME_SCALE,
                                              extra=TRUNK + f"freeswitch: {{port: {port}}}\n"))
            dialer = Dialer(config, runtime.store, runtime.clock, "ClueCon")
            placed_s, bare_s = [], []
            for _ in range(args.pairs):
                start = time.perf_counter()
                dialer.place("support", BUSY, {})
                placed_s.append(time.perf_counter() - start)
                call_uuid = str(uuidlib.uuid4())
                command = originate_for(config, "support", BUSY, call_uuid)
                start = time.perf_counter()
                originate(("127.0.0.1", port), "ClueCon", command, call_uuid, 10, 5)
                bare_s.append(time.perf_counter() - start)
            placed_ms, bare_ms = np.median(placed_s) * 1000, np.median(bare_s) * 1000
            print(f"busy number, median of {args.pairs}: Dialer.place {placed_ms:.2f} ms, bare originate "
                  f"{bare_ms:.2f} ms (ratio {placed_ms / bare_ms:.2f}, overhead {placed_ms - bare_ms:.2f} ms)")
            targets = [Target(i + 2, BUSY if i % 2 else f"+336123{i:05d}", None) for i in range(args.calls)]
            in_flight = [0]

            def watch() -> None:
                while True:
                    in_flight[0] = max(in_flight[0], runtime.store.outbound_in_flight("support"))
                    gevent.sleep(0.005)

            watcher = gevent.spawn(watch)
            took = {}
            for concurrency in (1, 8):
                start = time.perf_counter()
                results = run_campaign(dialer, "support", targets, concurrency)
                took[concurrency] = time.perf_counter() - start
                totals = summary(results)
                print(f"batch of {args.calls} at concurrency {concurrency}: {took[concurrency]:.2f} s "
                      f"({totals['answered']} answered, {totals['busy']} busy, {totals['failed']} failed)")
            watcher.kill()
            inbound.recordings()
    finally:
        inbound.stop()
        session_redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    speedup = took[1] / took[8]
    print(f"speedup at concurrency 8: {speedup:.2f}; most slots taken at once: {in_flight[0]} (cap 8)")
    print(f"RESULT overhead_ms={placed_ms - bare_ms:.2f} ratio={placed_ms / bare_ms:.2f} speedup_8={speedup:.2f} "
          f"max_in_flight={in_flight[0]}")


if __name__ == "__main__":
    main()
