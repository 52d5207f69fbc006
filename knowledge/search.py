"""Searching a built source from a running process: the API the RAG action and the brain call.

    kb = KnowledgeBase.open(spec)           # KnowledgeError when missing, damaged or built with another embedder
    hits = kb.search("comment payer ?", k=3)

The query is encoded on the embedder's worker thread (micro-batched with concurrent calls); a large exact
FAISS search runs on gevent's threadpool, a small or HNSW one (sub-millisecond) inline. A rebuild done by the
CLI is picked up without a restart: `refresh()` costs one stat of CURRENT and reloads (off the hub) only when
it changed; `search` calls it at most every `refresh_every` seconds.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import gevent
from gevent.lock import Semaphore

from knowledge.embedders import Embedder, get_embedder
from knowledge.errors import KnowledgeError
from knowledge.index import Generation, current_name, current_stamp
from knowledge.sources import SourceSpec
from knowledge.worker import apply_quietly

log = logging.getLogger("switchboard.knowledge")

# About 4,000 chunks of 512 floats: an exact search over them takes ~0.2 ms, less than handing it to a thread.
_INLINE_FLAT_FLOATS = 2_000_000


@dataclass(frozen=True)
class Hit:
    """One chunk found: its text, the file it came from (`source`), its rank in that file, cosine `score`."""

    text: str
    source: str
    position: int
    score: float
    chunk_id: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `switchboard knowledge query --json`."""
        return asdict(self)


def _off_hub(fn: Any, *args: Any) -> Any:
    """Run CPU work on gevent's threadpool: blocks the calling greenlet, never the hub."""
    return apply_quietly(gevent.get_hub().threadpool, fn, *args)


def _cheap(generation: Generation) -> bool:
    """Whether a search costs less than a threadpool round trip, so it runs inline: HNSW (a fraction of a
    millisecond at 100k chunks) and flat indexes up to `_INLINE_FLAT_FLOATS` stored floats."""
    m = generation.manifest
    return m.index_type == "hnsw" or m.chunk_count * m.dimension <= _INLINE_FLAT_FLOATS


def _load_checked(spec: SourceSpec, embedder_name: str, model_id: str) -> Generation:
    name = current_name(spec.index_dir)
    if name is None:
        raise KnowledgeError(
            f"source {spec.name!r} has no index in {spec.index_dir}: "
            f"build it with `switchboard knowledge index {spec.name} PATH...`"
        )
    generation = _off_hub(Generation.load, spec.index_dir / name)
    m = generation.manifest
    if (m.embedder, m.model_id) != (embedder_name, model_id):
        raise KnowledgeError(
            f"source {spec.name!r} was indexed with embedder {m.embedder} ({m.model_id}) but the config says "
            f"{embedder_name} ({model_id}): set its embedder back to {m.embedder}, or rebuild it with "
            f"`switchboard knowledge index {spec.name} PATH...`"
        )
    return generation


class KnowledgeBase:
    """A searchable source; safe to share between the greenlets of one process."""

    def __init__(self, spec: SourceSpec, embedder: Embedder, generation: Generation, refresh_every: float) -> None:
        self.spec = spec
        self.embedder = embedder
        self._generation = generation
        self._stamp = current_stamp(spec.index_dir)
        self._refresh_every = refresh_every
        self._checked_at = time.monotonic()
        self._reloading = Semaphore()

    @classmethod
    def open(cls, spec: SourceSpec, embedder: Embedder | None = None, refresh_every: float = 5.0) -> KnowledgeBase:
        """Load the current generation of `spec`; raises KnowledgeError when missing, damaged or mismatched."""
        generation = _load_checked(spec, spec.embedder.name, spec.embedder.model_id)
        embedder = embedder or get_embedder(spec.embedder)
        if generation.manifest.dimension != embedder.dimension:
            raise KnowledgeError(
                f"source {spec.name!r} holds {generation.manifest.dimension}-d vectors but {embedder.name} makes "
                f"{embedder.dimension}-d ones: rebuild it with `switchboard knowledge index {spec.name} PATH...`"
            )
        return cls(spec, embedder, generation, refresh_every)

    @property
    def generation(self) -> Generation:
        return self._generation

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Up to `k` chunks most similar to `query`, best first, none below the source's `min_score`."""
        if time.monotonic() - self._checked_at >= self._refresh_every:
            self.refresh()
        if not query.strip() or k < 1:
            return []
        vector = self.embedder.encode([query])
        generation = self._generation
        if _cheap(generation):
            [found] = generation.search(vector, k)
        else:
            [found] = _off_hub(generation.search, vector, k)
        return [
            Hit(chunk.text, chunk.source, chunk.position, score, chunk.chunk_id)
            for score, chunk in found
            if score >= self.spec.min_score
        ]

    def refresh(self) -> bool:
        """Switch to a newer generation if CURRENT changed; True when it did.

        A damaged or mismatched new generation is logged and the current one kept serving.
        """
        self._checked_at = time.monotonic()
        stamp = current_stamp(self.spec.index_dir)
        if stamp == self._stamp or stamp is None or not self._reloading.acquire(blocking=False):
            return False
        try:
            if current_name(self.spec.index_dir) == self._generation.name:
                self._stamp = stamp
                return False
            generation = _load_checked(self.spec, self.embedder.name, self.embedder.model_id)
        except KnowledgeError as exc:
            log.error("knowledge source %s: keeping generation %s: %s", self.spec.name, self._generation.name, exc)
            self._stamp = stamp
            return False
        finally:
            self._reloading.release()
        self._generation, self._stamp = generation, stamp
        log.info("knowledge source %s: now serving %s", self.spec.name, generation.name)
        return True
