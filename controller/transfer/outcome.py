"""What a transfer's outcome means for the caller: FreeSWITCH's disposition turned into a typed result, and
the lines the agent says about it.

Read `variable_originate_disposition` on the bridge's CHANNEL_EXECUTE_COMPLETE: it was right in every capture
(07, 09, 10, 16), while the `sip:` variables can be stale from an earlier bridge (capture 16, notes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

NO_ANSWER = frozenset({"ALLOTTED_TIMEOUT", "NO_ANSWER", "NO_USER_RESPONSE", "PROGRESS_TIMEOUT"})
RESULTS = ("answered", "no_answer", "busy", "rejected", "abandoned", "failed")
# The message (TransferMessages field) the agent says when it takes the caller back after each result.
MESSAGE_FOR = {"no_answer": "no_answer", "busy": "busy", "rejected": "busy", "failed": "failed"}


@dataclass(frozen=True)
class BridgeResult:
    """`result` is one of RESULTS; `cause` is the disposition as FreeSWITCH wrote it (kept for `failed`)."""

    result: str
    cause: str

    @property
    def taken_back(self) -> bool:
        """The caller is still with the agent, who says the matching message and goes on."""
        return self.result in MESSAGE_FOR


def classify_disposition(disposition: Optional[str], caller_hung_up: bool = False) -> BridgeResult:
    """`SUCCESS` -> answered; timeouts -> no_answer; USER_BUSY -> busy; CALL_REJECTED -> rejected;
    ORIGINATOR_CANCEL (or a caller who hung up while it rang) -> abandoned; anything else -> failed."""
    cause = (disposition or "").strip().upper() or "UNKNOWN"
    if cause == "SUCCESS":
        return BridgeResult("answered", cause)
    if cause == "ORIGINATOR_CANCEL" or caller_hung_up:
        return BridgeResult("abandoned", cause)
    if cause in NO_ANSWER:
        return BridgeResult("no_answer", cause)
    if cause == "USER_BUSY":
        return BridgeResult("busy", cause)
    if cause == "CALL_REJECTED":
        return BridgeResult("rejected", cause)
    return BridgeResult("failed", cause)


# What the agent says when the operator left a message out, in the agent's language (the configuration's
# defaults are the English lines).
DEFAULT_MESSAGES = {"fr": {"transferring": "Je vous transfère, ne quittez pas.",
                           "no_answer": "Personne ne répond pour le moment. Je reste avec vous.",
                           "busy": "La ligne est occupée pour le moment. Je reste avec vous.",
                           "failed": "Le transfert n'a pas abouti. Je reste avec vous.",
                           "closed": "Ce service est fermé pour le moment."}}
_ASK = {"fr": "Vers quel service souhaitez-vous être transféré ?",
        "en": "Which service would you like to be transferred to?"}
_ASK_AMONG = {"fr": ("Vers quel service : {} ?", " ou "), "en": ("Which one: {}?", " or ")}


def which_one(language: str, names: Sequence[str]) -> str:
    """The question when no single destination was named: `Vers quel service : A, B ou C ?` for 2..4 names."""
    base = language[:2]
    if not 1 < len(names) <= 4:
        return _ASK.get(base, _ASK["en"])
    question, last = _ASK_AMONG.get(base, _ASK_AMONG["en"])
    return question.format(", ".join(names[:-1]) + last + names[-1])
