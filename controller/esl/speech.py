"""The one builder every spoken text goes through, and the parser of what the ASR heard.

Speech out never refuses text (a caller must hear something), but what reaches `speak` is made safe: `$ { }`
(channel-variable expansion) and control characters are removed, the text is split at sentence ends into
`speak` arguments of at most 500 characters, always written `engine|voice|text`, and what was removed is logged.

Speech in: DETECTED_SPEECH's result is the event body, NLSML (`<input mode="speech">`, `<noinput/>`,
`<nomatch/>`, `confidence`) or JSON (`{"text": ...}`), depending on the ASR module.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

MAX_SPEAK_CHARS = 500
MAX_RESULT_BYTES = 64 * 1024
_UNSAFE = re.compile(r"[${}\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # reported; plain whitespace is not
_EXPANSION = re.compile(r"[${}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+")


@dataclass(frozen=True)
class SpokenText:
    """`parts` are ready `speak` arguments; `removed` lists what the builder took out (for the log)."""

    parts: tuple[str, ...]
    removed: tuple[str, ...]
    text: str


def _cut(sentence: str, limit: int) -> list[str]:
    pieces = []
    while len(sentence) > limit:
        cut = sentence.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


def build_speech(text: str, engine: str, voice: str, limit: int = MAX_SPEAK_CHARS) -> SpokenText:
    """`build_speech("Bonjour ${x}. Ça va ?", "flite", "kal")` -> parts `("flite|kal|Bonjour x.", "flite|kal|Ça va ?")`."""
    removed = tuple(sorted(set(_UNSAFE.findall(text))))
    clean = _SPACES.sub(" ", _CONTROL.sub(" ", _EXPANSION.sub("", text))).strip()
    prefix = f"{engine}|{voice}|"
    room = limit - len(prefix)
    chunks: list[str] = []
    for sentence in _SENTENCE_END.split(clean):
        for piece in _cut(sentence, room):
            if chunks and len(chunks[-1]) + 1 + len(piece) <= room:
                chunks[-1] = f"{chunks[-1]} {piece}"
            else:
                chunks.append(piece)
    return SpokenText(tuple(prefix + c for c in chunks if c), removed, clean)


@dataclass(frozen=True)
class Heard:
    """What the ASR reported: kind is "speech", "no_match" or "no_input"."""

    kind: str
    text: str = ""
    confidence: float | None = None


def _confidence(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value / 100.0 if value > 1.0 else value


def parse_heard(body: str) -> Heard:
    """Parse a `detected-speech` result body (NLSML or JSON); anything unreadable is a no-match turn."""
    body = body.strip()[:MAX_RESULT_BYTES]
    if not body:
        return Heard("no_match")
    if body.startswith("{"):
        try:
            doc = json.loads(body)
        except ValueError:
            return Heard("no_match")
        text = str(doc.get("text") or "").strip() if isinstance(doc, dict) else ""
        conf = _confidence(str(doc["confidence"])) if isinstance(doc, dict) and "confidence" in doc else None
        return Heard("speech", text, conf) if text else Heard("no_match")
    if "<!DOCTYPE" in body or "<!ENTITY" in body:
        return Heard("no_match")  # NLSML needs no DTD; refusing one rules out entity expansion
    try:
        root = ET.fromstring(body.split("?>", 1)[1] if body.startswith("<?xml") else body)
    except ET.ParseError:
        return Heard("no_match")
    if root.find(".//noinput") is not None:
        return Heard("no_input")
    if root.find(".//nomatch") is not None:
        return Heard("no_match")
    interpretation = root.find(".//interpretation")
    node = root.find(".//input")
    text = "".join(node.itertext()).strip() if node is not None else ""
    if not text:
        return Heard("no_match")
    conf = _confidence(interpretation.get("confidence") if interpretation is not None else None)
    return Heard("speech", _SPACES.sub(" ", text), conf)
