"""Event frames as FreeSWITCH writes them (URL-encoded plain events), parsed by the product's FrameReader.

For unit tests that feed an action or a session real `Frame` objects without a socket.
"""
from __future__ import annotations

import io
from typing import Iterable, Optional
from urllib.parse import quote
from xml.sax.saxutils import escape

from controller.esl.frames import Frame, FrameReader

FAKE_UUID = "fa4e0000-0000-4000-8000-00000000ca11"
CORE_UUID = "fa4e0000-0000-4000-8000-00000000c0de"


def event_frame(name: str, headers: Iterable[tuple[str, str]] = (), body: Optional[str] = None,
                uuid: str = FAKE_UUID) -> Frame:
    """A `text/event-plain` event of the call, URL-encoded value by value like FreeSWITCH, read back by the
    product's FrameReader (so the Frame has exactly what the session would give an action)."""
    lines = [("Event-Name", name), ("Core-UUID", CORE_UUID), ("Unique-ID", uuid), ("Channel-Call-UUID", uuid),
             *headers]
    inner = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in lines).encode()
    if body is not None:
        data = body.encode("utf-8")
        inner += f"Content-Length: {len(data)}\n\n".encode() + data
    else:
        inner += b"\n"
    raw = f"Content-Length: {len(inner)}\nContent-Type: text/event-plain\n\n".encode() + inner
    frame = FrameReader(io.BytesIO(raw)).read()
    assert frame is not None
    return frame


def nlsml(text: str, confidence: int = 90, grammar: str = "builtin:speech/transcribe") -> str:
    """An unimrcp-style NLSML result, as the simulator writes it (fssim/script.py)."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<result grammar="{grammar}">\n'
            f'  <interpretation grammar="{grammar}" confidence="{confidence}">\n'
            f'    <input mode="speech">{escape(text)}</input>\n'
            f'    <instance>{escape(text)}</instance>\n'
            '  </interpretation>\n'
            '</result>')


def detected_speech(text: str, confidence: int = 90, uuid: str = FAKE_UUID) -> Frame:
    """DETECTED_SPEECH `detected-speech` with the words in an NLSML body (what a wait hears)."""
    return event_frame("DETECTED_SPEECH", [("Speech-Type", "detected-speech")], nlsml(text, confidence), uuid)


def speech_event(speech_type: str, uuid: str = FAKE_UUID) -> Frame:
    """DETECTED_SPEECH without a result: `begin-speaking`, `closed`."""
    return event_frame("DETECTED_SPEECH", [("Speech-Type", speech_type)], uuid=uuid)


def channel_event(name: str, uuid: str = FAKE_UUID, **headers: str) -> Frame:
    """A plain channel event: CHANNEL_HOLD, CHANNEL_UNHOLD, CHANNEL_HANGUP (Hangup_Cause='...')..."""
    return event_frame(name, [(k.replace("_", "-"), v) for k, v in headers.items()], uuid=uuid)


# ---------------------------------------------------------------- the script
