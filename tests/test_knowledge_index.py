"""Index generations: incremental rebuilds, crashes, damage, mismatches, HNSW, and live refresh."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import knowledge.index as index_store
from knowledge.build import build_source
from controller.cli.knowledge import knowledge
from knowledge.embedders import Embedder, get_embedder
from knowledge.errors import KnowledgeError
from knowledge.index import Generation, current_name
from knowledge.search import KnowledgeBase
from knowledge.sources import EmbedderSpec, SourceSpec

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "knowledge" / "faq-fr"
QUESTION = "Vous acceptez les chèques ?"


class CountingEmbedder:
    """The real use-m3 embedder, remembering every text it was asked to encode."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture()
def docs(tmp_path) -> Path:
    """A copy of four corpus files the test may edit."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("facturation.md", "moyens-de-paiement.md", "resiliation.md", "panne-internet.html"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


@pytest.fixture()
def spec(tmp_path) -> SourceSpec:
    return SourceSpec("faq", tmp_path / "index", EmbedderSpec("use-m3"), "fr")


def generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.name.startswith("gen-"))


def test_a_rebuild_embeds_only_new_and_changed_files_and_drops_absent_ones(docs, spec):
    counting = CountingEmbedder(get_embedder(spec.embedder))
    first = build_source(spec, [docs], embedder=counting, progress=False)
    assert sorted(first.embedded) == sorted(p.name for p in docs.iterdir())
    all_chunks = len(counting.encoded)
    assert all_chunks == first.chunks

    counting.encoded.clear()
    with open(docs / "resiliation.md", "a", encoding="utf-8") as extra:
        extra.write("\nLes frais de résiliation anticipée de la box sont de 49 € au maximum.\n")
    (docs / "panne-internet.html").unlink()
    shutil.copy(CORPUS / "horaires-et-contact.html", docs / "horaires-et-contact.html")
    second = build_source(spec, [docs], embedder=counting, progress=False)

    assert sorted(second.embedded) == ["horaires-et-contact.html", "resiliation.md"]
    assert sorted(second.reused) == ["facturation.md", "moyens-de-paiement.md"]
    assert second.dropped == ["panne-internet.html"]
    fresh = Generation.load(spec.index_dir / second.generation, with_index=False)
    assert len(counting.encoded) == sum(1 for c in fresh.chunks if c.source in second.embedded) < all_chunks
    assert {c.source for c in fresh.chunks} == {p.name for p in docs.iterdir()}

    hits = KnowledgeBase.open(spec).search("Quels sont les frais si je résilie ma box avant un an ?", k=1)
    assert hits[0].source == "resiliation.md"
    reused = KnowledgeBase.open(spec).search(QUESTION, k=1)[0]
    assert reused.source == "moyens-de-paiement.md"


def test_unchanged_files_keep_their_vectors_and_chunk_ids(docs, spec):
    first = build_source(spec, [docs], progress=False)
    old = Generation.load(spec.index_dir / first.generation)
    second = build_source(spec, [docs], progress=False)
    new = Generation.load(spec.index_dir / second.generation)
    assert second.embedded == [] and [c.chunk_id for c in new.chunks] == [c.chunk_id for c in old.chunks]
    np.testing.assert_array_equal(np.asarray(new.vectors()), np.asarray(old.vectors()))


def test_only_the_current_and_previous_generations_are_kept(docs, spec):
    for _ in range(4):
        report = build_source(spec, [docs], progress=False)
    assert generations(spec.index_dir) == ["gen-000003", "gen-000004"]
    assert current_name(spec.index_dir) == report.generation == "gen-000004"


def test_a_builder_killed_mid_build_leaves_the_previous_generation_served(docs, spec, tmp_path):
    build_source(spec, [docs / "moyens-de-paiement.md"], progress=False)
    before = KnowledgeBase.open(spec).search(QUESTION, k=1)
    marker = tmp_path / "embedding-started"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from knowledge.build import build_source
        from knowledge.embedders import get_embedder
        from knowledge.sources import EmbedderSpec, SourceSpec

        class Stalled:  # embeds like the real one, then hangs until the test kills the process
            def __init__(self, inner):
                self.inner = inner
            def __getattr__(self, name):
                return getattr(self.inner, name)
            def encode(self, texts):
                self.inner.encode(texts)
                Path({str(marker)!r}).write_text("started")
                time.sleep(120)

        spec = SourceSpec("faq", Path({str(spec.index_dir)!r}), EmbedderSpec("use-m3"), "fr")
        build_source(spec, [Path({str(docs)!r})], embedder=Stalled(get_embedder(spec.embedder)), progress=False)
    """)
    builder = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    try:
        for _ in range(600):
            if marker.exists() or builder.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the builder never started embedding"
        builder.send_signal(signal.SIGKILL)
    finally:
        builder.kill()
        builder.wait(30)

    assert current_name(spec.index_dir) == "gen-000001"
    assert KnowledgeBase.open(spec).search(QUESTION, k=1) == before
    after = build_source(spec, [docs], progress=False)  # the dead builder's lock went with it
    assert after.generation == "gen-000002"


