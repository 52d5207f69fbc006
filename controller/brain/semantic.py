"""The `semantic` brain (default, offline, no LLM): the caller's words against each action's description.

Each action's description is cut into matching units once per agent (the whole text, its clauses, and any quoted
example phrases such as `Examples: "I want to buy", "how much is it"`) and embedded with the agent's embedder;
each caller turn is embedded with the same embedder (through its single worker thread, never on the hub). An
action's score is `(best + SECOND_WEIGHT * second best) / (1 + SECOND_WEIGHT)` over its units' cosines (the best
counted twice when it has one unit): two units agreeing are better evidence than one close match, and on the
shipped phrases, calibrated on one half and measured on the other, French accuracy with use-m3 went from 0.64
to 0.73 (English 0.67 to 0.70, minilm 0.82 to 0.83) at the same false-positive rate. The best action is called when its score reaches `threshold` and beats
the runner-up action by `margin`; both default per embedder (`DEFAULTS`, calibrated on examples/phrases/ by
`controller.brain.calibration`). Otherwise the turn goes to the agent's rag action (whose own min_score decides),
or to its RAG source through `kb_lookup`, or gets the fallback line.

It fills only what it can from the turn text (the arguments listed in `ActionSpec.fillable`: a transfer's
destination, a RAG query, an IVR menu); an action with another required argument is left to the openai brain.
A turn that states keys ("pour une réclamation tapez 2", menu.py) goes to the agent's keypad action that reads
its keys from the menu, before any matching: an automated menu is not a person asking for a transfer.
Deterministic: scores are rounded to 1e-4, so the float noise of batching a turn with other calls' turns cannot
change a decision.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.lock
import numpy as np

from knowledge.speakable import speakable

from controller.brain.base import ActionCall, ActionSpec, BrainContext, Decision, Turn
from controller.brain.menu import is_menu
from controller.phrases import phrase

SECOND_WEIGHT = 0.5  # 0.25..1 measured alike (bench/brain.py); 0 is the plain best-unit cosine
# (threshold, margin) per embedder, from `python bench/brain.py --calibrate` on examples/phrases/.
DEFAULTS: dict[str, tuple[float, float]] = {"minilm": (0.35, 0.005), "use-m3": (0.37, 0.0)}
# Hanging up cannot be undone (a caller cut off mid-sentence is lost), while a missed goodbye costs nothing: the
# caller hangs up. Greetings ("bonjour", "allô") sit close to farewells in embedding space, so a hang-up must
# clear the threshold and beat the runner-up by these extra amounts (measured on the shipped phrases).
IRREVERSIBLE_EXTRA: dict[str, tuple[float, float]] = {"hangup": (0.15, 0.15)}
KbLookup = Callable[[str, str], list[dict[str, Any]]]

_QUOTED = re.compile(r'"([^"]{2,200})"|“([^”]{2,200})”|«\s*([^»]{2,200}?)\s*»')
_CLAUSE_BREAK = re.compile(r"[.;:()!?,\n]+|\s(?:or|ou)\s", re.IGNORECASE)
_EXAMPLE_LABEL = re.compile(r"\b(?:examples?|exemples?|e\.g\.|par exemple)(?![\w-])\s*:?", re.IGNORECASE)
_EMPTY_LIST = re.compile(r"(?:\s*[,;:]\s*)+(?=[.;:)\n]|$)|^[\s,;:.]+")
_MAX_CACHED_AGENTS = 32
_HOLD_EVENTS = ("hold", "music", "ivr_menu")


def description_units(description: str) -> list[str]:
    """The texts one action is matched on: the description, its clauses of 2+ words, its quoted examples."""
    examples = [next(g for g in m.groups() if g).strip() for m in _QUOTED.finditer(description)]
    rest = _EMPTY_LIST.sub("", " ".join(_EXAMPLE_LABEL.sub(" ", _QUOTED.sub(" ", description)).split()))
    rest = re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\(\s*\)", "", rest))
    rest = re.sub(r"([.;:])(?:\s*[.;:])+", r"\1", rest)
    clauses = [c.strip() for c in _CLAUSE_BREAK.split(rest)]
    units: list[str] = []
    for text in [rest, *clauses, *examples]:
        if len(text.split()) >= 2 or (text in examples and text):
            if text not in units:
                units.append(text)
    return units


def normalise(text: str) -> str:
    """Lower case, single spaces: recognisers differ in casing, and use-m3 is case-sensitive."""
    return " ".join(text.lower().split())


def can_fill(spec: ActionSpec) -> bool:
    """True when every required argument is one the semantic brain fills from the turn text."""
    required = (spec.parameters or {}).get("required", [])
    return all(name in spec.fillable for name in required)


def reads_menu(spec: ActionSpec) -> bool:
    """A keypad action that reads its keys from the menu heard (no fixed digits: it offers a `digits` argument)."""
    properties = (spec.parameters or {}).get("properties", {})
    return spec.type == "keypad" and "menu" in spec.fillable and "digits" in properties and can_fill(spec)


def fill_arguments(spec: ActionSpec, text: str) -> dict[str, Any]:
    """Each fillable argument of the schema gets the turn text (the transfer matcher / RAG search reads it), cut to
    the argument's maxLength so a long monologue is not refused."""
    properties = (spec.parameters or {}).get("properties", {})
    return {name: text[:properties[name].get("maxLength", len(text))]
            for name in spec.fillable if name in properties}


