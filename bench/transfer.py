"""Benchmark of the transfer: from the brain's decision to the `bridge` frame on the wire, and the 5 MB import.

    python bench/transfer.py                     # 1,000 simulated transfers + a 5 MB CSV (about a minute)
    python bench/transfer.py --transfers 200

Transfers: the real controller (semantic brain, Redis) against the simulator over loopback TCP, 8 calls at a
time, each asking for an advisor whose line is busy. The latency is from the moment the conversation hands the
brain's decision to the transfer action to the moment the simulator reads the `bridge` frame. The spoken
message is excluded by construction: the bridge is queued behind it, so it is on the wire while the message
plays. Baseline, measured in the same calls just before each transfer: one bare `sendmsg` round trip (an
execute of `log`, frame out to `+OK` back). Target: p50 ratio under 2.

Import: `check_csv` + `write_numbers` of a 5 MB file (about 100,000 valid numbers). Target under 5 s.
Last line: `RESULT p99_ms=... ratio=... import_5mb_s=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from gevent.pool import Pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.actions.transfer import TransferAction  # noqa: E402
from controller.transfer.directory import MAX_BYTES, check_csv, write_numbers  # noqa: E402
from fssim import Scenario  # noqa: E402
from fssim.call import SimCall  # noqa: E402
from fssim.channel import Switch  # noqa: E402
from tests.support.controller import SessionRedis, running  # noqa: E402
from tests.support.transfer import ASKS_FOR_ADVISOR, transfer_config  # noqa: E402

TIME_SCALE = 0.01
CONCURRENCY = 8
PARIS = "+33170363950"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class Instrumented:
    """Per call: a bare sendmsg round trip, then the instant the transfer action starts (both monotonic)."""

    def __init__(self) -> None:
        self.round_trip_s: dict[str, float] = {}
        self.decided_at: dict[str, float] = {}
        original = TransferAction.run

        def run(action, conversation, arguments):
            esl = conversation.esl
            start = time.monotonic()
            execution = esl.start_execute("log", "INFO bench round trip")
            self.round_trip_s[conversation.call.uuid] = time.monotonic() - start
            execution.wait(5.0)
            self.decided_at[conversation.call.uuid] = time.monotonic()
            return original(action, conversation, arguments)

        TransferAction.run = run


def bridge_on_wire(call: SimCall, origin: float) -> float | None:
    """Monotonic instant the simulator read the bridge command (its call time turned back into real time)."""
    for frame in call.rec.frames:
        if frame.direction == "in" and b"execute-app-name: bridge" in frame.raw:
            return origin + frame.t * call.clock.time_scale
    return None


def transfers(count: int) -> tuple[list[float], list[float]]:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    redis = SessionRedis()
    probe = Instrumented()
    latencies, round_trips = [], []
    try:
        config = transfer_config(work, time_scale=TIME_SCALE)
        with running(config, redis) as runtime:
            switch = Switch()

            def one(index: int) -> None:
                scenario = Scenario.from_dict({
                    "name": f"bench-{index}", "agent": "support", "targets": {PARIS: "busy"},
                    "speak_seconds_per_char": 0.01, "caller_seconds_per_char": 0.01, "end_after_s": 0.5,
                    "script": [{"wait_for": {"app": "speak"}}, {"say": ASKS_FOR_ADVISOR},
                               {"wait_for": {"app": "bridge"}}]})
                call = SimCall(scenario, ("127.0.0.1", runtime.listener.port), runtime.clock, switch)
                origin = time.monotonic() - call.now() * TIME_SCALE
                call.run()
                on_wire, decided = bridge_on_wire(call, origin), probe.decided_at.get(call.uuid)
                if on_wire is None or decided is None:
                    print(f"call {index}: no transfer ({call.rec.error or 'the brain did not choose it'})",
                          file=sys.stderr)
                    return
                latencies.append(on_wire - decided)
                round_trips.append(probe.round_trip_s[call.uuid])

            Pool(CONCURRENCY).map(one, range(count))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return latencies, round_trips


def import_5mb() -> tuple[float, int]:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    try:
        rng = random.Random(7)
        lines, size = ["phone,description"], 20
        while True:
            line = f"+3314{rng.randrange(10**7):07d},Agence {rng.randrange(10**6):06d} service client"
            if size + len(line) + 1 > MAX_BYTES:
                break
            lines.append(line)
            size += len(line) + 1
        source = work / "directory.csv"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        start = time.perf_counter()
        report = check_csv(source)
        write_numbers(work / "numbers" / "support.to_advisor.csv", report.rows)
        elapsed = time.perf_counter() - start
        if report.problems:
            raise SystemExit(f"generated file has bad lines: {report.problems[:3]}")
        return elapsed, len(report.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    latencies, round_trips = transfers(args.transfers)
    if len(latencies) < args.transfers * 0.9:
        raise SystemExit(f"only {len(latencies)} of {args.transfers} calls reached the bridge")
    ms = [1000 * x for x in latencies]
    rt = [1000 * x for x in round_trips]
    print(f"transfers: {len(ms)} in {time.perf_counter() - started:.1f} s, {CONCURRENCY} at a time")
    print(f"decision -> bridge on the wire: p50 {percentile(ms, 50):.3f} ms  p99 {percentile(ms, 99):.3f} ms")
    print(f"bare sendmsg round trip:        p50 {percentile(rt, 50):.3f} ms  p99 {percentile(rt, 99):.3f} ms")
    ratio = percentile(ms, 50) / percentile(rt, 50)
    print(f"ratio (p50 / p50): {ratio:.2f} (target under 2)")
    seconds, rows = import_5mb()
    print(f"import of a 5 MB CSV: {rows} numbers checked and written in {seconds:.2f} s (target under 5 s)")
    print(f"RESULT p99_ms={percentile(ms, 99):.3f} ratio={ratio:.2f} import_5mb_s={seconds:.2f}")


if __name__ == "__main__":
    main()
