"""Call data is for the service's user alone: state directories 0700 and files 0600, whatever the umask.

Transcripts, caller numbers and call variables sit in the Redis append-only file and in the spool; under the
common umask 022 they would be readable by every local user. So what Switchboard creates under `state_dir` is
created private (directories with `private_dir`, files with `private_opener`), and the embedded redis-server
runs under `PRIVATE_UMASK` so its AOF, rewrites and pid file are 0600 too. Modes of what already exists are
left alone (an operator may have set them on purpose); `switchboard check` warns about them (`open_to_others`).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
CALL_DATA_DIRS = ("redis", "spool")  # under state_dir: the embedded Redis's files, the spooled call records


def private_dir(path: Path) -> Path:
    """`path`, created 0700 with its missing parents; an existing directory keeps its mode."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        try:
            missing.mkdir(mode=0o700)  # masked by the umask, so never wider than 0700
        except FileExistsError:  # another process created it meanwhile
            pass
    return path


def private_opener(path: str, flags: int) -> int:
    """For `open(..., opener=private_opener)`: a file it creates is 0600 (never wider, whatever the umask)."""
    return os.open(path, flags, 0o600)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, creating it 0600."""
    with open(path, "w", encoding="utf-8", opener=private_opener) as fh:
        fh.write(text)


def open_to_others(state_dir: Path) -> list[tuple[Path, int]]:
    """(path, mode) of the call-data directories under `state_dir`, and the files directly in them, that group
    or others may access; [] when there are none (or no state yet)."""
    found = []
    for directory in (state_dir / name for name in CALL_DATA_DIRS):
        try:
            paths = [directory, *sorted(directory.iterdir())] if directory.is_dir() else []
        except OSError:
            continue
        for path in paths:
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if (stat.S_ISDIR(mode) or stat.S_ISREG(mode)) and mode & 0o077:
                found.append((path, stat.S_IMODE(mode)))
    return found