@dataclass(frozen=True)
class Match:
    """The outcome of matching one turn: the chosen action (None when nothing passed), and the scores."""

    action: ActionSpec | None
    best: str | None
    score: float
    runner_up: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _UnitIndex:
    names: tuple[str, ...]
    vectors: np.ndarray  # (units, d), L2-normalised
    slots: np.ndarray  # (actions, most units of one action): unit indices, an action's own first, then padding
    filled: np.ndarray  # (actions, most units of one action): True where `slots` holds a unit of that action

    @classmethod
    def build(cls, names: tuple[str, ...], vectors: np.ndarray, owners: list[int]) -> "_UnitIndex":
        per_action = [[u for u, owner in enumerate(owners) if owner == a] for a in range(len(names))]
        width = max(len(units) for units in per_action)
        slots = np.array([units + [units[0]] * (width - len(units)) for units in per_action])
        filled = np.array([[True] * len(units) + [False] * (width - len(units)) for units in per_action])
        return cls(names, vectors, slots, filled)

    def action_scores(self, sims: np.ndarray) -> np.ndarray:
        """Each action's score from its units' cosines: the best, and the second best at SECOND_WEIGHT."""
        grid = np.where(self.filled, sims[self.slots], -np.inf)
        if grid.shape[1] == 1:
            return grid[:, 0].astype(np.float64)
        top = -np.partition(-grid, 1, axis=1)[:, :2]
        second = np.where(np.isfinite(top[:, 1]), top[:, 1], top[:, 0])
        return (top[:, 0] + SECOND_WEIGHT * second) / (1 + SECOND_WEIGHT)


