"""Building a source's index: read, chunk, embed only what changed, write a new generation.

Files are identified by their name under the paths given and compared by the SHA-256 of their bytes: an
unchanged file keeps its chunks and vectors from the previous generation (no parsing, no embedding), a new or
changed file is parsed, chunked and embedded, and a file absent from this run's paths is dropped. Files that
cannot be read or hold no text are reported and skipped; the others are indexed regardless.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from knowledge import DEFAULT_CHUNK_TOKENS, DEFAULT_HNSW_THRESHOLD, DEFAULT_OVERLAP_TOKENS
from knowledge.chunking import chunk_paragraphs
from knowledge.embedders import Embedder, get_embedder
from knowledge.errors import KnowledgeError
from knowledge.index import (
    Generation,
    Manifest,
    StoredChunk,
    build_lock,
    choose_index_type,
    current_name,
    write_generation,
)
from knowledge.loaders import SourceFile, Unreadable, discover, extract_paragraphs, read_file
from knowledge.sources import SourceSpec

EMBED_BATCH = 64


@dataclass
class BuildReport:
    """What a build did, file by file, for the CLI to print and tests to check."""

    source: str
    generation: str
    index_type: str
    chunks: int
    embedded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Planned:
    file: SourceFile
    sha256: str
    size: int
    texts: list[str]
    reused: np.ndarray | None = None  # row indices into the previous generation's vectors


def build_source(
    spec: SourceSpec,
    paths: list[Path],
    *,
    embedder: Embedder | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
    progress: bool = True,
) -> BuildReport:
    """Index `paths` (files or directories) as the new content of `spec`; raises KnowledgeError when it cannot.

    `progress` shows a tqdm bar on stderr while embedding (when stderr is a terminal).
    """
    files, skipped = discover(paths)
    embedder = embedder or get_embedder(spec.embedder)
    chunk_tokens = chunk_tokens or min(DEFAULT_CHUNK_TOKENS, embedder.max_tokens)
    if chunk_tokens > embedder.max_tokens:
        raise KnowledgeError(
            f"chunk size {chunk_tokens} exceeds the {embedder.max_tokens}-token window of {embedder.name}; "
            f"use at most {embedder.max_tokens}"
        )
    with build_lock(spec.index_dir):
        previous, notes = _previous(spec, embedder, chunk_tokens, overlap_tokens)
        planned = _plan(files, previous, embedder, chunk_tokens, overlap_tokens, skipped)
        if not planned:
            reasons = "".join(f"\n  {path}: {reason}" for path, reason in skipped)
            raise KnowledgeError(
                f"nothing to index for source {spec.name!r}: no readable .txt, .md, .html or .pdf file with text "
                f"in {', '.join(map(str, paths))}; the current index is unchanged{reasons}"
            )
        fresh = _embed([text for p in planned if p.reused is None for text in p.texts], embedder, spec.name, progress)
        vectors = _assemble(planned, previous, fresh)
        chunks = [
            StoredChunk(_chunk_id(p.file.name, p.sha256, position), p.file.name, position, p.sha256, text)
            for p in planned
            for position, text in enumerate(p.texts)
        ]
        manifest = Manifest(
            embedder=embedder.name,
            model_id=embedder.model_id,
            dimension=embedder.dimension,
            index_type=choose_index_type(len(chunks), hnsw_threshold),
            chunk_count=len(chunks),
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens,
            files={p.file.name: {"sha256": p.sha256, "chunks": len(p.texts), "bytes": p.size} for p in planned},
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            sizes={},
        )
        generation = write_generation(spec.index_dir, manifest, chunks, vectors)
    kept = {p.file.name for p in planned}
    return BuildReport(
        source=spec.name,
        generation=generation,
        index_type=manifest.index_type,
        chunks=len(chunks),
        embedded=[p.file.name for p in planned if p.reused is None],
        reused=[p.file.name for p in planned if p.reused is not None],
        dropped=sorted(set(previous.manifest.files) - kept) if previous else [],
        skipped=skipped,
        notes=notes,
    )


def _previous(
    spec: SourceSpec, embedder: Embedder, chunk_tokens: int, overlap_tokens: int
) -> tuple[Generation | None, list[str]]:
    """The generation whose vectors may be reused, or None with the reason everything is embedded again."""
    name = current_name(spec.index_dir)
    if name is None:
        return None, []
    try:
        previous = Generation.load(spec.index_dir / name, with_index=False)
    except KnowledgeError as exc:
        return None, [f"previous index unusable ({exc}): every file is embedded again"]
    m = previous.manifest
    if (m.embedder, m.model_id, m.dimension) != (embedder.name, embedder.model_id, embedder.dimension):
        return None, [f"embedder changed from {m.embedder} to {embedder.name}: every file is embedded again"]
    if (m.chunk_tokens, m.overlap_tokens) != (chunk_tokens, overlap_tokens):
        return None, [
            f"chunking changed from {m.chunk_tokens}/{m.overlap_tokens} to {chunk_tokens}/{overlap_tokens} tokens: "
            "every file is embedded again"
        ]
    return previous, []


def _plan(
    files: list[SourceFile],
    previous: Generation | None,
    embedder: Embedder,
    chunk_tokens: int,
    overlap_tokens: int,
    skipped: list[tuple[str, str]],
) -> list[_Planned]:
    """Per file: its previous rows when its bytes are unchanged, else its new chunk texts."""
    rows_by_file: dict[str, list[int]] = {}
    texts_by_file: dict[str, list[str]] = {}
    if previous is not None:
        for row, chunk in enumerate(previous.chunks):
            rows_by_file.setdefault(chunk.source, []).append(row)
            texts_by_file.setdefault(chunk.source, []).append(chunk.text)
    planned: list[_Planned] = []
    for source in files:
        try:
            data = read_file(source)
            sha256 = hashlib.sha256(data).hexdigest()
            old = previous.manifest.files.get(source.name) if previous else None
            if old and old["sha256"] == sha256 and source.name in rows_by_file:
                rows = np.asarray(rows_by_file[source.name])
                planned.append(_Planned(source, sha256, len(data), texts_by_file[source.name], rows))
                continue
            paragraphs = extract_paragraphs(source.path, data)
        except Unreadable as exc:
            skipped.append((str(source.path), str(exc)))
            continue
        texts = chunk_paragraphs(paragraphs, embedder.count_tokens, embedder.max_tokens, chunk_tokens, overlap_tokens)
        planned.append(_Planned(source, sha256, len(data), texts))
    return planned


def _embed(texts: list[str], embedder: Embedder, name: str, progress: bool) -> np.ndarray:
    """Rows of `texts`, embedded in batches with a progress bar on stderr.

    Files are all parsed before the first batch: overlapping the two made builds slower and erratic when
    measured (the parser and the encoder's Python parts hand the GIL back and forth), not faster.
    """
    rows = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    with tqdm(total=len(texts), desc=f"embedding {name}", unit="chunk", file=sys.stderr,
              disable=None if progress else True, leave=False) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            rows[start:start + len(batch)] = embedder.encode(batch)
            bar.update(len(batch))
    return rows


def _assemble(planned: list[_Planned], previous: Generation | None, fresh: np.ndarray) -> np.ndarray:
    """All rows in plan order: reused ones copied from the previous generation, new ones from `fresh`."""
    old = previous.vectors() if previous is not None else None
    parts, offset = [], 0
    for p in planned:
        if p.reused is not None:
            parts.append(np.asarray(old[p.reused]))
        else:
            parts.append(fresh[offset:offset + len(p.texts)])
            offset += len(p.texts)
    return np.concatenate(parts)


def _chunk_id(source: str, sha256: str, position: int) -> str:
    """Stable while the file is unchanged, so a cited chunk keeps its id across rebuilds."""
    return hashlib.sha1(f"{source}\0{sha256}\0{position}".encode()).hexdigest()[:16]
