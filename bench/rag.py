"""Benchmark of the knowledge package against bare encode + FAISS measured in the same run.

    python bench/rag.py                         # about 2-3 minutes on 2 cores
    python bench/rag.py --sizes 1000,10000      # skip the 100k index

1. Query latency: `KnowledgeBase.search(q, k=5)` against the bare `encode([q])` + `index.search` on the same
   index, alternated query by query so both see the same machine state. Indexes of 1k, 10k and 100k chunks are
   made of clustered synthetic vectors (centres: the real corpus chunks), searched with real question vectors.
   Both index types are measured at each size, with HNSW's recall@5 against exact search; the type the size
   selects (exact up to 20k chunks, HNSW above) counts. Target: p50 ratio under 1.2.
2. Build throughput: `build_source` (read, parse, chunk, embed, write) on 2,000 real chunks against a bare
   batched encode of the same chunk texts, in 3 back-to-back pairs (median ratio). Target: at least 0.9 of it.
3. Retrieval quality: recall@3 and top-1 of the answering file per language and embedder on
   examples/knowledge/questions-*.yaml, and the scores of off-topic questions (to choose `min_score`).
Last line: `RESULT p99_ms_100k=... ratio=... build_ratio=... recall_at_3=...` (ratio: worst p50 ratio over the
sizes, each with its selected index type; recall: French with its default embedder).
"""
from __future__ import annotations

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knowledge import DEFAULT_HNSW_THRESHOLD  # noqa: E402
from knowledge.build import build_source  # noqa: E402
from knowledge.embedders import get_embedder  # noqa: E402
from knowledge.sources import EmbedderSpec, default_embedder  # noqa: E402
from knowledge.index import Generation, Manifest, StoredChunk, choose_index_type, write_generation  # noqa: E402
from knowledge.search import KnowledgeBase  # noqa: E402
from knowledge.sources import SourceSpec  # noqa: E402

CORPORA = ROOT / "examples" / "knowledge"
LANGUAGES = ("fr", "en")
OFF_TOPIC = {
    "fr": ["Quelle est la capitale de l'Australie ?", "Donnez-moi une recette de tarte aux pommes",
           "Qui a gagné la coupe du monde de football en 1998 ?", "Comment soigner un rhume rapidement ?",
           "Quel temps fera-t-il demain à Marseille ?", "Combien de pattes a une araignée ?"],
    "en": ["What is the capital of Australia?", "Give me a recipe for apple pie",
           "Who won the football world cup in 1998?", "How do I cure a cold quickly?",
           "What will the weather be like tomorrow in Leeds?", "How many legs does a spider have?"],
}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def questions(language: str) -> dict[str, str]:
    return yaml.safe_load((CORPORA / f"questions-{language}.yaml").read_text(encoding="utf-8"))


def synthetic_vectors(centres: np.ndarray, size: int) -> np.ndarray:
    """`size` unit vectors scattered around the real corpus vectors (cosine about 0.65 to their centre)."""
    rng = np.random.default_rng(size)
    vectors = centres[rng.integers(0, len(centres), size)] + rng.normal(0, 0.05, (size, centres.shape[1]))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def synthetic_source(root: Path, embedder, vectors: np.ndarray, index_type: str) -> SourceSpec:
    """A generation holding `vectors` as chunks, written as a build would write it."""
    size = len(vectors)
    chunks = [StoredChunk(f"{i:016x}", f"synthetic-{i // 50}.txt", i % 50, "0" * 64, f"synthetic chunk {i}")
              for i in range(size)]
    manifest = Manifest(embedder=embedder.name, model_id=embedder.model_id, dimension=embedder.dimension,
                        index_type=index_type, chunk_count=size, chunk_tokens=128, overlap_tokens=32,
                        files={}, built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), sizes={})
    spec = SourceSpec(f"synthetic-{size}-{index_type}", root / f"{size}-{index_type}", embedder.spec, "fr")
    spec.index_dir.mkdir(parents=True)
    write_generation(spec.index_dir, manifest, chunks, vectors)
    return spec


