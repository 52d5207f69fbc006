"""Overlapping chunks cut on paragraph, then sentence, then word boundaries, sized in the embedder's tokens.

A chunk is what one search hit returns and what the agent may read aloud, so it should hold whole thoughts:
paragraphs are packed whole while they fit, a paragraph too long for one chunk is cut between sentences,
and only a sentence longer than the model's window is cut between words. Consecutive chunks share their
last sentences (`overlap_tokens`) so an answer straddling a cut is still found whole in one of them.
Sizes are counted with the embedder's own tokenizer and never exceed its maximum sequence length.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# A sentence ends at . ! ? or … (maybe followed by a closing quote or bracket, French style « ... » included),
# then a space and something that can start a sentence.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?…])|(?<=[.!?…][\"»)\]])|(?<=[.!?…] [\"»]))\s+(?=[\"«(\[¿¡]?[A-ZÀ-ÖØ-Þ0-9])"
)
_ABBREVIATIONS = frozenset(
    "m. mm. mme. mlle. mr. mrs. ms. dr. st. ste. no. n°. p. cf. e.g. i.e. vs. etc. env. tél. ex. art. av. bd.".split()
)
# A paragraph this short that does not end like a statement is taken for a heading.
_HEADING_WORDS = 15
_STATEMENT_END = (".", "!", ";", ",", "…", ")", "»", '"')
# Chunks whose summed count comes this close to the model's window are counted again as a whole.
_RECOUNT_MARGIN = 8


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int  # without the model's special tokens
    starts_paragraph: bool


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph; a period after a common abbreviation (M., Mme., e.g.) does not end one."""
    pieces = [p.strip() for p in _SENTENCE_END.split(paragraph) if p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and sentences[-1].rsplit(" ", 1)[-1].lower() in _ABBREVIATIONS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def chunk_paragraphs(
    paragraphs: list[str],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[str]:
    """Chunks of about `chunk_tokens` tokens, special tokens included, never more than `max_tokens`.

    `count_tokens(text)` counts what the model sees for `text`, special tokens included (as
    `Embedder.count_tokens`); `overlap_tokens` of trailing sentences are repeated at the start of the next chunk.
    """
    special = _special_tokens(count_tokens)
    budget = min(chunk_tokens, max_tokens) - special
    if budget < 8:
        raise ValueError(f"chunk size {chunk_tokens} leaves fewer than 8 tokens of text; use at least {special + 8}")
    overlap = min(overlap_tokens, budget // 2)
    units = _units(paragraphs, lambda text: max(count_tokens(text) - special, 0), budget)

    chunks: list[list[_Unit]] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        if current and size + unit.tokens > budget:
            body, opening = _split_opening(current, budget - unit.tokens)
            chunks.append(body)
            room = budget - unit.tokens - sum(u.tokens for u in opening)
            current = _tail(body, overlap, room) + opening
            size = sum(u.tokens for u in current)
        current.append(unit)
        size += unit.tokens
    if current:
        chunks.append(current)
    return [_fit(chunk, special, count_tokens, max_tokens) for chunk in chunks]


def _special_tokens(count_tokens: Callable[[str], int]) -> int:
    """Tokens the model adds around any text ([CLS]/[SEP], <s>/</s>), from two counts: with c(w) = s + t and
    c(w w) = s + 2t, s = 2c(w) - c(w w). Counting "" would not do: some tokenizers turn it into [UNK]."""
    return max(2 * count_tokens("word") - count_tokens("word word"), 0)


def _units(paragraphs: list[str], cost: Callable[[str], int], budget: int) -> list[_Unit]:
    """Whole paragraphs when they fit the budget, else their sentences, else word runs of long sentences."""
    units: list[_Unit] = []
    for paragraph in paragraphs:
        tokens = cost(paragraph)
        if tokens <= budget:
            units.append(_Unit(paragraph, tokens, True))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            tokens = cost(sentence)
            pieces = [(sentence, tokens)] if tokens <= budget else _word_runs(sentence, cost, budget)
            for text, count in pieces:
                units.append(_Unit(text, count, first))
                first = False
    return units


def _word_runs(sentence: str, cost: Callable[[str], int], budget: int) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    words: list[str] = []
    size = 0
    for word in sentence.split():
        tokens = min(cost(word), budget)
        if words and size + tokens > budget:
            runs.append((" ".join(words), size))
            words, size = [], 0
        words.append(word)
        size += tokens
    if words:
        runs.append((" ".join(words), size))
    return runs


def _split_opening(units: list[_Unit], room: int) -> tuple[list[_Unit], list[_Unit]]:
    """Move headings (and FAQ questions, list intros) that end a chunk to the next one, above their content."""
    cut = len(units)
    while cut > 1 and _opens_section(units[cut - 1]) and sum(u.tokens for u in units[cut - 1:]) <= room:
        cut -= 1
    return units[:cut], units[cut:]


def _opens_section(unit: _Unit) -> bool:
    """A short paragraph not ending like a statement: a title, a question heading, or "as follows:"."""
    return unit.starts_paragraph and len(unit.text.split()) <= _HEADING_WORDS and not unit.text.endswith(_STATEMENT_END)


def _tail(units: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    """The last units of a chunk worth at most `overlap` tokens (and fitting `room`), to open the next one."""
    tail: list[_Unit] = []
    size = 0
    for unit in reversed(units):
        if size + unit.tokens > min(overlap, room):
            break
        tail.insert(0, unit)
        size += unit.tokens
    return tail


def _join(units: list[_Unit]) -> str:
    text = ""
    for unit in units:
        text += ("\n\n" if unit.starts_paragraph else " ") + unit.text if text else unit.text
    return text


def _fit(units: list[_Unit], special: int, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    """The chunk's text, trimmed in the rare case its joined form tokenizes past the model's window.

    Both WordPiece and SentencePiece split on whitespace first, so the sum of the parts' counts is exact in
    practice; only chunks whose sum comes within a few tokens of the window are counted again.
    """
    text = _join(units)
    if special + sum(u.tokens for u in units) < max_tokens - _RECOUNT_MARGIN:
        return text
    words = text.split(" ")
    while len(words) > 1 and count_tokens(" ".join(words)) > max_tokens:
        words = words[:-1]
    return " ".join(words)
