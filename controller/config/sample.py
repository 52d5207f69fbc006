"""The call every configured template is tried on when a configuration loads (so `check` and `reload` see it).

A French caller whose parcel is late, identified by a before-call workflow, transferred to an advisor: the
shape of controller.call.record's `as_record`, its variables, and what the after-call worker adds
(`record`, `classification`). During-call and after-call names live side by side, so one sample serves every
template; a name it lacks renders empty in the trial (config/base.py), since operators' workflows keep
variables of their own.
"""
from __future__ import annotations

from typing import Any

_UUID = "6f1c2b9e-4d0a-4e8f-9c1a-2b3d4e5f6a7b"
_VARIABLES: dict[str, Any] = {
    "caller_number": "+33612345678", "caller_name": "Camille Martin", "destination": "+33184808080",
    "direction": "inbound", "uuid": _UUID, "agent": "support", "sip_headers": {"X-Customer-Id": "C-1042"},
    "customer_name": "Camille Martin", "customer_id": "C-1042", "customer_tier": "gold",
}
_TRANSCRIPT = [
    {"who": "agent", "text": "Bonjour, que puis-je faire pour vous ?", "at": "2026-03-12T09:41:03Z"},
    {"who": "caller", "text": "Bonjour, ma commande 48213 n'est toujours pas arrivée.", "at": "2026-03-12T09:41:08Z"},
    {"who": "agent", "text": "Je regarde : le colis est parti de Lyon hier soir.", "at": "2026-03-12T09:41:12Z"},
    {"who": "caller", "text": "Je voudrais parler à un conseiller, s'il vous plaît.", "at": "2026-03-12T09:41:20Z"},
    {"who": "agent", "text": "Je vous transfère à un conseiller, ne quittez pas.", "at": "2026-03-12T09:41:22Z"},
]
_ACTIONS = [
    {"moment": "before_call", "name": "lookup", "type": "workflow", "started_at": "2026-03-12T09:41:00Z",
     "ended_at": "2026-03-12T09:41:00Z", "duration_ms": 182.4, "result": "ok",
     "detail": {"status": 200, "kept": {"customer_name": "Camille Martin", "customer_id": "C-1042"}}},
    {"moment": "during_call", "name": "to_advisor", "type": "transfer", "started_at": "2026-03-12T09:41:22Z",
     "ended_at": "2026-03-12T09:44:10Z", "duration_ms": 168000.0, "result": "answered",
     "detail": {"destination": "conseillers_paris", "number": "+33170363950", "disposition": "SUCCESS",
                "ring_s": 6.2, "talk_s": 161.8}},
]
SAMPLE_RECORD: dict[str, Any] = {
    "uuid": _UUID, "agent": "support", "caller": "+33612345678", "caller_name": "Camille Martin",
    "destination": "+33184808080", "direction": "inbound",
    "moments": {"ringing": "2026-03-12T09:41:00Z", "in_call": "2026-03-12T09:41:02Z", "ended": "2026-03-12T09:44:10Z"},
    "started_at": "2026-03-12T09:41:00Z", "ended_at": "2026-03-12T09:44:10Z", "duration_s": 190.0, "talk_s": 188.0,
    "hangup_by": "caller", "transferred": True, "hangup_cause": "NORMAL_CLEARING",
    "answered_by": "human", "answered_detail": {"how": "short_greeting", "decision_s": 2.1, "heard": "Allô ?"},
    "variables": _VARIABLES,
    "sip_headers": {"X-Customer-Id": "C-1042"}, "transcript": _TRANSCRIPT, "actions": _ACTIONS,
    "metrics": {"turn_latency_ms": [412.0, 388.5]}, "missing_modules": [],
}
SAMPLE_VARIABLES: dict[str, Any] = {**_VARIABLES, "arguments": {}, **SAMPLE_RECORD, "record": SAMPLE_RECORD,
                                    "classification": "transferred",
                                    "classifications": ["transferred"]}