def latency(kb: KnowledgeBase, queries: list[str]) -> dict[str, float]:
    """p50/p99 of search and of bare encode + FAISS on the same index, alternated query by query."""
    backend, index = kb.embedder._backend, kb.generation.index
    ours, bare = [], []

    def timed(fn, *args) -> float:
        t0 = time.perf_counter()
        fn(*args)
        return (time.perf_counter() - t0) * 1000

    def bare_search(query: str) -> None:
        index.search(backend.encode_batch([query]), 5)

    for i, query in enumerate(queries):
        pair = [(ours, kb.search), (bare, bare_search)]
        for sink, fn in (pair if i % 2 else pair[::-1]):
            sink.append(timed(fn, query))
    return {"p50": percentile(ours, 50), "p99": percentile(ours, 99), "bare_p50": percentile(bare, 50),
            "bare_p99": percentile(bare, 99), "ratio": percentile(ours, 50) / percentile(bare, 50)}


def bench_latency(work: Path, sizes: list[int], count: int) -> dict[int, dict]:
    spec = default_embedder("fr")
    embedder = get_embedder(spec)
    corpus = SourceSpec("centres", work / "centres", spec, "fr")
    report = build_source(corpus, [CORPORA / "faq-fr", CORPORA / "faq-en"], progress=False)
    centres = np.asarray(Generation.load(corpus.index_dir / report.generation, with_index=False).vectors())
    pool = list(questions("fr")) + list(questions("en"))
    queries = [pool[i % len(pool)] for i in range(count)]
    query_vectors = embedder.encode(pool)
    print(f"query latency, {embedder.name}, k=5, {count} queries per index (ms); HNSW recall@5 against exact search")
    print(f"{'chunks':>8} {'index':>6} {'p50':>7} {'p99':>7} {'bare p50':>9} {'bare p99':>9} {'ratio':>6} "
          f"{'build s':>8} {'recall@5':>8}")
    results: dict[int, dict] = {}
    for size in sizes:
        vectors = synthetic_vectors(centres, size)
        selected = choose_index_type(size, DEFAULT_HNSW_THRESHOLD)
        found = {}
        for index_type in ("flat", "hnsw"):
            t0 = time.perf_counter()
            source = synthetic_source(work / "synthetic", embedder, vectors, index_type)
            built = time.perf_counter() - t0
            kb = KnowledgeBase.open(source, embedder=embedder, refresh_every=3600)
            row = latency(kb, queries)
            found[index_type] = kb.generation.index.search(query_vectors, 5)[1]
            recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found["flat"], found[index_type])])
            mark = "*" if index_type == selected else " "
            print(f"{size:>8} {index_type:>5}{mark} {row['p50']:>7.2f} {row['p99']:>7.2f} {row['bare_p50']:>9.2f} "
                  f"{row['bare_p99']:>9.2f} {row['ratio']:>6.2f} {built:>8.1f} {recall:>8.3f}")
            if index_type == selected:
                results[size] = row
            shutil.rmtree(source.index_dir)
    print(f"  * the type the size selects (exact up to {DEFAULT_HNSW_THRESHOLD} chunks, HNSW above)")
    return results


