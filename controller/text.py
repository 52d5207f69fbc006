"""Folding caller and operator text for comparison: one rule everywhere ("Réclamation" and "reclamation" match).

Recognisers and operators write accents, capitals and ligatures inconsistently; matching destinations, spotting a
repeated turn and deriving ids all compare the folded form, so the same words always compare equal.
"""
from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower case without accents or ligatures: `fold("Ça coûte") == "ca coute"`; punctuation is kept."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold_words(text: str) -> str:
    """`fold`, then every run of other characters as one space: `fold_words("Allô ?  oui!") == "allo oui"`."""
    return _NOT_WORD.sub(" ", fold(text)).strip()
