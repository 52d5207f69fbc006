"""On-disk index generations: chunks, vectors, a FAISS index and a manifest, switched atomically.

    INDEX_DIR/
      CURRENT              "gen-000007\\n": the generation being served
      gen-000006/          the previous one, kept so a bad build can be rolled back by hand
      gen-000007/
        manifest.json      embedder, model, dimension, index type, files with content hashes, byte sizes
        chunks.jsonl       one chunk per line: chunk_id, source, position, sha256 (of its file), text
        vectors.npy        float32 (chunks, dimension), L2-normalised: the truth the FAISS index is built from
        index.faiss        HNSW graph (HNSW only: a flat index is rebuilt from vectors.npy at load, a memcpy)

A build writes a hidden `.build-*` directory, fsyncs it, renames it to `gen-N`, then replaces CURRENT
(write tmp, fsync, os.replace): a crash at any point leaves the previous generation whole and served.
Exact search (flat inner product on normalised vectors = cosine) up to `hnsw_threshold` chunks; HNSW above,
rebuilt from the stored vectors on every build since HNSW cannot delete.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.errors import KnowledgeError

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines narrate CPU-feature probing
import faiss  # noqa: E402

faiss.omp_set_num_threads(1)  # one OpenMP thread per search: searches run concurrently, not inside each other

FORMAT = 1
CURRENT = "CURRENT"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
_GEN_PREFIX = "gen-"
_BUILD_PREFIX = ".build-"
_DATA_FILES = ("chunks.jsonl", "vectors.npy", "index.faiss")


@dataclass(frozen=True)
class StoredChunk:
    """One chunk as stored: `position` is its rank in its file, `sha256` the hash of the whole file."""

    chunk_id: str
    source: str
    position: int
    sha256: str
    text: str


@dataclass
class Manifest:
    """What a generation holds and how it was made; the embedder fields must match the configured embedder."""

    embedder: str
    model_id: str
    dimension: int
    index_type: str
    chunk_count: int
    chunk_tokens: int
    overlap_tokens: int
    files: dict[str, dict[str, Any]]  # name -> {"sha256", "chunks", "bytes"}
    built_at: str
    sizes: dict[str, int]  # data file -> byte size, filled by write_generation and checked at load
    format: int = FORMAT

    @classmethod
    def from_json(cls, path: Path) -> Manifest:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**doc)
        except (OSError, ValueError, TypeError) as exc:
            raise KnowledgeError(f"{path}: unreadable manifest ({exc})") from None
        if manifest.format != FORMAT:
            raise KnowledgeError(f"{path}: index format {manifest.format}, this version reads {FORMAT}")
        return manifest


def choose_index_type(chunk_count: int, hnsw_threshold: int) -> str:
    """`flat` (exact) up to the threshold, `hnsw` (approximate, sub-millisecond at 100k) above it."""
    return "hnsw" if chunk_count > hnsw_threshold else "flat"


def build_faiss(vectors: np.ndarray, index_type: str) -> faiss.Index:
    """An inner-product FAISS index over L2-normalised rows (scores are cosine similarities)."""
    dimension = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if len(vectors):
        with _omp_threads(os.cpu_count() or 1):  # building an HNSW graph is the one place worth several threads
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


@contextmanager
def _omp_threads(count: int) -> Iterator[None]:
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


class Generation:
    """One immutable build loaded for searching; `load` checks it and raises KnowledgeError when damaged."""

    def __init__(self, path: Path, manifest: Manifest, chunks: list[StoredChunk], index: faiss.Index | None) -> None:
        self.path = path
        self.name = path.name
        self.manifest = manifest
        self.chunks = chunks
        self.index = index

    @classmethod
    def load(cls, path: Path, with_index: bool = True) -> Generation:
        """Read and verify a generation (sizes, counts, dimension); `with_index=False` skips FAISS (builds)."""
        manifest = Manifest.from_json(path / "manifest.json")
        broken = f"index generation {path} is damaged"
        for name, size in manifest.sizes.items():
            try:
                actual = (path / name).stat().st_size
            except OSError:
                raise KnowledgeError(f"{broken}: {name} is missing; build the source again") from None
            if actual != size:
                raise KnowledgeError(f"{broken}: {name} has {actual} bytes, the manifest says {size}; build again")
        try:
            with open(path / "chunks.jsonl", encoding="utf-8") as lines:
                chunks = [StoredChunk(**json.loads(line)) for line in lines]
        except (OSError, ValueError, TypeError) as exc:
            raise KnowledgeError(f"{broken}: chunks.jsonl ({exc}); build the source again") from None
        if len(chunks) != manifest.chunk_count:
            raise KnowledgeError(f"{broken}: {len(chunks)} chunks, the manifest says {manifest.chunk_count}")
        index = None
        if with_index:
            index = cls._load_index(path, manifest, broken)
        return cls(path, manifest, chunks, index)

    @staticmethod
    def _load_index(path: Path, manifest: Manifest, broken: str) -> faiss.Index:
        try:
            if manifest.index_type == "hnsw":
                index = faiss.read_index(str(path / "index.faiss"))
                index.hnsw.efSearch = HNSW_EF_SEARCH
            else:
                index = build_faiss(load_vectors(path, manifest), "flat")
        except (RuntimeError, OSError, ValueError) as exc:
            raise KnowledgeError(f"{broken}: {exc}; build the source again") from None
        if index.ntotal != manifest.chunk_count or index.d != manifest.dimension:
            raise KnowledgeError(
                f"{broken}: FAISS index holds {index.ntotal} x {index.d}, "
                f"the manifest says {manifest.chunk_count} x {manifest.dimension}"
            )
        return index

    def vectors(self) -> np.ndarray:
        """The stored vectors, memory-mapped (read when a build reuses unchanged files)."""
        return load_vectors(self.path, self.manifest)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[float, StoredChunk]]]:
        """Best `k` chunks per query row, best first (FAISS search: run it off the hub)."""
        if not self.chunks:
            return [[] for _ in range(len(queries))]
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self.chunks)))
        return [
            [(float(score), self.chunks[i]) for score, i in zip(row_scores, row_ids) if i >= 0]
            for row_scores, row_ids in zip(scores, ids)
        ]


def load_vectors(path: Path, manifest: Manifest) -> np.ndarray:
    """The generation's vectors, memory-mapped and checked against the manifest."""
    try:
        vectors = np.load(path / "vectors.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise KnowledgeError(f"index generation {path} is damaged: vectors.npy ({exc}); build again") from None
    if vectors.shape != (manifest.chunk_count, manifest.dimension) or vectors.dtype != np.float32:
        raise KnowledgeError(
            f"index generation {path} is damaged: vectors.npy is {vectors.shape} {vectors.dtype}, "
            f"the manifest says ({manifest.chunk_count}, {manifest.dimension}) float32; build again"
        )
    return vectors


def current_name(index_dir: Path) -> str | None:
    """The generation CURRENT points at, or None when the source was never built."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KnowledgeError(f"cannot read {index_dir / CURRENT}: {exc}") from None
    if not name.startswith(_GEN_PREFIX) or "/" in name:
        raise KnowledgeError(f"{index_dir / CURRENT} is damaged (holds {name[:40]!r}); build the source again")
    return name


def current_stamp(index_dir: Path) -> tuple[int, int] | None:
    """(inode, mtime) of CURRENT: one stat tells a running process whether a new generation was switched in."""
    try:
        st = os.stat(index_dir / CURRENT)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def write_generation(index_dir: Path, manifest: Manifest, chunks: list[StoredChunk], vectors: np.ndarray) -> str:
    """Write a new generation, switch CURRENT to it, prune all but it and the previous; returns its name.

    Fills `manifest.sizes`. Call under `build_lock(index_dir)`.
    """
    previous = current_name(index_dir)
    name = f"{_GEN_PREFIX}{_next_number(index_dir):06d}"
    tmp = index_dir / f"{_BUILD_PREFIX}{name}-{os.getpid()}"
    tmp.mkdir(parents=True)
    with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        _sync(out)
    with open(tmp / "vectors.npy", "wb") as out:
        np.save(out, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        _sync(out)
    if manifest.index_type == "hnsw":
        faiss.write_index(build_faiss(vectors, "hnsw"), str(tmp / "index.faiss"))
        with open(tmp / "index.faiss", "rb") as written:
            os.fsync(written.fileno())
    manifest.sizes = {f: (tmp / f).stat().st_size for f in _DATA_FILES if (tmp / f).exists()}
    with open(tmp / "manifest.json", "w", encoding="utf-8") as out:
        json.dump(asdict(manifest), out, ensure_ascii=False, indent=1)
        _sync(out)
    _sync_dir(tmp)
    os.rename(tmp, index_dir / name)
    _sync_dir(index_dir)
    _replace_text(index_dir / CURRENT, name + "\n")
    prune(index_dir, keep={name, previous})
    return name


def _next_number(index_dir: Path) -> int:
    suffixes = [p.name[len(_GEN_PREFIX):] for p in index_dir.glob(f"{_GEN_PREFIX}*")]
    numbers = [int(s) for s in suffixes if s.isdigit()]
    return max(numbers, default=0) + 1


def prune(index_dir: Path, keep: set[str | None]) -> None:
    """Remove generations not in `keep` and leftovers of crashed builds (under the build lock)."""
    for path in index_dir.iterdir():
        if (path.name.startswith(_GEN_PREFIX) and path.name not in keep) or path.name.startswith(_BUILD_PREFIX):
            shutil.rmtree(path, ignore_errors=True)


def remove_index(index_dir: Path) -> bool:
    """Delete what a build created in `index_dir` (only that); False when there was nothing."""
    if not index_dir.is_dir():
        return False
    with build_lock(index_dir):
        owned = [p for p in index_dir.iterdir() if p.name.startswith((_GEN_PREFIX, _BUILD_PREFIX, CURRENT))]
        for path in owned:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    (index_dir / ".lock").unlink(missing_ok=True)
    if not any(index_dir.iterdir()):
        index_dir.rmdir()
    return bool(owned)


def disk_size(index_dir: Path) -> int:
    """Bytes used by the index directory (all kept generations)."""
    return sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) if index_dir.is_dir() else 0


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index directory (an flock, released by the kernel if the builder dies)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KnowledgeError(f"another build of {index_dir} is running; wait for it to finish") from None
        yield


def _sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_text(path: Path, text: str) -> None:
    """Atomic file switch: write a temporary file, fsync it, rename it over `path`, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        _sync(out)
    os.replace(tmp, path)
    _sync_dir(path.parent)
