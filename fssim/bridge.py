"""The `bridge` app: ring the dialled legs as the scenario's far ends behave, report what FreeSWITCH reports.

Failure (captures 02, 07, 10, 16): `originated_legs`, `originate_causes` (ARRAY:: from the second attempt),
`originate_signal_bond`, SIP failure variables for sofia legs, `last_bridge_hangup_cause`,
`originate_disposition`, `DIALSTATUS` (BUSY, DONTCALL, NOANSWER, CANCEL or the cause), `originate_failed_cause`;
then, unless `continue_on_fail` allows it (NO_ANSWER and NO_USER_RESPONSE always do), the caller is hung up
with the cause: CHANNEL_HANGUP before the bridge's CHANNEL_EXECUTE_COMPLETE.
Success (09, 16): SUCCESS variables, CHANNEL_BRIDGE, talk, CHANNEL_UNBRIDGE with `bridge_hangup_cause`;
the caller is hung up afterwards only when `hangup_after_bridge` is true (switch_ivr_bridge.c).
`leg_timeout` (per leg, ALLOTTED_TIMEOUT) and `originate_timeout` (NO_ANSWER, default 60) come from the
wire and count call seconds, so the simulator's time scale applies to them.
`group_confirm_key` (switch_ivr_originate): whoever answers must press that key (a far end's `presses`),
`CONFIRM_S` after answering; until then `leg_timeout` keeps running (unless `group_confirm_cancel_timeout`
is true), so a far end that answers and never presses it ends as ALLOTTED_TIMEOUT. A ringing leg answers
`uuid_kill` with the given cause; a `stuck` far end rings until killed (a FreeSWITCH that never reports).
"""
from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass

from fssim.causes import CAUSES
from fssim.channel import Profile
from fssim.dialstring import DialLeg, DialStringError, parse_dial_string
from fssim.ports import CallPort
from fssim.recording import BridgeAttempt
from fssim.scenario import FarEnd

SIP_FAILURES = {"USER_BUSY": ("486", "Busy Here"), "CALL_REJECTED": ("603", "Decline"),
                "UNALLOCATED_NUMBER": ("404", "Not Found")}
DIALSTATUS = {"USER_BUSY": "BUSY", "NO_ANSWER": "NOANSWER", "CALL_REJECTED": "DONTCALL",
              "ORIGINATOR_CANCEL": "CANCEL", "INVALID_NUMBER_FORMAT": "INVALIDARGS"}
ALWAYS_CONTINUE = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL"})
SETUP_S = 0.02
CONFIRM_S = 1.0
STUCK_S = 3600.0


@dataclass
class LegPlan:
    leg: DialLeg
    uuid: str
    at: float
    cause: str | None
    talk_s: float = 0.0
    caller_hangs_up: bool = False

    @property
    def sofia(self) -> bool:
        return self.leg.tech == "sofia"

    @property
    def channel_name(self) -> str:
        if self.sofia:
            return f"sofia/internal/{self.leg.destination}"
        return f"{self.leg.tech}/{self.leg.destination}-a"


def run_bridge(call: CallPort, arg: str) -> None:
    """Ring each `|` group in turn (legs of a group together) until one answers or all fail."""
    attempt = BridgeAttempt(call.now(), arg, {}, [])
    call.rec.bridges.append(attempt)
    try:
        dial = parse_dial_string(arg)
    except DialStringError as exc:
        call.note(f"bridge: {exc}")
        _fail(call, attempt, [], "INVALID_NUMBER_FORMAT")
        return None
    attempt.global_variables, attempt.legs = dial.global_variables, dial.legs
    call.fire_callstate("RING_WAIT")
    tried: list[LegPlan] = []
    for group in dial.groups:
        plans = [_plan(call, leg) for leg in group]
        tried += plans
        attempt.leg_timeout_s = _leg_timeout(plans[0].leg)
        winner, cause = _ring(call, plans)
        if winner is not None:
            _talk(call, attempt, winner, tried)
            return None
        if cause == "ORIGINATOR_CANCEL":
            break
    _fail(call, attempt, tried, cause)
    return None


def _leg_timeout(leg: DialLeg) -> float | None:
    value = leg.variables.get("leg_timeout")
    return float(value) if value and value.replace(".", "", 1).isdigit() else None


