"""Reader for the real FreeSWITCH wire captures (../shared/esl-captures/), so tests compare against truth.

A capture file lists frames as::

    ### <connection> <sent|recv> #<seq> t=+<seconds> len=<bytes>
    >>> a line sent to FreeSWITCH
    <<< a line received from FreeSWITCH
    \\ no newline at end of frame

Each prefixed line is the line's content plus one ``\\n``; the marker drops the last ``\\n``.
Rebuilding the bytes gives exactly ``len=`` bytes, which `parse_capture` checks for every frame.

Capture 18 was recorded by a logging proxy in front of the product, in the proxy's own format, one block per
TCP read or write (several frames, event frames cut to their telling headers): `parse_proxy_capture` reads it::

    ===== <connection> <controller -> FS|FS -> controller> +<seconds>s (<bytes> bytes)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from fssim.wire import Frame, parse_frame

_FRAME_LINE = re.compile(r"^### (?P<conn>\S+) (?P<dir>sent|recv) #(?P<seq>\d+) t=\+(?P<t>[\d.]+) len=(?P<len>\d+)$")
_NO_NEWLINE = "\\ no newline at end of frame"
_PROXY_LINE = re.compile(r"^===== (?P<conn>\S+) (?P<dir>controller -> FS|FS -> controller) \+(?P<t>[\d.]+)s "
                         r"\((?P<len>\d+) bytes\)$")
_REPO = Path(__file__).resolve().parents[1]
# The project's checkout sits beside shared/ (developers and CI alike); a copy under tests/ also works.
_SEARCH_PATH = (_REPO / "tests" / "esl-captures", _REPO.parent / "shared" / "esl-captures",
                Path("/work/shared/esl-captures"))


class CaptureFormatError(ValueError):
    """A capture file that does not follow the format (names the file and line)."""


@dataclass(frozen=True)
class CaptureFrame:
    """One frame of a capture: `sent` went to FreeSWITCH, `recv` came from it."""

    connection: str
    direction: str
    seq: int
    t: float
    length: int
    raw: bytes
    line: int
    frame: Frame = field(repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        return self.frame.headers

    @property
    def event(self) -> dict[str, str]:
        return self.frame.event

    @property
    def event_name(self) -> str | None:
        return self.frame.event_name


def captures_dir() -> Path:
    """Where the captures live: `$SWITCHBOARD_ESL_CAPTURES`, else tests/esl-captures, else /work/shared."""
    env = os.environ.get("SWITCHBOARD_ESL_CAPTURES")
    candidates = (Path(env),) if env else _SEARCH_PATH
    for candidate in candidates:
        if (candidate / "README.md").is_file():
            return candidate
    raise FileNotFoundError(
        f"ESL captures not found in {', '.join(map(str, candidates))}: "
        "set SWITCHBOARD_ESL_CAPTURES to the esl-captures directory"
    )


def capture_path(name: str) -> Path:
    """`capture_path("04")` -> the file whose name starts with `04-`."""
    directory = captures_dir()
    matches = sorted(directory.glob(f"{name}-*.txt")) or sorted(directory.glob(f"{name}*.txt"))
    if not matches:
        raise FileNotFoundError(f"no capture named {name!r} in {directory}")
    return matches[0]


def parse_capture(path: str | Path) -> list[CaptureFrame]:
    """Every frame of a capture file, in file order, with its exact bytes (checked against `len=`)."""
    path = Path(path)
    frames: list[CaptureFrame] = []
    current: dict | None = None

    def close(lineno: int) -> None:
        nonlocal current
        if current is None:
            return
        raw = "".join(current["lines"]).encode("utf-8")
        if current["no_newline"]:
            raw = raw[:-1]
        if len(raw) != current["len"]:
            raise CaptureFormatError(
                f"{path}:{current['line']}: frame rebuilt to {len(raw)} bytes but the header says len={current['len']}"
            )
        frames.append(CaptureFrame(current["conn"], current["dir"], current["seq"], current["t"], current["len"],
                                   raw, current["line"], parse_frame(raw)))
        current = None

    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            match = _FRAME_LINE.match(line)
            if match:
                close(lineno)
                current = {"conn": match["conn"], "dir": match["dir"], "seq": int(match["seq"]),
                           "t": float(match["t"]), "len": int(match["len"]), "line": lineno,
                           "lines": [], "no_newline": False}
            elif line.startswith(("<<< ", ">>> ")):
                if current is None:
                    raise CaptureFormatError(f"{path}:{lineno}: wire line outside a frame")
                expected = "<<< " if current["dir"] == "recv" else ">>> "
                if not line.startswith(expected):
                    raise CaptureFormatError(f"{path}:{lineno}: {line[:4]!r} line in a {current['dir']} frame")
                current["lines"].append(line[4:] + "\n")
            elif line == _NO_NEWLINE:
                if current is None:
                    raise CaptureFormatError(f"{path}:{lineno}: no-newline marker outside a frame")
                current["no_newline"] = True
            else:
                close(lineno)
    close(-1)
    return frames


def load_capture(name: str) -> list[CaptureFrame]:
    """Frames of the capture whose file name starts with `name` (e.g. "07")."""
    return parse_capture(capture_path(name))


@dataclass(frozen=True)
class ProxyBlock:
    """One read or write the proxy logged: `sent` went to FreeSWITCH; `text` is what the file kept of it."""

    connection: str
    direction: str
    t: float
    text: str

    @property
    def event_names(self) -> list[str]:
        return [line[len("Event-Name: "):] for line in self.text.splitlines() if line.startswith("Event-Name: ")]


def parse_proxy_capture(path: str | Path) -> list[ProxyBlock]:
    """The blocks of a proxy-format capture (18), in file order; comment lines (`#`) are skipped."""
    blocks: list[ProxyBlock] = []
    current: dict | None = None
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            match = _PROXY_LINE.match(line)
            if match:
                if current:
                    blocks.append(ProxyBlock(**{**current, "text": "\n".join(current["text"]).strip("\n")}))
                current = {"connection": match["conn"], "t": float(match["t"]), "text": [],
                           "direction": "sent" if match["dir"] == "controller -> FS" else "recv"}
            elif current is not None:
                current["text"].append(line)
            elif line and not line.startswith("#"):
                raise CaptureFormatError(f"{path}: a line before the first ===== block: {line[:60]!r}")
    if current:
        blocks.append(ProxyBlock(**{**current, "text": "\n".join(current["text"]).strip("\n")}))
    return blocks