def test_a_crash_just_before_the_switch_leaves_the_previous_generation_and_is_cleaned_up(docs, spec, monkeypatch):
    build_source(spec, [docs / "facturation.md"], progress=False)

    def power_cut(path: Path, text: str) -> None:
        raise OSError("simulated power cut before CURRENT was replaced")

    monkeypatch.setattr(index_store, "_replace_text", power_cut)
    with pytest.raises(OSError, match="simulated power cut"):
        build_source(spec, [docs], progress=False)
    monkeypatch.undo()
    assert current_name(spec.index_dir) == "gen-000001"
    assert {h.source for h in KnowledgeBase.open(spec).search(QUESTION, k=5)} == {"facturation.md"}
    build_source(spec, [docs], progress=False)
    assert generations(spec.index_dir) == ["gen-000001", "gen-000003"]


@pytest.mark.parametrize("damage, message", [
    (lambda gen: (gen / "vectors.npy").write_bytes((gen / "vectors.npy").read_bytes()[:-100]), "vectors.npy has"),
    (lambda gen: (gen / "chunks.jsonl").write_bytes(b"x" * (gen / "chunks.jsonl").stat().st_size), "chunks.jsonl"),
    (lambda gen: (gen / "manifest.json").write_text("{not json", encoding="utf-8"), "unreadable manifest"),
    (lambda gen: (gen.parent / "CURRENT").write_text("../../etc\n", encoding="utf-8"), "CURRENT is damaged"),
])
def test_a_damaged_index_is_a_clear_error(docs, spec, tmp_path, damage, message):
    report = build_source(spec, [docs], progress=False)
    damage(spec.index_dir / report.generation)
    with pytest.raises(KnowledgeError, match=message):
        KnowledgeBase.open(spec)
    config = tmp_path / "sb.yaml"
    config.write_text(yaml.safe_dump({"knowledge_sources": {"faq": {"index_dir": "index", "language": "fr"}}}))
    result = CliRunner().invoke(knowledge, ["query", "faq", QUESTION, "--config", str(config)])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_a_damaged_previous_generation_only_means_embedding_everything_again(docs, spec):
    first = build_source(spec, [docs], progress=False)
    (spec.index_dir / first.generation / "chunks.jsonl").write_text("garbage\n", encoding="utf-8")
    second = build_source(spec, [docs], progress=False)
    assert len(second.embedded) == 4 and "previous index unusable" in second.notes[0]


