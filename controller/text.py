"""Folding caller and operator text for comparison: one rule everywhere ("Réclamation" and "reclamation" match).

Recognisers and operators write accents, capitals and ligatures inconsistently; matching destinations, spotting a
repeated turn and deriving ids and tool names all use this rule, so the same words always compare equal.
"""
from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")
# Letters NFKD leaves whole (they are not a base letter plus a mark): spelt out, as French and German write them.
_SPELT_OUT = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS"})


def unaccent(text: str) -> str:
    """Accents dropped and ligatures spelt out, case kept: `unaccent("Cœur d'Été") == "Coeur d'Ete"`."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPELT_OUT))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Lower case without accents or ligatures: `fold("Ça coûte") == "ca coute"`, `fold("Œuvre") == "oeuvre"`;
    punctuation is kept. Case folds last, so what NFKD made of `™` or `ᴬ` is lower case too."""
    return unaccent(text).casefold()


def fold_words(text: str) -> str:
    """`fold`, then every run of other characters as one space: `fold_words("Allô ?  oui!") == "allo oui"`."""
    return _NOT_WORD.sub(" ", fold(text)).strip()
