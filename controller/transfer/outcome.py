"""What a transfer's outcome means for the caller: FreeSWITCH's disposition turned into a typed result, and
which of the transfer's messages the agent says about it (the sentences are in controller/phrases.py).

Read `variable_originate_disposition` on the bridge's CHANNEL_EXECUTE_COMPLETE: it was right in every capture
(07, 09, 10, 16), while the `sip:` variables can be stale from an earlier bridge (capture 16, notes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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
