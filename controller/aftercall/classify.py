"""Name a finished call from its record with the operator's rules, before any after-call action runs.

Rules are tried in the order they are written; every rule whose every given condition holds names the call (the
first is its main `classification`, all of them its `classifications`), and a rule marked `fallback: true` names
the calls no rule matched. Conditions (all optional, all must hold):
  transferred          bool   the caller was handed to a person or another agent
  hangup_by            str or list   who ended the call: "caller", "agent", "system", "callee" (a placed call
                                     the callee did not take: busy, rejected, no answer)
  direction            str    "inbound" (a caller called) or "outbound" (the agent placed the call)
  answered_by          str or list   who machine detection found answered: human, machine, ivr, unknown
  answered             bool   someone answered (false: an outbound call nobody took, busy or failed)
  hangup_cause         list   one of these FreeSWITCH causes (NO_ANSWER, USER_BUSY, CALL_REJECTED...)
  action_called        str or list   one of these action names appears in record["actions"]
  transcript_contains  str or list   one of these phrases appears (case-insensitive) in any transcript text
  min_duration_s / max_duration_s    bounds on record["duration_s"] (or ended_at - started_at)
Pure: no I/O, so the same record always gets the same name and the worker may classify again on retry.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Optional

TRANSFER_DONE = ("ok", "bridged", "answered", "transferred", "handed_off")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def transferred(record: Mapping[str, Any]) -> bool:
    """record["transferred"] when the call code set it, else any transfer action whose result says it went through."""
    if "transferred" in record:
        return bool(record["transferred"])
    return any(_get(a, "type") == "transfer" and (_get(a, "ok") is True or _get(a, "result") in TRANSFER_DONE)
               for a in record.get("actions") or [])


def duration_s(record: Mapping[str, Any]) -> Optional[float]:
    if record.get("duration_s") is not None:
        return float(record["duration_s"])
    try:
        started = datetime.fromisoformat(record["started_at"])
        ended = datetime.fromisoformat(record["ended_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (ended - started).total_seconds()


def _transcript_text(record: Mapping[str, Any]) -> str:
    return "\n".join(str(_get(e, "text", "")) for e in record.get("transcript") or []).casefold()


def matches(when: Any, record: Mapping[str, Any]) -> bool:
    """True when every condition given in `when` holds for `record` (an empty `when` matches every call)."""
    expected = _get(when, "transferred")
    if expected is not None and transferred(record) != bool(expected):
        return False
    direction = _get(when, "direction")
    if direction is not None and record.get("direction", "inbound") != direction:
        return False
    answerers = _as_list(_get(when, "answered_by"))
    if answerers and record.get("answered_by") not in answerers:
        return False
    answered = _get(when, "answered")
    if answered is not None and bool(record.get("answered", True)) != bool(answered):
        return False
    causes = _as_list(_get(when, "hangup_cause"))
    if causes and record.get("hangup_cause") not in causes:
        return False
    who = _as_list(_get(when, "hangup_by"))
    if who and record.get("hangup_by") not in who:
        return False
    wanted_actions = set(_as_list(_get(when, "action_called")))
    if wanted_actions and not wanted_actions & {_get(a, "name") for a in record.get("actions") or []}:
        return False
    phrases = _as_list(_get(when, "transcript_contains"))
    if phrases:
        text = _transcript_text(record)
        if not any(str(p).casefold() in text for p in phrases):
            return False
    low, high = _get(when, "min_duration_s"), _get(when, "max_duration_s")
    if low is not None or high is not None:
        seconds = duration_s(record)
        if seconds is None or (low is not None and seconds < low) or (high is not None and seconds > high):
            return False
    return True


def classify_all(record: Mapping[str, Any], classifications: Mapping[str, Any]) -> list[str]:
    """Every rule matching `record`, in the order written (a call can be both `transferred` and `lead`); the first
    fallback rule alone when none matched; [] when there is no rule at all."""
    names, fallback = [], None
    for name, rule in (classifications or {}).items():
        if _get(rule, "fallback"):
            fallback = fallback or name
        elif matches(_get(rule, "when"), record):
            names.append(name)
    return names or ([fallback] if fallback else [])


def classify(record: Mapping[str, Any], classifications: Mapping[str, Any]) -> Optional[str]:
    """The first rule matching `record`, else the first fallback rule, else None: the call's main classification."""
    names = classify_all(record, classifications)
    return names[0] if names else None


def applies(action: Any, classifications: Iterable[str]) -> bool:
    """An after-call action with `when_classified` runs only when the call has one of those classifications."""
    wanted = set(_get(action, "when_classified") or ())
    return not wanted or bool(wanted & set(classifications))
