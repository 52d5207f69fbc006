"""The controller's frame reader against every frame FreeSWITCH 1.10.12 sent in the recorded captures."""
from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest

from controller.esl.session import FrameReader
from fssim.captures import captures_dir


def recv_frames(path: Path, connection: str) -> list[list[str]]:
    """The `<<< ` lines of each frame received on `connection`, with the no-newline marker applied."""
    frames: list[list[str]] = []
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("### "):
            parts = line.split()
            current = [] if parts[1] == connection and parts[2] == "recv" else None
            if current is not None:
                frames.append(current)
        elif current is not None and line.startswith("<<< "):
            current.append(line[4:] + "\n")
        elif current is not None and line == "\\ no newline at end of frame":
            current[-1] = current[-1][:-1]
        elif not line.startswith("<<< "):
            current = None if not line.startswith("\\") else current
    return frames


def expected_values(lines: list[str]) -> tuple[dict[str, str], dict[str, str], str]:
    """Outer headers (raw), event headers (each value URL-decoded on its own), and the event's body."""
    text = "".join(lines)
    outer_block, _, rest = text.partition("\n\n")
    outer = dict(l.split(": ", 1) for l in outer_block.split("\n") if l)
    event: dict[str, str] = {}
    body = ""
    if outer.get("Content-Type", "").startswith("text/event-plain"):
        inner_block, _, inner_rest = rest.partition("\n\n")
        for l in inner_block.split("\n"):
            if l:
                name, _, value = l.partition(": ")
                event[name] = unquote(value)
        if "Content-Length" in event:
            body = inner_rest[: int(event["Content-Length"])]
    elif "Event-Name" in outer:
        event = {k: unquote(v) for k, v in outer.items()}
    return outer, event, body


CAPTURES = ["02", "04", "07", "09", "10", "11", "12", "16", "17"]


@pytest.mark.parametrize("name", CAPTURES)
def test_the_reader_yields_the_headers_and_decoded_values_of_every_captured_frame(name):
    path = next(captures_dir().glob(f"{name}-*.txt"))
    for connection in ("outbound", "outbound-2"):
        frames = recv_frames(path, connection)
        if not frames:
            continue
        wire = "".join("".join(f) for f in frames).encode("utf-8")
        a, b = socket.socketpair()
        writer = threading.Thread(target=lambda: (a.sendall(wire), a.close()))
        writer.start()
        reader = FrameReader(b.makefile("rb"))
        for index, lines in enumerate(frames):
            frame = reader.read()
            assert frame is not None, f"{path.name} {connection} frame {index}: reader stopped early"
            outer, event, body = expected_values(lines)
            where = f"{path.name} {connection} frame {index}"
            assert frame.content_type == outer.get("Content-Type", event.get("Content-Type")), where
            if event:
                assert frame.get("Event-Name") == event.get("Event-Name"), where
                assert frame.get("Unique-ID") == event.get("Unique-ID"), where
                for key, value in event.items():
                    assert frame.headers[key] == value, f"{where}: {key}"
                assert frame.body == body, where
            elif outer.get("Content-Type") == "api/response":
                assert frame.body == "".join(lines).partition("\n\n")[2], where
        assert reader.read() is None
        writer.join()
        b.close()


def test_capture_02_holds_every_kind_of_frame_the_controller_must_read():
    frames = recv_frames(next(captures_dir().glob("02-*.txt")), "outbound")
    kinds = {expected_values(f)[0].get("Content-Type") for f in frames}
    assert {"command/reply", "api/response", "text/event-plain", "text/disconnect-notice"} <= kinds
