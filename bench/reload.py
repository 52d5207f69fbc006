"""What a configuration reload costs a running `serve`: its duration, and how long it keeps the hub from the
live calls, against the same ticker with no reload measured in the same run.

The example configuration (2 agents, 13 actions, a knowledge source) in a real Runtime on an embedded Redis;
a 1 ms ticker stands for the live calls' greenlets. Each reload parses the file (in the threadpool), rebuilds
every agent's actions and brain (descriptions embedded on the embedder's own thread), keeps the loaded index.
Target: the longest stall during a reload under 50 ms (one caller's turn is not delayed noticeably).
Run: .venv/bin/python bench/reload.py
"""
from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config.load import load_config  # noqa: E402
from controller.runtime import Runtime  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.yaml"
RELOADS = 10


def worst_gap_ms(seconds: float, during=None) -> float:
    """The longest gap between 1 ms ticks, minus the tick, while `during` runs (or for `seconds`)."""
    worst, last = 0.0, time.perf_counter()
    job = gevent.spawn(during) if during else None
    stop_at = time.perf_counter() + seconds
    while (job is not None and not job.dead) or (job is None and time.perf_counter() < stop_at):
        gevent.sleep(0.001)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.001), now
    if job is not None:
        job.get()
    return worst * 1000


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-reload-", dir="/tmp"))
    try:
        config_path = work / "agent.yaml"
        text = EXAMPLE.read_text(encoding="utf-8").replace("state_dir: state", f"state_dir: {work / 'state'}")
        for name in ("templates", "knowledge", "numbers.csv", "phrases"):
            if (EXAMPLE.parent / name).exists():
                (work / name).symlink_to(EXAMPLE.parent / name)
        text = text.replace("index_dir: state/knowledge/faq", f"index_dir: {EXAMPLE.parent / 'state/knowledge/faq'}")
        config_path.write_text(text, encoding="utf-8")
        runtime = Runtime(load_config(config_path), port=0, run_worker=False)
        runtime.start()
        try:
            baseline = [worst_gap_ms(0.5) for _ in range(RELOADS)]
            durations, stalls = [], []
            for _ in range(RELOADS):
                started = time.perf_counter()
                stalls.append(worst_gap_ms(0, lambda: runtime.reload()))
                durations.append((time.perf_counter() - started) * 1000)
            ok, message = runtime.reload()
        finally:
            runtime.stop(drain_timeout=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not ok:
        raise SystemExit(f"reload refused: {message}")
    print(f"reload of {EXAMPLE.name}: p50 {statistics.median(durations):.0f} ms, max {max(durations):.0f} ms")
    print(f"longest hub stall: during a reload {max(stalls):.1f} ms, with no reload {max(baseline):.1f} ms")
    print(f"RESULT reload_p50_ms={statistics.median(durations):.1f} stall_ms={max(stalls):.2f} "
          f"baseline_stall_ms={max(baseline):.2f} ratio={max(stalls) / max(max(baseline), 0.01):.2f}")


if __name__ == "__main__":
    main()
