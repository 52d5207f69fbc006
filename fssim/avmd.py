"""mod_avmd, the answering-machine beep detector: the `avmd_start` and `avmd_stop` apps and the avmd:: events.

avmd.conf's defaults are `inbound_channel=0`, `outbound_channel=1`; `avmd_start`'s argument overrides them, and
avmd starts only when the flag of the channel's own direction is 1 (mod_avmd.c "Can't set direction for channel",
nothing on the wire). On an inbound channel (the socket leg of a call that came in) it then taps the leg's WRITE
stream: it hears a single-frequency tone the leg plays itself, not the far end (capture 14). On an outbound
channel (one `originate ... &socket(...)` placed, capture 13) it taps the READ stream: it hears the far end, so
the script's `beep` step (a voicemail's beep) fires avmd::beep.
"""
from __future__ import annotations

import re

from fssim.channel import Header
from fssim.ports import CallPort

# avmd::beep as capture 14 recorded it (the frequency is the tone's, 1000.454123 there).
BEEP_FIELDS = [("Beep-Status", "DETECTED"), ("Frequency", "1000.000000"), ("Frequency-variance", "0.000018"),
               ("Amplitude", "14401.345206"), ("Amplitude-variance", "27176.962574"), ("Detection-time", "0"),
               ("Detector-resolution", "1"), ("Detector-offset", "0"), ("Detector-index", "0")]


def hears_far_end(call: CallPort) -> bool:
    """avmd on an outbound channel reads what the far end sends; on an inbound one only what the leg plays."""
    return call.channel.profile.direction == "outbound"


def avmd_start(call: CallPort, arg: str) -> None:
    flags = {"inbound_channel": "0", "outbound_channel": "1"}  # avmd.conf defaults
    for item in (arg or "").replace(" ", "").split(","):
        key, _, value = item.partition("=")
        if key in flags:
            flags[key] = value
    direction = call.channel.profile.direction
    if flags[f"{direction}_channel"] != "1":
        call.note(f"avmd_start: not started on an {direction} channel without {direction}_channel=1 (capture 14)")
        return None
    call.avmd_running = True
    fire_avmd(call, "avmd::start", [("Start-time", str(call.now_us()))], with_channel=True)
    return None


def avmd_stop(call: CallPort, arg: str) -> None:
    if call.avmd_running:
        call.avmd_running = False
        status = "DETECTED" if call.channel.get_var("avmd_detect") == "TRUE" else "NOTDETECTED"
        fire_avmd(call, "avmd::stop", [("Beep-Status", status), ("Total-time", "0")], with_channel=True)
    return None


def fire_avmd(call: CallPort, subclass: str, fields: list[Header], with_channel: bool) -> None:
    """mod_avmd events: bare, then (start/stop) again with channel data and the same Event-Sequence; that copy
    is queued on the session, so it follows the running app's CHANNEL_EXECUTE_COMPLETE (capture 14)."""
    header = call.switch.event_header("CUSTOM", call.now_us(), subclass)
    bare = [*header, ("Unique-ID", call.uuid), ("Call-command", "avmd"), *fields]
    call.fire("CUSTOM", subclass=subclass, headers=bare)
    if with_channel:
        copy = [*bare, *call.channel.data(True)]
        if call.session.app is not None:
            call.asr.queue(lambda: call.fire("CUSTOM", subclass=subclass, headers=copy))
        else:
            call.fire("CUSTOM", subclass=subclass, headers=copy)


def avmd_beep(call: CallPort) -> None:
    """avmd heard a beep: `avmd_detect` turns TRUE and avmd::beep is fired once, bare (capture 14)."""
    call.channel.set_var("avmd_detect", "TRUE")
    fire_avmd(call, "avmd::beep", BEEP_FIELDS, with_channel=False)


def avmd_hears(call: CallPort, path: str) -> bool:
    """avmd started with inbound_channel=1 on the (inbound) socket leg taps its WRITE stream, what the leg plays:
    a single-frequency tone it plays is a beep one frame in (capture 14: 20 ms into a 1000 Hz tone)."""
    return (call.avmd_running and not hears_far_end(call) and call.channel.get_var("avmd_detect") != "TRUE"
            and re.match(r"^tone_stream://%\((\d{3,}),\d+,\d+(?:\.\d+)?\)", path) is not None)
