"""Calibrating the semantic brain: threshold and margin per embedder, measured on paraphrase sets.

A phrase set (examples/phrases/<lang>.yaml) is a reference agent's actions, caller turns labelled with the action
they should pick, and off-topic turns that should pick none. `calibrate` searches the (threshold, margin) grid for
the best accuracy minus false-positive rate with the false-positive rate capped; `bench/brain.py --calibrate`
prints the result, and the defaults in `semantic.DEFAULTS` come from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from controller.brain.base import ActionSpec
from controller.brain.semantic import SemanticBrain

PHRASES_DIR = Path(__file__).resolve().parents[2] / "examples" / "phrases"
THRESHOLDS = np.round(np.arange(0.0, 0.96, 0.01), 2)
MARGINS = np.round(np.arange(0.0, 0.151, 0.005), 3)


@dataclass(frozen=True)
class PhraseSet:
    language: str
    actions: list[ActionSpec]
    phrases: list[tuple[str, str]]  # (caller turn, expected action name)
    off_topic: list[str]


@dataclass(frozen=True)
class Scored:
    """One phrase's best action and the two scores threshold and margin are applied to."""

    language: str
    text: str
    expected: str | None  # None for an off-topic phrase
    best: str | None
    score: float
    runner_up: float


@dataclass(frozen=True)
class Outcome:
    accuracy: float  # on-topic phrases that picked their action
    false_positive_rate: float  # off-topic phrases that picked any action
    on_topic: int
    off_topic: int


@dataclass(frozen=True)
class Calibration:
    threshold: float
    margin: float
    outcome: Outcome


def load_phrase_set(path: Path) -> PhraseSet:
    """Read one phrase file; errors name the file and the field to fix."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the phrase set: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("actions"), list):
        raise ValueError(f"{path}: expected a mapping with `language`, `actions` (a list) and `off_topic`")
    actions, phrases = [], []
    for i, item in enumerate(doc["actions"]):
        missing = [k for k in ("name", "type", "description", "phrases") if k not in item]
        if missing:
            raise ValueError(f"{path}: actions[{i}] lacks {', '.join(missing)}")
        actions.append(ActionSpec(item["name"], item["type"], item["description"], item.get("parameters") or {},
                                  fillable=tuple(item.get("fillable") or ())))
        phrases += [(str(text), item["name"]) for text in item["phrases"]]
    return PhraseSet(str(doc.get("language", path.stem)), actions, phrases, [str(t) for t in doc.get("off_topic", [])])


def shipped_phrase_sets(languages: tuple[str, ...] = ("en", "fr")) -> list[PhraseSet]:
    return [load_phrase_set(PHRASES_DIR / f"{language}.yaml") for language in languages]


def score_phrases(brain: SemanticBrain, sets: list[PhraseSet]) -> list[Scored]:
    """Every phrase of every set matched by `brain` against its set's actions (one embedding batch per set)."""
    scored: list[Scored] = []
    for phrase_set in sets:
        labelled: list[tuple[str, Any]] = [*phrase_set.phrases, *((t, None) for t in phrase_set.off_topic)]
        matches = brain.match_many([text for text, _ in labelled], phrase_set.actions)
        scored += [Scored(phrase_set.language, text, expected, m.best, m.score, m.runner_up)
                   for (text, expected), m in zip(labelled, matches)]
    return scored


def evaluate(scored: list[Scored], threshold: float, margin: float) -> Outcome:
    on = [s for s in scored if s.expected is not None]
    off = [s for s in scored if s.expected is None]
    picked = [s.score >= threshold and s.score - s.runner_up >= margin for s in scored]
    hits = sum(1 for s, p in zip(scored, picked) if p and s.expected is not None and s.best == s.expected)
    false = sum(1 for s, p in zip(scored, picked) if p and s.expected is None)
    return Outcome(hits / max(len(on), 1), false / max(len(off), 1), len(on), len(off))


def calibrate(scored: list[Scored], max_false_positive: float = 0.1) -> Calibration:
    """The (threshold, margin) maximising accuracy minus false-positive rate, false positives capped.

    Among equally good points the middle of the plateau is taken (median threshold, then median margin), so
    the defaults sit away from the edge where one more phrase flips.
    """
    score = np.array([s.score for s in scored])[:, None, None]
    gap = np.array([s.score - s.runner_up for s in scored])[:, None, None]
    picked = (score >= THRESHOLDS[None, :, None] - 1e-9) & (gap >= MARGINS[None, None, :] - 1e-9)
    on = np.array([s.expected is not None for s in scored])
    right = np.array([s.expected is not None and s.best == s.expected for s in scored])
    accuracy = (picked & right[:, None, None]).sum(axis=0) / max(on.sum(), 1)
    fp = (picked & ~on[:, None, None]).sum(axis=0) / max((~on).sum(), 1)
    objective = np.where(fp <= max_false_positive + 1e-9, accuracy - fp, -np.inf)
    best = objective.max()
    if not np.isfinite(best):
        raise ValueError(f"no threshold keeps false positives at or below {max_false_positive}")
    ties = np.argwhere(objective >= best - 1e-9)
    t_index = int(np.sort(ties[:, 0])[len(ties) // 2])
    margins = np.sort(ties[ties[:, 0] == t_index][:, 1])
    m_index = int(margins[len(margins) // 2])
    threshold, margin = float(THRESHOLDS[t_index]), float(MARGINS[m_index])
    return Calibration(threshold, margin, evaluate(scored, threshold, margin))


def held_out(scored: list[Scored], max_false_positive: float = 0.1) -> Outcome:
    """Accuracy and false positives measured on phrases the calibration did not see: calibrated on the even
    phrases and scored on the odd ones, then the other way round, averaged. The in-sample figures of `calibrate`
    flatter any change that fits these very phrases; compare scoring changes on this one."""
    folds = []
    for fold in (0, 1):
        train = [s for i, s in enumerate(scored) if i % 2 == fold]
        test = [s for i, s in enumerate(scored) if i % 2 != fold]
        found = calibrate(train, max_false_positive)
        folds.append(evaluate(test, found.threshold, found.margin))
    return Outcome(float(np.mean([f.accuracy for f in folds])), float(np.mean([f.false_positive_rate for f in folds])),
                   sum(f.on_topic for f in folds), sum(f.off_topic for f in folds))
