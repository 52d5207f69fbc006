"""Call records on disk until Redis is known to keep them: the write-ahead log of the after-call stream.

Every record is spooled before its XADD, and its file is deleted only once Redis has held it long enough to
have written it to its append-only file (records.py says when), so neither a Redis outage nor a SIGKILL of Redis
just after an XADD loses it. One file per record, written so that a crash or a power cut leaves either the
whole record or nothing:
write `.<name>.tmp` (0600, private.py), fsync it, rename it to `<name>.json`, fsync the directory. Names sort in the order the
records were spooled (`<microseconds>-<seq>.json`, never going backwards even if the wall clock does).
Deleting is not fsynced: a deletion lost in a crash only brings back a file whose record Redis already has,
and the store checks that before adding it again. A file lock keeps two processes sharing a
state dir (`serve` and a separate `worker`) from replaying the same files at once.
"""
from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gevent import monkey

from controller.state.private import private_dir, private_opener

log = logging.getLogger("switchboard.spool")

_SUFFIX = ".json"
# Records of several calls are written at once from gevent's threadpool: their names come from a real lock (the
# monkey-patched one would be a greenlet lock of the hub).
_ThreadLock = monkey.get_original("threading", "Lock")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A directory of pending records, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        private_dir(self.directory)
        for leftover in self.directory.glob(".*.tmp"):  # a crash before the rename: the write never completed
            log.warning("removing incomplete spool file %s", leftover.name)
            leftover.unlink(missing_ok=True)
        last = max((p.stem for p in self.pending()), default="0-0")
        micros, _, seq = last.partition("-")
        self._last = (int(micros), int(seq or 0))
        self._naming = _ThreadLock()

    def _next_name(self, now_us: int) -> str:
        with self._naming:
            last_us, last_seq = self._last
            self._last = (now_us, 0) if now_us > last_us else (last_us, last_seq + 1)
            return f"{self._last[0]:017d}-{self._last[1]:06d}{_SUFFIX}"

    def write(self, payload: str, now_us: int) -> Path:
        """Durably store one record; returns its path once the file and its directory entry are on disk. Safe
        from several threads at once."""
        name = self._next_name(now_us)
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8", opener=private_opener) as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.directory / name
        os.rename(tmp, final)
        _fsync_dir(self.directory)
        return final

    def pending(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.suffix == _SUFFIX and not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.pending())

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yields True when this process holds the replay lock, False when another process does."""
        with open(self.directory / ".replay.lock", "a", opener=private_opener) as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
