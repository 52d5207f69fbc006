"""What follows CHANNEL_HANGUP: the state machine's CS_HANGUP and CS_REPORTING states (capture 04).

The session thread runs it once the channel is down: the socket app returns, CHANNEL_STATE CS_HANGUP,
CHANNEL_CALLSTATE HANGUP, CHANNEL_STATE CS_REPORTING, then the CDR variables and CHANNEL_HANGUP_COMPLETE.
"""
from __future__ import annotations

from datetime import datetime

from fssim.causes import CAUSES
from fssim.ports import CallPort


def hang_up_states(call: CallPort) -> None:
    """From the socket app's completion to CHANNEL_HANGUP_COMPLETE, in FreeSWITCH's order."""
    ch = call.channel
    conn = call.controlling
    if call.socket_app is not None and conn is not None:
        call.end_socket_app(unpark=conn.async_mode)
    ch.state = "CS_HANGUP"
    call.fire("CHANNEL_STATE")
    call.fire_callstate("HANGUP")
    ch.mark("hangup")
    ch.state, ch.state_number = "CS_REPORTING", 11
    call.fire("CHANNEL_STATE")
    set_cdr_variables(call)
    call.fire("CHANNEL_HANGUP_COMPLETE", before=[("Hangup-Cause", ch.hangup_cause or "NORMAL_CLEARING")])


def set_cdr_variables(call: CallPort) -> None:
    """The variables FreeSWITCH adds before CHANNEL_HANGUP_COMPLETE (a subset of capture 04's)."""
    ch = call.channel
    times = ch.profile.times
    cause = ch.hangup_cause or "NORMAL_CLEARING"
    start, answer, end = times.get("created", ch.profile.created_us), times.get("answered", 0), times.get("hangup", 0)

    def stamp(us: int) -> str | None:
        return datetime.fromtimestamp(us / 1e6).strftime("%Y-%m-%d %H:%M:%S") if us else None

    for name, value in (
            ("hangup_cause", cause), ("hangup_cause_q850", str(CAUSES.get(cause, 0))), ("digits_dialed", "none"),
            ("start_stamp", stamp(start)), ("answer_stamp", stamp(answer)), ("end_stamp", stamp(end)),
            ("start_epoch", str(start // 1_000_000)), ("start_uepoch", str(start)),
            ("answer_epoch", str(answer // 1_000_000)), ("answer_uepoch", str(answer)),
            ("end_epoch", str(end // 1_000_000)), ("end_uepoch", str(end)),
            ("last_app", ch.get_var("current_application")), ("last_arg", ch.get_var("current_application_data")),
            ("caller_id", f'"{ch.profile.name or ""}" <{ch.profile.number}>'),
            ("duration", str((end - start) // 1_000_000)),
            ("billsec", str((end - answer) // 1_000_000 if answer else 0))):
        ch.set_var(name, value)