def test_an_empty_source_is_refused_and_the_current_index_kept(docs, spec, tmp_path):
    build_source(spec, [docs], progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("\n\n", encoding="utf-8")
    (empty / "slides.pptx").write_bytes(b"PK")
    with pytest.raises(KnowledgeError) as error:
        build_source(spec, [empty], progress=False)
    message = str(error.value)
    assert "nothing to index for source 'faq'" in message and "the current index is unchanged" in message
    assert "blank.txt: empty: no text to index" in message and "slides.pptx: unsupported file type" in message
    assert current_name(spec.index_dir) == "gen-000001"


def test_unreadable_files_are_reported_and_skipped_while_the_others_are_indexed(docs, spec, tmp_path):
    (docs / "scan.pdf").write_bytes(b"%PDF-1.7\n%%garbage that pypdf cannot parse")
    (docs / "notes.md").write_text("", encoding="utf-8")
    config = tmp_path / "sb.yaml"
    config.write_text(yaml.safe_dump({"knowledge_sources": {"faq": {"index_dir": "index", "language": "fr"}}}))
    result = CliRunner().invoke(knowledge, ["index", "faq", str(docs), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"skipped {docs / 'scan.pdf'}: not a readable PDF" in result.stderr
    assert f"skipped {docs / 'notes.md'}: empty: no text to index" in result.stderr
    assert "faq: 4 files" in result.stdout and "skipped 2" in result.stdout


def test_an_index_built_with_another_embedder_is_refused_with_the_fix(docs, spec, tmp_path):
    build_source(spec, [docs], progress=False)
    minilm = SourceSpec("faq", spec.index_dir, EmbedderSpec("minilm"), "fr")
    with pytest.raises(KnowledgeError, match=r"indexed with embedder use-m3 .* config says minilm"):
        KnowledgeBase.open(minilm)
    config = tmp_path / "sb.yaml"
    config.write_text(yaml.safe_dump(
        {"knowledge_sources": {"faq": {"index_dir": "index", "language": "fr", "embedder": "minilm"}}}))
    result = CliRunner().invoke(knowledge, ["query", "faq", QUESTION, "--config", str(config)])
    assert result.exit_code == 2
    assert "set its embedder back to use-m3, or rebuild it" in result.stderr


def test_above_the_threshold_the_index_is_hnsw_and_finds_what_flat_finds(docs, spec, tmp_path):
    flat_spec = SourceSpec("flat", tmp_path / "flat", spec.embedder, "fr")
    flat = build_source(flat_spec, [CORPUS], progress=False)
    hnsw = build_source(spec, [CORPUS], hnsw_threshold=10, progress=False)
    assert (flat.index_type, hnsw.index_type) == ("flat", "hnsw")
    assert (spec.index_dir / hnsw.generation / "index.faiss").is_file()
    manifest = json.loads((spec.index_dir / hnsw.generation / "manifest.json").read_text())
    assert manifest["index_type"] == "hnsw" and manifest["chunk_count"] == hnsw.chunks > 10
    exact, approximate = KnowledgeBase.open(flat_spec), KnowledgeBase.open(spec)
    for question in ("Vous acceptez les chèques ?", "Ma box clignote en rouge", "Je déménage bientôt"):
        assert [h.chunk_id for h in approximate.search(question, 3)] == [h.chunk_id for h in exact.search(question, 3)]


def test_a_running_process_picks_up_a_new_generation_on_refresh(docs, spec):
    build_source(spec, [docs / "facturation.md"], progress=False)
    kb = KnowledgeBase.open(spec, refresh_every=3600)
    assert kb.refresh() is False
    assert kb.search(QUESTION, k=1)[0].source == "facturation.md"
    build_source(spec, [docs], progress=False)
    assert kb.search(QUESTION, k=1)[0].source == "facturation.md"  # not checked yet: still the old generation
    assert kb.refresh() is True
    assert kb.generation.name == "gen-000002"
    assert kb.search(QUESTION, k=1)[0].source == "moyens-de-paiement.md"


def test_a_damaged_new_generation_is_not_switched_to(docs, spec):
    build_source(spec, [docs], progress=False)
    kb = KnowledgeBase.open(spec, refresh_every=3600)
    report = build_source(spec, [docs / "facturation.md"], progress=False)
    os.truncate(spec.index_dir / report.generation / "vectors.npy", 10)
    assert kb.refresh() is False
    assert kb.generation.name == "gen-000001"
    assert kb.search(QUESTION, k=1)[0].source == "moyens-de-paiement.md"


def test_search_applies_the_sources_minimum_score(docs, spec):
    build_source(spec, [docs], progress=False)
    strict = SourceSpec("faq", spec.index_dir, spec.embedder, "fr", min_score=0.99)
    assert KnowledgeBase.open(strict).search(QUESTION) == []
    assert KnowledgeBase.open(spec).search("   ") == []
    assert len(KnowledgeBase.open(spec).search(QUESTION, k=2)) == 2