def _plan(call: CallPort, leg: DialLeg) -> LegPlan:
    """When this leg answers or fails, from the far end the scenario gives its destination."""
    peer = leg.variables.get("origination_uuid") or str(uuidlib.uuid4())
    leg_timeout = _leg_timeout(leg)
    originate = leg.variables.get("originate_timeout") or call.channel.get_var("call_timeout") or "60"
    timeout, timeout_cause = (leg_timeout, "ALLOTTED_TIMEOUT") if leg_timeout else (float(originate), "NO_ANSWER")
    if leg.tech == "error":
        cause = leg.destination.upper()
        return LegPlan(leg, peer, SETUP_S, cause if cause in CAUSES else "DESTINATION_OUT_OF_ORDER")
    far_end = call.scenario.far_end(leg.destination)
    if far_end is None:
        call.note(f"bridge: no target for {leg.destination} in the scenario: UNALLOCATED_NUMBER (404)")
        return LegPlan(leg, peer, SETUP_S, "UNALLOCATED_NUMBER")
    confirm = leg.variables.get("group_confirm_key")
    if confirm and far_end.outcome == "answer" and _true(leg.variables.get("group_confirm_cancel_timeout")):
        timeout, timeout_cause = float(originate), "NO_ANSWER"
    return _from_far_end(leg, peer, far_end, timeout, timeout_cause, confirm)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1", "enabled", "allow", "active")


def _from_far_end(leg: DialLeg, peer: str, far_end: FarEnd, timeout: float, timeout_cause: str,
                  confirm: str | None = None) -> LegPlan:
    immediate = {"busy": "USER_BUSY", "reject": "CALL_REJECTED", "gateway_down": "NETWORK_OUT_OF_ORDER"}
    if far_end.outcome in immediate:
        return LegPlan(leg, peer, SETUP_S, immediate[far_end.outcome])
    if far_end.outcome == "stuck":
        return LegPlan(leg, peer, STUCK_S, "NORMAL_TEMPORARY_FAILURE")
    answer_at = far_end.answer_after_s + (CONFIRM_S if confirm else 0.0)
    if confirm and far_end.outcome == "answer" and far_end.presses != confirm:
        return LegPlan(leg, peer, timeout, timeout_cause)  # answered, never confirmed: a voicemail
    if far_end.outcome == "answer" and answer_at < timeout:
        return LegPlan(leg, peer, max(answer_at, SETUP_S), None, far_end.talk_s)
    if far_end.outcome == "caller_hangs_up" and far_end.hangup_after_s < timeout:
        return LegPlan(leg, peer, far_end.hangup_after_s, "ORIGINATOR_CANCEL", caller_hangs_up=True)
    return LegPlan(leg, peer, timeout, timeout_cause)


def _ring(call: CallPort, plans: list[LegPlan]) -> tuple[LegPlan | None, str]:
    """Wait for the first answer; a group fails with the cause of its last leg to give up.

    Ringing legs exist for `uuid_getvar`/`uuid_kill`; a killed leg ends the group with the kill's cause.
    """
    started = call.now()
    cause = "NORMAL_TEMPORARY_FAILURE"
    for plan in plans:
        call.peers[plan.uuid] = {"uuid": plan.uuid, **plan.leg.variables}
    try:
        for plan in sorted(plans, key=lambda p: p.at):
            if not call.session.wait_app(max(0.0, started + plan.at - call.now())):
                killed = next((p.uuid for p in plans if p.uuid in call.peer_kills), None)
                if killed is not None and call.channel.up:
                    return None, call.peer_kills.pop(killed)
                return None, "ORIGINATOR_CANCEL"
            if plan.caller_hangs_up:
                call.hangup("NORMAL_CLEARING", "caller")
                return None, "ORIGINATOR_CANCEL"
            if plan.cause is None:
                return plan, "SUCCESS"
            cause = plan.cause
        return None, cause
    finally:
        for plan in plans:
            call.peers.pop(plan.uuid, None)


def _append(call: CallPort, name: str, value: str) -> None:
    old = call.channel.get_var(name)
    if old is None:
        call.channel.set_var(name, value)
    else:
        call.channel.set_var(name, f"{old}|:{value}" if old.startswith("ARRAY::") else f"ARRAY::{old}|:{value}")


def _record_legs(call: CallPort, plans: list[LegPlan], winner: LegPlan | None) -> None:
    for plan in plans:
        callee = plan.leg.destination if plan.sofia else "default"
        _append(call, "originated_legs", f"{plan.uuid};Outbound Call;{callee}")
        _append(call, "originate_causes", f"{plan.uuid};{'NONE' if plan is winner else plan.cause}")


