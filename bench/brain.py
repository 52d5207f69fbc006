"""Benchmark of the semantic brain, against the bare embedder measured in the same run on the same worker.

    python bench/brain.py                  # minilm ratio, use-m3 overhead, hub stall (well under a minute)
    python bench/brain.py --calibrate      # threshold/margin per embedder on examples/phrases/, then exit
    python bench/brain.py --calibrate --embedder /models/my-st-model --languages fr

Per turn: `brain.decide(turn)` against `embedder.encode([turn])`, alternated so both see the same machine state;
p50/p99 of each. Targets: minilm p50 ratio under 1.3, use-m3 added p50 under 2 ms. Hub stall: the largest gap of
a 1 ms ticker, minus 1 ms, while 50 calls decide at once (target under 10 ms).
Last line: `RESULT ratio=... overhead_ms=... stall_ms=...`.
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as `switchboard serve` does

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.brain.base import BrainContext, Turn  # noqa: E402
from controller.brain.calibration import calibrate, evaluate, score_phrases, shipped_phrase_sets  # noqa: E402
from controller.brain.semantic import DEFAULTS, SemanticBrain  # noqa: E402
from knowledge.embedders import EmbedderSpec, get_embedder  # noqa: E402

CALLS = 50


def embedder_for(name: str):
    spec = EmbedderSpec(name) if name in DEFAULTS else EmbedderSpec("sentence-transformers", Path(name).resolve())
    return get_embedder(spec)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def per_turn(brain: SemanticBrain, context: BrainContext, turns: list[str], rounds: int) -> tuple[list, list]:
    """Alternate decide and bare encode on the same turns; milliseconds each."""
    decide_ms, encode_ms = [], []
    for i in range(rounds):
        text = turns[i % len(turns)]
        t0 = time.perf_counter()
        brain.decide(Turn("speech", text), context)
        t1 = time.perf_counter()
        brain.embedder.encode([text])
        t2 = time.perf_counter()
        decide_ms.append((t1 - t0) * 1000)
        encode_ms.append((t2 - t1) * 1000)
    return decide_ms, encode_ms


def hub_stall(brain: SemanticBrain, context: BrainContext, turns: list[str], waves: int) -> float:
    """Largest gap of a 1 ms ticker beyond its 1 ms while `CALLS` greenlets decide at once, in ms."""
    worst = 0.0
    running = True

    def ticker() -> None:
        nonlocal worst
        while running:
            t0 = time.perf_counter()
            gevent.sleep(0.001)
            worst = max(worst, (time.perf_counter() - t0) * 1000 - 1.0)

    tick = gevent.spawn(ticker)
    gevent.sleep(0.01)
    for wave in range(waves):
        jobs = [gevent.spawn(brain.decide, Turn("speech", turns[(wave * CALLS + i) % len(turns)]), context)
                for i in range(CALLS)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
    running = False
    tick.join(1)
    return worst


def measure(name: str, rounds: int, waves: int) -> dict[str, float]:
    embedder = embedder_for(name)
    language = "en" if name == "minilm" else "fr"
    [phrase_set] = shipped_phrase_sets((language,))
    brain = SemanticBrain(embedder, language=language)
    context = BrainContext("bench", "bench", language, [], {}, phrase_set.actions)
    turns = [text for text, _ in phrase_set.phrases] + phrase_set.off_topic
    brain.prepare(phrase_set.actions)
    per_turn(brain, context, turns, 20)  # warm-up
    decide_ms, encode_ms = per_turn(brain, context, turns, rounds)
    stall = hub_stall(brain, context, turns, waves)
    row = {"decide_p50": percentile(decide_ms, 50), "decide_p99": percentile(decide_ms, 99),
           "encode_p50": percentile(encode_ms, 50), "encode_p99": percentile(encode_ms, 99), "stall_ms": stall}
    row["ratio"] = row["decide_p50"] / row["encode_p50"]
    row["overhead_ms"] = row["decide_p50"] - row["encode_p50"]
    print(f"{name:7} ({language}, {rounds} turns): decide p50 {row['decide_p50']:.2f} ms p99 {row['decide_p99']:.2f} ms"
          f" | bare encode p50 {row['encode_p50']:.2f} ms p99 {row['encode_p99']:.2f} ms"
          f" | ratio {row['ratio']:.3f}, added {row['overhead_ms']:.3f} ms"
          f" | hub stall with {CALLS} concurrent calls x {waves} waves: {stall:.2f} ms")
    return row


def run_calibration(names: list[str], languages: tuple[str, ...] | None, max_fp: float) -> None:
    for name in names:
        langs = languages or (("en",) if name == "minilm" else ("en", "fr"))
        brain = SemanticBrain(embedder_for(name), threshold=0.0, margin=0.0)
        scored = score_phrases(brain, shipped_phrase_sets(langs))
        found = calibrate(scored, max_fp)
        print(f"{name} on {'+'.join(langs)}: threshold {found.threshold:.2f} margin {found.margin:.3f} -> accuracy "
              f"{found.outcome.accuracy:.3f} ({found.outcome.on_topic} phrases), false positives "
              f"{found.outcome.false_positive_rate:.3f} ({found.outcome.off_topic} off-topic)")
        shipped = DEFAULTS.get(name)
        for language in langs:
            subset = [s for s in scored if s.language == language]
            top1 = np.mean([s.best == s.expected for s in subset if s.expected is not None])
            at = evaluate(subset, *(shipped or (found.threshold, found.margin)))
            print(f"  {language}: best-action accuracy without threshold {top1:.3f}; with "
                  f"{'shipped defaults' if shipped else 'calibrated values'}: accuracy {at.accuracy:.3f}, "
                  f"false positives {at.false_positive_rate:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", action="store_true", help="print threshold/margin per embedder and exit")
    parser.add_argument("--embedder", action="append", help="minilm, use-m3 or a sentence-transformers directory")
    parser.add_argument("--languages", help="phrase sets to calibrate on, e.g. en,fr")
    parser.add_argument("--max-false-positive", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=400, help="turns timed per embedder")
    parser.add_argument("--waves", type=int, default=10, help="waves of 50 concurrent decisions for the stall")
    args = parser.parse_args()
    if args.calibrate:
        languages = tuple(args.languages.split(",")) if args.languages else None
        run_calibration(args.embedder or list(DEFAULTS), languages, args.max_false_positive)
        return
    minilm = measure("minilm", args.rounds, args.waves)
    use_m3 = measure("use-m3", args.rounds, args.waves)
    stall = max(minilm["stall_ms"], use_m3["stall_ms"])
    print(f"targets: minilm ratio < 1.3, use-m3 overhead < 2 ms, stall < 10 ms")
    print(f"RESULT ratio={minilm['ratio']:.3f} overhead_ms={use_m3['overhead_ms']:.3f} stall_ms={stall:.2f}")


if __name__ == "__main__":
    main()
