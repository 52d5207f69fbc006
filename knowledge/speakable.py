"""Turning a retrieved chunk into something a TTS engine can say.

Chunks are plain text already, but sources written by hand still carry Markdown emphasis, list bullets,
table pipes or a stray tag, which a TTS engine reads out as "asterisk" or "pipe". And a caller will not sit
through a whole chunk: the answer is cut at the end of a sentence before `limit` characters.
"""
from __future__ import annotations

import re

_TAG = re.compile(r"<[^>\n]{1,200}>")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`+|~~)(?=\S)(.+?)(?<=\S)\1")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}.*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*>+[ \t]?", re.MULTILINE)
_LEFTOVER = re.compile(r"[|`]+")  # not * or #: phone codes such as *#06# must survive
_SPACE = re.compile(r"\s+")
# A paragraph (a title, a list item) without final punctuation gets a period: the TTS pauses there.
_UNPUNCTUATED_BREAK = re.compile(r"(?<=[^\s.!?:;…,])[ \t]*\n(?:[ \t]*\n)+")
_SENTENCE_END = re.compile(r"[.!?…](?=[\"»)\]]*(?:\s|$))")
_CLAUSE_END = re.compile(r"[;:](?=\s)")
_MIN_SHARE = 0.4  # an answer cut shorter than this share of the limit is mostly a heading
_ENTITIES = {"&nbsp;": " ", "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&rsquo;": "’"}


def speakable(text: str, limit: int = 300) -> str:
    """`text` without markup, whitespace collapsed, cut at the last sentence end within `limit` characters.

    When that would keep less than 40 % of `limit` (a title before a long table), the cut moves to the last
    `;` or `:` within the limit; when the first sentence alone is longer, it is cut at a word and ends with "…".
    """
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    text = _TAG.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("\n", text)  # a list item is its own paragraph
    text = _QUOTE.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _LEFTOVER.sub(" ", text)
    text = _UNPUNCTUATED_BREAK.sub(". ", text.strip())
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= limit]
    if ends and ends[-1] >= limit * _MIN_SHARE:
        return text[:ends[-1]].strip()
    # Only a title fits before the first long sentence (a table read as one sentence, a list with `;`):
    # keep going to the last clause break, so the caller hears the answer and not just the heading.
    clauses = [m.end() for m in _CLAUSE_END.finditer(text) if m.end() <= limit]
    if clauses and clauses[-1] >= limit * _MIN_SHARE:
        return text[:clauses[-1]].rstrip(",;: ") + "."
    if ends:
        return text[:ends[-1]].strip()
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > 0 else limit].rstrip(",;:- ") + "…"
