"""Benchmark of the semantic brain, against the bare embedder measured in the same run on the same worker.

    python bench/brain.py                  # minilm ratio, use-m3 overhead, hub stall (well under a minute)
    python bench/brain.py --calibrate      # threshold/margin per embedder on examples/phrases/, then exit
    python bench/brain.py --calibrate --embedder /models/my-st-model --languages fr

Per turn: `brain.decide(turn)` against `embedder.encode([turn])`, alternated so both see the same machine state;
p50/p99 of each. Targets: minilm p50 ratio under 1.3, use-m3 added time (median of the pairs) under 2 ms. Hub stall:
the largest gap of a 1 ms ticker, minus 1 ms, while 50 calls decide at once (target under 10 ms).
Last line: `RESULT ratio=... overhead_ms=... stall_ms=...`.
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.brain.base import BrainContext, Turn  # noqa: E402
from controller.brain.calibration import (calibrate, evaluate, held_out, score_phrases,  # noqa: E402
                                         shipped_phrase_sets)
from controller.brain.semantic import DEFAULTS, SemanticBrain, normalise  # noqa: E402
from knowledge.embedders import get_embedder  # noqa: E402
from knowledge.sources import EmbedderSpec  # noqa: E402

CALLS = 50
BUDGET_S = 12.0  # per embedder and phase, so a default run stays within a minute on a loaded machine


def embedder_for(name: str):
    spec = EmbedderSpec(name) if name in DEFAULTS else EmbedderSpec("sentence-transformers", Path(name).resolve())
    return get_embedder(spec)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def per_turn(brain: SemanticBrain, context: BrainContext, turns: list[str], rounds: int,
             budget_s: float = BUDGET_S) -> tuple[list, list]:
    """Decide and bare encode on the same turn, back to back, first one then the other first (`rounds`, or fewer
    past `budget_s`); milliseconds each, paired by index."""
    decide_ms, encode_ms = [], []
    stop_at = time.monotonic() + budget_s

    def timed(fn, *args) -> float:
        t0 = time.perf_counter()
        fn(*args)
        return (time.perf_counter() - t0) * 1000

    for i in range(rounds):
        if time.monotonic() > stop_at:
            break
        text = turns[i % len(turns)]
        if i % 2:
            encode_ms.append(timed(brain.embedder.encode, [text]))
            decide_ms.append(timed(brain.decide, Turn("speech", text), context))
        else:
            decide_ms.append(timed(brain.decide, Turn("speech", text), context))
            encode_ms.append(timed(brain.embedder.encode, [text]))
    return decide_ms, encode_ms


def hub_stall(job, turns: list[str], waves: int) -> float:
    """Largest gap of a 1 ms ticker beyond its 1 ms while `CALLS` greenlets run `job(text)` at once, in ms."""
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
    stop_at = time.monotonic() + BUDGET_S
    for wave in range(waves):
        if time.monotonic() > stop_at:
            break
        jobs = [gevent.spawn(job, turns[(wave * CALLS + i) % len(turns)]) for i in range(CALLS)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
    running = False
    tick.join(1)
    return worst


class Replay:
    """The embedder's own vectors, computed once: `decide` timed with it is the brain's work alone."""

    def __init__(self, embedder, texts: list[str]) -> None:
        self.name = embedder.name
        self.embedder = embedder
        self.vectors = dict(zip(texts, embedder.encode(texts)))

    def encode(self, texts: list[str]) -> np.ndarray:
        if all(t in self.vectors for t in texts):
            return np.stack([self.vectors[t] for t in texts])
        return self.embedder.encode(texts)


def brain_only_us(brain: SemanticBrain, context: BrainContext, turns: list[str]) -> float:
    """p50 of `decide` in microseconds with the model taken out (vectors replayed)."""
    replayed = SemanticBrain(Replay(brain.embedder, [normalise(t) for t in turns]), language=brain.language)
    replayed.prepare(context.actions)
    times = []
    for i in range(2000):
        t0 = time.perf_counter()
        replayed.decide(Turn("speech", turns[i % len(turns)]), context)
        times.append((time.perf_counter() - t0) * 1e6)
    return percentile(times, 50)


def measure(name: str, rounds: int, waves: int) -> dict[str, float]:
    embedder = embedder_for(name)
    language = "en" if name == "minilm" else "fr"
    [phrase_set] = shipped_phrase_sets((language,))
    brain = SemanticBrain(embedder, language=language)
    context = BrainContext("bench", "bench", language, [], {}, phrase_set.actions)
    turns = [text for text, _ in phrase_set.phrases] + phrase_set.off_topic
    brain.prepare(phrase_set.actions)
    per_turn(brain, context, turns, 20, BUDGET_S)  # warm-up
    decide_ms, encode_ms = per_turn(brain, context, turns, rounds)
    stall = hub_stall(lambda text: brain.decide(Turn("speech", text), context), turns, waves)
    bare_stall = hub_stall(lambda text: embedder.encode([text]), turns, waves)
    row = {"decide_p50": percentile(decide_ms, 50), "decide_p99": percentile(decide_ms, 99),
           "encode_p50": percentile(encode_ms, 50), "encode_p99": percentile(encode_ms, 99), "stall_ms": stall,
           "bare_stall_ms": bare_stall, "brain_only_us": brain_only_us(brain, context, turns)}
    row["ratio"] = row["decide_p50"] / row["encode_p50"]
    row["overhead_ms"] = float(np.median(np.subtract(decide_ms, encode_ms)))  # paired: robust to machine noise
    print(f"{name:7} ({language}, {len(decide_ms)} turns): decide p50 {row['decide_p50']:.2f} ms"
          f" p99 {row['decide_p99']:.2f} ms"
          f" | bare encode p50 {row['encode_p50']:.2f} ms p99 {row['encode_p99']:.2f} ms"
          f" | p50 ratio {row['ratio']:.3f}, added (median of pairs) {row['overhead_ms']:.3f} ms"
          f" | brain alone (vectors replayed) p50 {row['brain_only_us']:.0f} us"
          f" | hub stall, {CALLS} concurrent decisions: {stall:.2f} ms (bare encodes: {bare_stall:.2f} ms)")
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
            unseen = held_out(subset, max_fp)
            print(f"  {language}: best-action accuracy without threshold {top1:.3f}; with "
                  f"{'shipped defaults' if shipped else 'calibrated values'}: accuracy {at.accuracy:.3f}, "
                  f"false positives {at.false_positive_rate:.3f}; held out (calibrated on the other half): "
                  f"accuracy {unseen.accuracy:.3f}, false positives {unseen.false_positive_rate:.3f}")


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
    print("targets: minilm ratio < 1.3, use-m3 overhead < 2 ms, stall < 10 ms")
    print(f"RESULT ratio={minilm['ratio']:.3f} overhead_ms={use_m3['overhead_ms']:.3f} stall_ms={stall:.2f}")


if __name__ == "__main__":
    main()
