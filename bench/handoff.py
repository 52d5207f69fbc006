"""Benchmark of the agent hand-off: how long the caller waits between `uuid_transfer` and the next agent's session.

    python bench/handoff.py                 # 200 hand-offs, 8 calls at a time (about half a minute)
    python bench/handoff.py --handoffs 50

The real controller (semantic brain, Redis) against the simulator over loopback TCP. Each caller asks for a
salesperson; the support agent hands the call to agent `sales` (uuid_transfer), lets go of the channel without
`exit` (it half-closes its socket and waits for FreeSWITCH's close, then 20 ms more: esl.py `release`), and the
sales agent's session sends `connect` once the hand-off gate opens. Measured, from the simulator's own frame
times: the hand-off gap, `uuid_transfer` read -> the second session's `connect` read. Baseline in the same run:
the first session's start, TCP connection opened -> its `connect` read (what any call costs). Also: calls whose
second agent was cut off (the dialplan hung up: must be 0), and the first-session start p99 of the calls that
arrived while another call was leaving its channel (the gate holds them).
Last line: `RESULT gap_p50_ms=... gap_p99_ms=... baseline_p50_ms=... ratio=... cut_off=... start_p99_ms=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from gevent.pool import Pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fssim import Scenario  # noqa: E402
from fssim.call import SimCall  # noqa: E402
from fssim.channel import Switch  # noqa: E402
from tests.support.controller import SessionRedis, running  # noqa: E402
from tests.support.transfer import SALES, agent_yaml, transfer_config  # noqa: E402

TIME_SCALE = 0.01
CONCURRENCY = 8
ASKS_FOR_SALES = "je voudrais parler à un commercial"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def first_in(call: SimCall, connection: str, test) -> float | None:
    """Real seconds since the call began at which the simulator read the first frame of `connection` passing test."""
    for frame in call.rec.frames:
        if frame.direction == "in" and frame.connection == connection and test(frame.raw):
            return frame.t * call.clock.time_scale
    return None


def handoffs(count: int) -> tuple[list[float], list[float], int]:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    redis = SessionRedis()
    gaps, starts, cut_off = [], [], 0
    try:
        support = agent_yaml({"name": "to_sales", "description": "Transférer l'appel au service commercial quand "
                              "l'appelant veut parler à un commercial. Exemples : \"je voudrais parler à un "
                              "commercial\", \"passez-moi le service commercial\".",
                              "destinations": [{"agent": "sales", "description": "Service commercial"}]})
        config = transfer_config(work, agents={"support": support, "sales": SALES}, extra="",
                                 time_scale=TIME_SCALE)
        with running(config, redis) as runtime:
            switch = Switch()

            def one(index: int) -> None:
                nonlocal cut_off
                scenario = Scenario.from_dict({
                    "name": f"bench-{index}", "agent": "support", "handoffs": {"2002": "sales"},
                    "speak_seconds_per_char": 0.01, "caller_seconds_per_char": 0.01, "end_after_s": 1,
                    "script": [{"wait_for": {"app": "speak"}}, {"say": ASKS_FOR_SALES},
                               {"wait_for": {"app": "speak", "count": 3}}]})
                call = SimCall(scenario, ("127.0.0.1", runtime.listener.port), runtime.clock, switch)
                call.run()
                transfer = first_in(call, "conn1", lambda raw: raw.startswith(b"api uuid_transfer"))
                second = first_in(call, "conn2", lambda raw: raw.startswith(b"connect"))
                first = first_in(call, "conn1", lambda raw: raw.startswith(b"connect"))
                if first is not None:
                    starts.append(first)
                if transfer is None or second is None:
                    print(f"call {index}: no hand-off ({call.rec.error or 'the brain did not choose it'})",
                          file=sys.stderr)
                    return
                gaps.append(second - transfer)
                if call.rec.hangup_by == "dialplan":
                    cut_off += 1

            Pool(CONCURRENCY).map(one, range(count))
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return gaps, starts, cut_off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--handoffs", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    gaps, starts, cut_off = handoffs(args.handoffs)
    if len(gaps) < args.handoffs * 0.9:
        raise SystemExit(f"only {len(gaps)} of {args.handoffs} calls were handed off")
    gap = [1000 * x for x in gaps]
    start = [1000 * x for x in starts]
    print(f"hand-offs: {len(gap)} in {time.perf_counter() - started:.1f} s, {CONCURRENCY} calls at a time")
    for label, values in (("uuid_transfer -> next session's connect", gap), ("a call's own start (baseline)", start)):
        print(f"{label + ':':41s} p50 {percentile(values, 50):.2f} ms  p99 {percentile(values, 99):.2f} ms")
    ratio = percentile(gap, 50) / percentile(start, 50)
    print(f"ratio (p50 / p50): {ratio:.1f} (the 20 ms settle after FreeSWITCH's close dominates the gap)")
    print(f"second agents cut off by the dialplan: {cut_off} (must be 0)")
    print(f"RESULT gap_p50_ms={percentile(gap, 50):.2f} gap_p99_ms={percentile(gap, 99):.2f} "
          f"baseline_p50_ms={percentile(start, 50):.2f} ratio={ratio:.1f} cut_off={cut_off} "
          f"start_p99_ms={percentile(start, 99):.2f}")
    if cut_off:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
