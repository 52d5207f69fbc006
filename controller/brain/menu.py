"""Reading an IVR menu heard through speech recognition: its options (label, keys), French and English.

Pure functions. The semantic brain asks `parse_menu` whether a turn is a menu (so it goes to a keypad action), and
the keypad action picks the option for its goal with `choose_option` (goal_match.py). A menu states its keys in
one of two orders, and a whole menu keeps one: the label first ("pour une réclamation, tapez 2", "for billing,
press 2", "si vous êtes un particulier, tapez 1") or the key first ("press 3 for sales", "tapez 1 pour le suivi").
Keys are digits or words ("tapez deux", "press two", "touche étoile", "dièse", "press star / pound").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from controller.text import fold

_DIGIT_WORDS = {
    "zero": "0", "un": "1", "une": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "six": "6",
    "sept": "7", "huit": "8", "neuf": "9", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "seven": "7", "eight": "8", "nine": "9", "etoile": "*", "star": "*", "asterisque": "*", "asterisk": "*",
    "diese": "#", "pound": "#", "hash": "#", "carre": "#", "square": "#",
}
_KEY = r"(?P<key>\d{1,4}(?![\d,.]\d)|" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True)) + r")\b"
_FILLER = r"(?:\s+(?:sur|le|la|l'|les|on|the|key|touche|number|numero|option|chiffre|button|bouton))*"
_VERB = (r"\b(?:tapez|tape|taper|tapes|appuyez|appuie|appuyer|composez|compose|composer|faites|fais|faire|"
         r"selectionnez|choisissez|press|push|dial|enter|select|choose|hit|touche|key)\b")
_MENTION = re.compile(_VERB + _FILLER + r"\s+" + _KEY)
_SENTENCE_END = re.compile(r"[.!?;:]\s*")
# words that open a label ("pour le suivi", "for billing", "si vous êtes", "to speak to", "concernant")
_LABEL_OPENER = re.compile(r"^\W*(?:pour|for|si|if|to|concernant|regarding|about|en cas|in case|afin|s'il|s il)\b")
MAX_OPTIONS = 16


@dataclass(frozen=True)
class MenuOption:
    """One choice a menu offers: its label as heard (folded) and the keys that choose it."""

    label: str
    keys: str


def _clean(label: str) -> str:
    label = re.sub(r"\b(?:ou|or|puis|then|et|and|sinon|otherwise)\s*$", "", label.strip(" ,.;:-"))
    return " ".join(label.strip(" ,.;:-").split())


def _last_sentence(text: str) -> str:
    return _SENTENCE_END.split(text)[-1]


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text)[0]


def parse_menu(text: str) -> list[MenuOption]:
    """The options a menu states, in the order heard; [] when the text asks for no key.

    `parse_menu("Pour le suivi, tapez 1. Pour une réclamation, tapez 2.")` ->
    [MenuOption("pour le suivi", "1"), MenuOption("pour une reclamation", "2")].
    """
    folded = fold(text)
    mentions = list(_MENTION.finditer(folded))[:MAX_OPTIONS]
    if not mentions:
        return []
    before_first = _last_sentence(folded[:mentions[0].start()])
    label_first = bool(_LABEL_OPENER.search(before_first)) or (
        bool(before_first.strip(" ,")) and not _LABEL_OPENER.search(_first_sentence(folded[mentions[0].end():])))
    options: list[MenuOption] = []
    for i, mention in enumerate(mentions):
        if label_first:
            start = mentions[i - 1].end() if i else 0
            label = _last_sentence(folded[start:mention.start()])
        else:
            end = mentions[i + 1].start() if i + 1 < len(mentions) else len(folded)
            label = _first_sentence(folded[mention.end():end])
        key = mention.group("key")
        keys = _DIGIT_WORDS.get(key, key)
        label = _clean(label)
        if not any(o.keys == keys for o in options):
            options.append(MenuOption(label, keys))
    return options


def is_menu(text: str) -> bool:
    """True when the words ask for at least one key ("tapez 2", "press star")."""
    return bool(_MENTION.search(fold(text)))