def bench_build(work: Path, target_chunks: int, runs: int) -> float:
    """Chunks per second of a full build against a bare batched encode of the same texts.

    Each run pairs a build with a bare encode right next to it (bare first on odd runs), and the median of the
    pairs' ratios counts: on a shared machine, pairs cancel slow drifts and the median drops a disturbed pair.
    """
    spec = default_embedder("fr")
    embedder = get_embedder(spec)
    files = [p for lang in LANGUAGES for p in sorted((CORPORA / f"faq-{lang}").iterdir())]
    per_copy = 98  # chunks in one copy of both corpora
    docs = work / "build-docs"
    for copy in range(-(-target_chunks // per_copy)):
        (docs / f"copy-{copy:02d}").mkdir(parents=True)
        for path in files:
            shutil.copy(path, docs / f"copy-{copy:02d}" / path.name)
    source = SourceSpec("build", work / "build-index", spec, "fr")
    report = build_source(source, [docs], progress=False)
    texts = [c.text for c in Generation.load(source.index_dir / report.generation, with_index=False).chunks]

    def build() -> float:
        shutil.rmtree(source.index_dir)  # every run embeds everything
        t0 = time.perf_counter()
        build_source(source, [docs], progress=False)
        return time.perf_counter() - t0

    def bare() -> float:
        t0 = time.perf_counter()
        for start in range(0, len(texts), 64):
            embedder._backend.encode_batch(texts[start:start + 64])
        return time.perf_counter() - t0

    pairs = []
    for run in range(runs):
        if run % 2:
            bare_s = bare()
            build_s = build()
        else:
            build_s = build()
            bare_s = bare()
        pairs.append((bare_s, build_s))
    ratios = sorted(bare_s / build_s for bare_s, build_s in pairs)
    ratio = ratios[len(ratios) // 2]
    build_s = sorted(b for _, b in pairs)[len(pairs) // 2]
    bare_s = sorted(b for b, _ in pairs)[len(pairs) // 2]
    print(f"\nbuild, {embedder.name}: {len(texts)} chunks from {len(report.embedded)} files, median of {runs} runs: "
          f"{len(texts) / build_s:.0f} chunks/s (read, parse, chunk, embed, write); bare batched encode "
          f"{len(texts) / bare_s:.0f} chunks/s; ratio {ratio:.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)})")
    return ratio


def bench_quality(work: Path) -> dict[tuple[str, str], float]:
    print("\nretrieval quality on the shipped question sets (answering file among the hits)")
    print(f"{'lang':>4} {'embedder':>8} {'questions':>9} {'recall@3':>8} {'top-1':>6} {'answer p10':>10} "
          f"{'off-topic max':>13}")
    recalls: dict[tuple[str, str], float] = {}
    for language in LANGUAGES:
        asked = questions(language)
        for name in ("use-m3", "minilm"):
            spec = SourceSpec(f"{language}-{name}", work / f"quality-{language}-{name}", EmbedderSpec(name), language)
            build_source(spec, [CORPORA / f"faq-{language}"], progress=False)
            kb = KnowledgeBase.open(spec, refresh_every=3600)
            top3 = top1 = 0
            answer_scores = []
            for question, expected in asked.items():
                hits = kb.search(question, k=3)
                top3 += expected in [h.source for h in hits]
                top1 += hits[0].source == expected
                answer_scores.append(hits[0].score)
            off_topic = max(kb.search(q, k=1)[0].score for q in OFF_TOPIC[language])
            recalls[(language, name)] = top3 / len(asked)
            default = "*" if EmbedderSpec(name) == default_embedder(language) else " "
            print(f"{language:>4} {name:>7}{default} {len(asked):>9} {top3 / len(asked):>8.2f} {top1 / len(asked):>6.2f} "
                  f"{percentile(answer_scores, 10):>10.2f} {off_topic:>13.2f}")
    print("  * the language's default embedder; answer p10: 10th percentile of the top hit's score")
    return recalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes in chunks, comma-separated")
    parser.add_argument("--queries", type=int, default=300, help="queries per index")
    parser.add_argument("--build-chunks", type=int, default=2000, help="real chunks for the build throughput")
    parser.add_argument("--build-runs", type=int, default=3, help="build + bare encode pairs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-rag-"))
    try:
        results = bench_latency(work, sizes, args.queries)
        build_ratio = bench_build(work, args.build_chunks, args.build_runs)
        recalls = bench_quality(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    largest = max(results)
    ratio = max(row["ratio"] for row in results.values())
    recall = recalls[("fr", default_embedder("fr").backend)]
    print(f"RESULT p99_ms_{largest // 1000}k={results[largest]['p99']:.2f} ratio={ratio:.3f} "
          f"build_ratio={build_ratio:.3f} recall_at_3={recall:.3f}")


if __name__ == "__main__":
    main()