def _fail(call: CallPort, attempt: BridgeAttempt, plans: list[LegPlan], cause: str) -> None:
    ch = call.channel
    _record_legs(call, plans, None)
    last = plans[-1] if plans else None
    if last is not None:
        ch.set_var("originate_signal_bond", last.uuid)
        sip = SIP_FAILURES.get(cause) if last.sofia else None
        if sip:
            ch.set_var("sip_invite_failure_status", sip[0])
            ch.set_var("sip_invite_failure_phrase", sip[1])
            ch.set_var("sip_hangup_phrase", sip[1])
    ch.set_var("last_bridge_hangup_cause", cause)
    if last is not None and last.sofia and cause in SIP_FAILURES:
        ch.set_var("last_bridge_proto_specific_hangup_cause", f"sip:{SIP_FAILURES[cause][0]}")
    ch.set_var("originate_disposition", cause)
    ch.set_var("DIALSTATUS", DIALSTATUS.get(cause, cause))
    ch.set_var("originate_failed_cause", cause)
    attempt.outcome = attempt.disposition = cause
    call.note(f"bridge failed: {cause}")
    if ch.up:
        call.fire_callstate("ACTIVE")
    if ch.up and not _continues(ch.get_var("continue_on_fail"), cause):
        call.hangup(cause, "bridge")


def _continues(setting: str | None, cause: str) -> bool:
    """mod_dptools audio_bridge_function: which failures leave the caller in the dialplan."""
    if cause in ALWAYS_CONTINUE:
        return True
    if not setting:
        return False
    if _true(setting):
        return True
    items = [item.strip().upper() for item in setting.split(",")]
    return cause in items or str(CAUSES.get(cause)) in items


def _talk(call: CallPort, attempt: BridgeAttempt, plan: LegPlan, tried: list[LegPlan]) -> None:
    ch = call.channel
    _record_legs(call, tried, plan)
    ch.set_var("originate_disposition", "SUCCESS")
    ch.set_var("DIALSTATUS", "SUCCESS")
    ch.set_var("signal_bond", plan.uuid)
    name, destination = plan.channel_name, plan.leg.destination
    ch.other_leg = Profile("outbound", ch.profile.number, None, destination, plan.uuid, name, call.now_us(),
                           source="mod_sofia" if plan.sofia else "mod_loopback", index=None,
                           callee_name=destination if plan.sofia else "Outbound Call",
                           callee_number=destination if plan.sofia else "default")
    ch.other_leg.times["answered"] = call.now_us()
    call.peers[plan.uuid] = {"uuid": plan.uuid, **plan.leg.variables}
    call.answer()
    call.fire_callstate("ACTIVE")
    call.tick()
    ch.mark("bridged")
    bridge_ids = [("Bridge-A-Unique-ID", call.uuid), ("Bridge-B-Unique-ID", plan.uuid)]
    call.fire("CHANNEL_BRIDGE", before=bridge_ids)
    for key, value in (("last_bridge_to", plan.uuid), ("bridge_channel", name), ("bridge_uuid", plan.uuid),
                       ("signal_bond", plan.uuid), ("last_sent_callee_id_name", ch.other_leg.callee_name),
                       ("last_sent_callee_id_number", ch.other_leg.callee_number)):
        ch.set_var(key, value)
    attempt.outcome, attempt.disposition, attempt.answered_leg = "answered", "SUCCESS", plan.leg.endpoint
    call.note(f"bridge answered by {destination}; talking {plan.talk_s:g} s")
    call.session.wait_app(plan.talk_s)
    call.peers.pop(plan.uuid)
    peer_cause = call.peer_kills.pop(plan.uuid, "NORMAL_CLEARING")
    if plan.sofia:
        ch.set_var("sip_reason", f'Q.850;cause={CAUSES[peer_cause]};text="{peer_cause}"')
        ch.set_var("sip_hangup_phrase", "OK")
    ch.set_var("last_bridge_hangup_cause", peer_cause)
    if plan.sofia:
        ch.set_var("last_bridge_proto_specific_hangup_cause", "sip:200")
    ch.set_var("bridge_hangup_cause", peer_cause)
    call.fire("CHANNEL_UNBRIDGE", before=bridge_ids)
    if ch.up and ch.true_var("hangup_after_bridge"):
        call.hangup(peer_cause, "bridge")
