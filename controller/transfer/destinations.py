"""Which configured destination a transfer means: an id, or the words of the caller or the model.

The brain passes free text (the semantic brain passes the caller's whole turn); this module maps it to exactly
one configured destination or to none. It never turns digits into a destination: a number said by the caller or
invented by a model is not in the index, so it can never be dialled.

Matching is lexical and deterministic, so it works without an embedder and gives the same answer every time:
1. the text is a destination id (`lyon`, `n33472103030`) or says exactly the words of its description;
2. otherwise each destination scores the IDF-weighted share of its description's words found in the text
   (accents folded, lower case, plural and feminine endings trimmed, stop words dropped). Words every
   destination shares ("conseillers") weigh little, the distinguishing one ("Lyon") weighs most. The best
   destination wins when it reaches `THRESHOLD` and beats the runner-up;
3. with a single destination, it is the one, whatever the text.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Optional

from controller.text import fold

THRESHOLD = 0.5
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""
a au aux avec c ce ces d de des du en est et il j je l la le les m me mes mon ma n ne on ou par pas pour qu que qui
s sa se ses son sur t te un une vous votre vos veux voudrais voudrait souhaite souhaiterais parler passer aller
appeler joindre contacter merci bonjour plait svp moi y
an and are at be can could for from get go i in is it me my of on or please put speak talk the through to want
would like with you your hello hi need call reach connect transfer
""".split())


def stem(word: str) -> str:
    """A light, language-agnostic stem: `conseillers` -> `conseiller`, `commerciale` -> `commercial`."""
    if len(word) > 4 and word[-1] in "sx":
        word = word[:-1]
    if len(word) > 4 and word[-1] == "e":
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """The meaningful words of a text, stemmed; digits are kept as words but never name a number to dial."""
    return [stem(w) for w in _WORD.findall(fold(text)) if w not in _STOP and len(w) > 1]


@dataclass(frozen=True)
class Target:
    """One destination an action may reach: a number (E.164) or another agent."""

    id: str
    description: str
    number: Optional[str] = None
    agent: Optional[str] = None
    imported: bool = False

    @property
    def kind(self) -> str:
        return "agent" if self.agent else "number"


@dataclass(frozen=True)
class Resolution:
    """The chosen target (None when refused), how it was chosen, and what was close."""

    target: Optional[Target]
    how: str
    score: float = 0.0
    runner_up: float = 0.0
    candidates: tuple[Target, ...] = field(default_factory=tuple)


class DestinationIndex:
    """The destinations of one transfer action, indexed once (100,000 imported numbers resolve in microseconds)."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self.targets: list[Target] = list(targets)
        self._by_id = {t.id.lower(): i for i, t in reversed(list(enumerate(self.targets)))}
        self._by_text: dict[str, int] = {}
        postings: dict[str, set[int]] = defaultdict(set)
        self._words: list[frozenset[str]] = []
        for i, target in enumerate(self.targets):
            found = frozenset(words(target.description))
            self._words.append(found)
            if found:
                self._by_text.setdefault(" ".join(sorted(found)), i)
            for word in found:
                postings[word].add(i)
        count = len(self.targets)
        self._idf = {w: math.log((count + 1) / len(ids)) for w, ids in postings.items()}
        self._postings = {w: tuple(sorted(ids)) for w, ids in postings.items()}
        self._weight = [sum(self._idf[w] for w in found) for found in self._words]

    def __len__(self) -> int:
        return len(self.targets)

    def resolve(self, text: Optional[str]) -> Resolution:
        """The one destination `text` names; with no text, the first destination (the documented default)."""
        if not self.targets:
            return Resolution(None, "no destinations")
        query = (text or "").strip()
        if not query:
            return Resolution(self.targets[0], "default (first destination)")
        said = set(words(query[:500]))
        exact = self._by_id.get(query.lower())
        if exact is None and said:
            exact = self._by_text.get(" ".join(sorted(said)))
        if exact is not None:
            return Resolution(self.targets[exact], "exact", 1.0)
        if len(self.targets) == 1:
            return Resolution(self.targets[0], "only destination")
        scores = self._scores(said)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        best_i, best = ranked[0] if ranked else (0, 0.0)
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        close = tuple(self.targets[i] for i in sorted(i for i, s in ranked[:5] if s > 0))  # in configured order
        if best >= THRESHOLD and best > runner_up:
            return Resolution(self.targets[best_i], "description", round(best, 4), round(runner_up, 4), close)
        why = "ambiguous" if best > 0 and (best == runner_up or best >= THRESHOLD) else "no destination named"
        return Resolution(None, why, round(best, 4), round(runner_up, 4), close)

    def _scores(self, query: set[str]) -> dict[int, float]:
        matched: dict[int, float] = defaultdict(float)
        for word in query:
            for i in self._postings.get(word, ()):
                matched[i] += self._idf[word]
        return {i: (value / self._weight[i] if self._weight[i] else 0.0) for i, value in matched.items()}
