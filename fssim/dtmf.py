"""`send_dtmf` as FreeSWITCH 1.10 plays it to the far end: `digits[@ms]`, `w`/`W` pauses, the channel's DTMF mode.

The app completes at once (capture 05: EXECUTE and EXECUTE_COMPLETE in the same millisecond) and the keys then
reach the far end one by one, each lasting its tone length (`@ms`, 2000 ms without it, clamped to 50..24000 ms
as switch_core_session_send_dtmf_string does), `w` 0.5 s and `W` 1 s of pause; characters that are not keys are
skipped. How they travel is the channel's mode: `inband` once `start_dtmf_generate` runs on it (an originate's
`execute_on_answer=start_dtmf_generate` runs it at answer), else sofia's `dtmf_type` (`rfc2833` when unset or
unknown, `info`; `none` sends nothing at all). Each key the far end gets is recorded with its mode and put in
`keys_heard`, where a simulated IVR (fssim/ivr.py) collects it.
"""
from __future__ import annotations

from fssim.ports import CallPort

DEFAULT_MS = 2000
MIN_MS, MAX_MS = 50, 24000
KEYS = "0123456789*#ABCD"
PAUSES = {"w": 0.5, "W": 1.0}


def dtmf_mode(call: CallPort) -> str:
    """inband, info, rfc2833 or none: how this channel's DTMF leaves it."""
    ch = call.channel
    if call.started_apps["start_dtmf_generate"] or ch.get_var("execute_on_answer") == "start_dtmf_generate":
        return "inband"
    kind = (ch.get_var("dtmf_type") or "").lower()
    return kind if kind in ("info", "none") else "rfc2833"


def send_dtmf(call: CallPort, arg: str) -> None:
    """The send_dtmf app: record what was asked, then play the keys to the far end in the background."""
    call.rec.dtmf_sent.append(arg)
    digits, at, ms = arg.partition("@")
    duration = DEFAULT_MS
    if at:
        number = "".join(c for c in ms[:6] if c.isdigit()) if ms[:1].isdigit() else "0"
        duration = min(MAX_MS, max(MIN_MS, int(number or 0)))
    mode = dtmf_mode(call)
    call.note(f"agent sent DTMF {arg} (send_dtmf, {mode}, {duration} ms per key)")
    call.spawn(_play, call, digits, duration / 1000.0, mode)
    return None


def _play(call: CallPort, digits: str, seconds: float, mode: str) -> None:
    for char in digits:
        if not call.channel.up:
            return
        if char in PAUSES:
            call.sleep(PAUSES[char])
            continue
        key = char.upper()
        if key not in KEYS:
            call.note(f"send_dtmf: {char!r} is not a DTMF key, skipped")
            continue
        call.sleep(seconds)
        if mode == "none":
            call.note(f"DTMF {key} not sent: dtmf_type=none and no start_dtmf_generate")
            continue
        call.rec.dtmf_received.append((key, mode))
        call.keys_heard.put(key)