class SemanticBrain:
    """Matches turns to actions by embedding similarity; see the module docstring."""

    name = "semantic"

    def __init__(self, embedder: Any, *, language: str = "en", threshold: float | None = None,
                 margin: float | None = None, fallback_text: str | None = None, rag_source: str | None = None,
                 kb_lookup: KbLookup | None = None) -> None:
        defaults = DEFAULTS.get(embedder.name)
        if defaults is None and (threshold is None or margin is None):
            raise ValueError(f"brain.threshold and brain.margin are required with embedder {embedder.name!r} (only "
                             f"{', '.join(DEFAULTS)} have defaults); calibrate with bench/brain.py --calibrate")
        self.embedder = embedder
        self.language = language
        self.threshold = threshold if threshold is not None else defaults[0]
        self.margin = margin if margin is not None else defaults[1]
        self.fallback_text = fallback_text or phrase(language, "fallback")
        self.rag_source = rag_source
        self.kb_lookup = kb_lookup
        self._indexes: OrderedDict[tuple[tuple[str, str], ...], _UnitIndex] = OrderedDict()
        self._lock = gevent.lock.Semaphore()

    # ------------------------------------------------------------------ matching
    def prepare(self, actions: list[ActionSpec]) -> None:
        """Embed the descriptions now (e.g. when the agent loads) instead of on its first caller turn."""
        candidates = [a for a in actions if can_fill(a)]
        if candidates:  # an agent with no action to call (one that only answers) has nothing to embed
            self._index(candidates)

    def match(self, text: str, actions: list[ActionSpec]) -> Match:
        """Score `text` against the actions this brain can call and apply threshold and margin."""
        candidates = [a for a in actions if can_fill(a)]
        if not candidates or not text.strip():
            return Match(None, None, 0.0, 0.0)
        index = self._index(candidates)
        query = self.embedder.encode([normalise(text)])[0]
        return self._match_vector(query, index, candidates)

    def match_many(self, texts: list[str], actions: list[ActionSpec]) -> list[Match]:
        """`match` for many texts in one embedding batch (calibration and benches)."""
        candidates = [a for a in actions if can_fill(a)]
        if not candidates:
            return [Match(None, None, 0.0, 0.0) for _ in texts]
        index = self._index(candidates)
        vectors = self.embedder.encode([normalise(t) for t in texts])
        return [self._match_vector(q, index, candidates) for q in vectors]

    def _match_vector(self, query: np.ndarray, index: _UnitIndex, candidates: list[ActionSpec]) -> Match:
        per_action = np.round(index.action_scores(index.vectors @ query), 4)
        order = np.argsort(-per_action, kind="stable")
        best = float(per_action[order[0]])
        runner_up = float(per_action[order[1]]) if len(order) > 1 else 0.0
        scores = {index.names[i]: float(per_action[i]) for i in order}
        chosen = None
        top = candidates[int(order[0])]
        extra_threshold, extra_margin = IRREVERSIBLE_EXTRA.get(top.type, (0.0, 0.0))
        if best >= self.threshold + extra_threshold and best - runner_up >= self.margin + extra_margin:
            chosen = top
        return Match(chosen, index.names[int(order[0])], best, runner_up, scores)

    def _index(self, candidates: list[ActionSpec]) -> _UnitIndex:
        """The embedded units of these actions, computed once per set of descriptions."""
        key = tuple((a.name, a.description) for a in candidates)
        index = self._indexes.get(key)
        if index is not None:
            return index
        with self._lock:
            index = self._indexes.get(key)
            if index is None:
                units, owners = [], []
                for i, spec in enumerate(candidates):
                    for unit in description_units(spec.description) or [spec.name]:
                        units.append(unit)
                        owners.append(i)
                vectors = np.ascontiguousarray(self.embedder.encode([normalise(u) for u in units]), dtype=np.float32)
                index = _UnitIndex.build(tuple(a.name for a in candidates), vectors, owners)
                self._indexes[key] = index
                while len(self._indexes) > _MAX_CACHED_AGENTS:
                    self._indexes.popitem(last=False)
        return index

    # ------------------------------------------------------------------ deciding
    def decide(self, turn: Turn, context: BrainContext) -> Decision:
        if turn.kind == "speech":
            return self._on_words(turn.text, context)
        if turn.kind in ("no_input", "no_match"):
            return Decision(say=phrase(self.language, turn.kind), note=f"{turn.kind}: reprompt")
        if turn.kind == "action_result":
            return self._on_result(turn.result or {})
        if turn.kind == "refused":
            reason = (turn.result or {}).get("reason", "")
            return Decision(say=self.fallback_text, note=f"call refused: {reason}")
        if turn.kind == "event" and turn.text in _HOLD_EVENTS:
            wait = next((a for a in context.actions if a.type == "wait" and can_fill(a)), None)
            if wait is not None:
                return Decision(action=ActionCall(wait.name), note=f"event {turn.text}: waiting with {wait.name}")
        if turn.kind == "event" and turn.text == "wait_timeout":
            return self._on_wait_timeout(turn, context)
        return Decision(note=f"{turn.kind}{' ' + turn.text if turn.text else ''}: nothing to do")

    def _on_wait_timeout(self, turn: Turn, context: BrainContext) -> Decision:
        """A wait reached max_wait_s: still music, so still on hold: wait again (limits.max_hold_s ends it);
        anything else (silence, a line noise): say we are still here and let the conversation go on."""
        audio = (turn.result or {}).get("audio", "")
        wait = next((a for a in context.actions if a.type == "wait" and can_fill(a)), None)
        if audio == "music" and wait is not None:
            return Decision(action=ActionCall(wait.name), note=f"wait_timeout, music still playing: {wait.name}")
        return Decision(say=phrase(self.language, "still_here"), note=f"wait_timeout ({audio or 'no audio'})")

    def _on_words(self, text: str, context: BrainContext) -> Decision:
        if not text.strip():
            return Decision(say=phrase(self.language, "no_match"), note="empty words: reprompt")
        keypads = [a for a in context.actions if reads_menu(a)]
        if keypads and is_menu(text):
            keypad = keypads[0] if len(keypads) == 1 else self.match(text, keypads).action or keypads[0]
            return Decision(action=ActionCall(keypad.name, fill_arguments(keypad, text)),
                            note=f"menu heard: keys from {keypad.name}")
        m = self.match(text, context.actions)
        detail = {"best": m.best, "score": m.score, "runner_up": m.runner_up}
        if m.action is not None:
            note = f"matched {m.action.name} ({m.score:.3f}, runner-up {m.runner_up:.3f})"
            if m.action.state == "closed":
                note += "; closed, the action says so"
            return Decision(action=ActionCall(m.action.name, fill_arguments(m.action, text)), note=note, detail=detail)
        rag = next((a for a in context.actions if a.type == "rag" and can_fill(a)), None)
        if rag is not None:
            return Decision(action=ActionCall(rag.name, fill_arguments(rag, text)), detail=detail,
                            note=f"no action matched (best {m.best} {m.score:.3f}); asking {rag.name}")
        if self.rag_source and self.kb_lookup is not None:
            chunks = self.kb_lookup(self.rag_source, text)
            if chunks:
                best = max(chunks, key=lambda c: c.get("score", 0.0))
                return Decision(say=speakable(best["text"]), detail={**detail, "source": best.get("source")},
                                note=f"no action matched; answered from {self.rag_source}")
        return Decision(say=self.fallback_text, note=f"no action matched (best {m.best} {m.score:.3f})",
                        detail=detail)

    def _on_result(self, result: dict[str, Any]) -> Decision:
        detail = result.get("detail") or {}
        if "chunks" in detail:
            floor = float(detail.get("min_score", 0.0))
            chunks = [c for c in detail["chunks"] if float(c.get("score", 0.0)) >= floor and c.get("text")]
            if chunks:
                best = max(chunks, key=lambda c: float(c.get("score", 0.0)))
                return Decision(say=speakable(best["text"]), note=f"answered from {best.get('source', 'rag')}")
            return Decision(say=result.get("say") or self.fallback_text, note="rag: no chunk above min_score")
        return Decision(say=result.get("say") or "", note=f"{result.get('action')}: {result.get('result')}")
