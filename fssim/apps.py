"""The dialplan applications the simulator runs for `sendmsg execute`, each owned by its module.

An app whose module is not loaded does not exist: FreeSWITCH answers `+OK` and hangs the channel up with
DESTINATION_OUT_OF_ORDER (capture 06). `speak` and `detect_speech` live in mod_dptools; when their engine
module (mod_flite, mod_unimrcp...) is missing they fail quietly, as switch_ivr_speak_text does: the call
goes on and nothing is played or heard. Each handler returns the Application-Response (None for `_none_`).
"""
from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Callable

import gevent

from fssim.asr import detect_speech
from fssim.bridge import run_bridge
from fssim.causes import CAUSES
from fssim.connection import CONNECT_TIMEOUT_S

if TYPE_CHECKING:
    from fssim.call import SimCall


@dataclass(frozen=True)
class AppSpec:
    module: str
    handler: Callable[["SimCall", str], str | None]


def playback_seconds(call: "SimCall", path: str) -> float:
    """tone_stream://%(on,off,hz);loops=N and silence_stream://ms are timed from their text; files per scenario."""
    table = call.scenario.playback_seconds
    if path in table:
        return table[path]
    tone = re.match(r"^tone_stream://%\((\d+),(\d+)[^)]*\)(?:;loops=(-?\d+))?", path)
    if tone:
        loops = int(tone.group(3) or 1)
        return (int(tone.group(1)) + int(tone.group(2))) * max(loops, 1) / 1000.0
    silence = re.match(r"^silence_stream://(\d+)", path)
    if silence:
        return int(silence.group(1)) / 1000.0
    return table["default"]


def _answer(call: "SimCall", arg: str) -> None:
    call.answer()
    return None


def _pre_answer(call: "SimCall", arg: str) -> None:
    ch = call.channel
    if ch.answer_state == "ringing":
        ch.answer_state = "early"
        ch.mark("progress-media")
        call.fire("CHANNEL_PROGRESS_MEDIA")
        call.fire_callstate("EARLY")
    return None


def _ring_ready(call: "SimCall", arg: str) -> None:
    ch = call.channel
    if not ch.profile.times.get("progress"):
        ch.mark("progress")
        call.fire("CHANNEL_PROGRESS")
    return None


def _set(call: "SimCall", arg: str) -> None:
    name, _, value = arg.partition("=")
    call.channel.set_var(name.strip(), value or None)
    return None


def _multiset(call: "SimCall", arg: str) -> None:
    delimiter = " "
    if arg.startswith("^^") and len(arg) > 2:
        delimiter, arg = arg[2], arg[3:]
    for pair in arg.split(delimiter):
        if pair.strip():
            _set(call, pair)
    return None


def _unset(call: "SimCall", arg: str) -> None:
    call.channel.set_var(arg.strip(), None)
    return None


def _export(call: "SimCall", arg: str) -> None:
    local = not arg.startswith("nolocal:")
    pair = arg.split(":", 1)[1] if not local else arg
    name = pair.partition("=")[0].strip()
    if local:
        _set(call, pair)
    exported = [v for v in (call.channel.get_var("export_vars") or "").split(",") if v]
    call.channel.set_var("export_vars", ",".join(exported + [name]))
    return None


def _playback(call: "SimCall", arg: str) -> str:
    _pre_answer(call, "")
    seconds = playback_seconds(call, arg)
    kind = arg.split("://", 1)[0] if "://" in arg else "file"
    call.fire("PLAYBACK_START", after=[("Playback-File-Type", kind), ("Playback-File-Path", arg)])
    started = call.now()
    if _avmd_hears(call, arg) and seconds > 0.02:
        finished = call.wait_app(0.02)
        if finished:
            call.note(f"avmd hears the leg's own {arg}: a beep")
            avmd_beep(call)
            finished = call.wait_app(seconds - 0.02)
    else:
        finished = call.wait_app(seconds)
    played_ms = int((seconds if finished else min(seconds, call.now() - started)) * 1000)
    for name, value in (("playback_last_offset_pos", played_ms * 8), ("playback_seconds", played_ms // 1000),
                        ("playback_ms", played_ms), ("playback_samples", played_ms * 8)):
        call.channel.set_var(name, str(value))
    call.fire("PLAYBACK_STOP", after=[("Playback-File-Type", kind), ("Playback-File-Path", arg),
                                      ("Playback-Status", "done" if finished else "break")])
    return "FILE PLAYED"


def _speak(call: "SimCall", arg: str) -> None:
    parts = arg.split("|", 2)
    engine, text = (parts[0], parts[2]) if len(parts) == 3 else (call.channel.get_var("tts_engine"), arg)
    if not engine or f"mod_{engine}" not in call.scenario.modules:
        call.note(f"speak: TTS module mod_{engine} is not loaded: nothing is played (Invalid TTS module)")
        return None
    _pre_answer(call, "")
    call.rec.spoken.append(text)
    seconds = len(text) * call.scenario.speak_seconds_per_char
    started = call.now()
    if not call.wait_app(seconds):
        heard = int(len(text) * min(1.0, (call.now() - started) / seconds)) if seconds else 0
        call.note(f"speak cut after {heard}/{len(text)} characters: {text[:heard]!r}")
    return None


def _send_dtmf(call: "SimCall", arg: str) -> None:
    call.rec.dtmf_sent.append(arg)
    call.note(f"agent sent DTMF {arg} (send_dtmf)")
    return None


def _sleep(call: "SimCall", arg: str) -> None:
    call.wait_app(int(arg.strip() or 0) / 1000.0)
    return None


def _hangup(call: "SimCall", arg: str) -> None:
    call.hangup(arg.strip().upper() or "NORMAL_CLEARING", "controller")
    return None


def _log(call: "SimCall", arg: str) -> None:
    call.note(f"log: {arg}")
    return None


def _info(call: "SimCall", arg: str) -> None:
    return None


def _deflect(call: "SimCall", arg: str) -> None:
    call.note(f"deflect to {arg}: the caller is referred away")
    call.hangup("NORMAL_CLEARING", "deflect")
    return None


def _avmd_start(call: "SimCall", arg: str) -> None:
    if "inbound_channel=1" not in arg.replace(" ", ""):
        call.note("avmd_start: not started on an inbound channel without inbound_channel=1 (capture 14)")
        return None
    call.avmd_running = True
    fire_avmd(call, "avmd::start", [("Start-time", str(call.now_us()))], with_channel=True)
    return None


def _avmd_stop(call: "SimCall", arg: str) -> None:
    if call.avmd_running:
        call.avmd_running = False
        status = "DETECTED" if call.channel.get_var("avmd_detect") == "TRUE" else "NOTDETECTED"
        fire_avmd(call, "avmd::stop", [("Beep-Status", status), ("Total-time", "0")], with_channel=True)
    return None


def fire_avmd(call: "SimCall", subclass: str, fields: list, with_channel: bool) -> None:
    """mod_avmd events: bare, then (start/stop) again with channel data and the same Event-Sequence; that copy
    is queued on the session, so it follows the running app's CHANNEL_EXECUTE_COMPLETE (capture 14)."""
    header = call.switch.event_header("CUSTOM", call.now_us(), subclass)
    bare = [*header, ("Unique-ID", call.uuid), ("Call-command", "avmd"), *fields]
    call.fire("CUSTOM", subclass=subclass, headers=bare)
    if with_channel:
        copy = [*bare, *call.channel.data(True)]
        if call.current is not None:
            call.asr.queue(lambda: call.fire("CUSTOM", subclass=subclass, headers=copy))
        else:
            call.fire("CUSTOM", subclass=subclass, headers=copy)


# avmd::beep as capture 14 recorded it (the frequency is the tone's, 1000.454123 there).
BEEP_FIELDS = [("Beep-Status", "DETECTED"), ("Frequency", "1000.000000"), ("Frequency-variance", "0.000018"),
               ("Amplitude", "14401.345206"), ("Amplitude-variance", "27176.962574"), ("Detection-time", "0"),
               ("Detector-resolution", "1"), ("Detector-offset", "0"), ("Detector-index", "0")]


def avmd_beep(call: "SimCall") -> None:
    """avmd heard a beep: `avmd_detect` turns TRUE and avmd::beep is fired once, bare (capture 14)."""
    call.channel.set_var("avmd_detect", "TRUE")
    fire_avmd(call, "avmd::beep", BEEP_FIELDS, with_channel=False)


def _avmd_hears(call: "SimCall", path: str) -> bool:
    """avmd started with inbound_channel=1 on the (inbound) socket leg taps its WRITE stream, what the leg plays:
    a single-frequency tone it plays is a beep one frame in (capture 14: 20 ms into a 1000 Hz tone)."""
    return (call.avmd_running and call.channel.get_var("avmd_detect") != "TRUE"
            and re.match(r"^tone_stream://%\((\d{3,}),\d+,\d+(?:\.\d+)?\)", path) is not None)


def _transfer(call: "SimCall", arg: str) -> None:
    words = arg.split()
    if words:
        call.push_urgent(("transfer", words[0], words[1] if len(words) > 1 else "XML",
                          words[2] if len(words) > 2 else "default"))
    return None


APPS: dict[str, AppSpec] = {name: AppSpec("mod_dptools", handler) for name, handler in {
    "answer": _answer, "pre_answer": _pre_answer, "ring_ready": _ring_ready, "set": _set, "multiset": _multiset,
    "unset": _unset, "export": _export, "playback": _playback, "speak": _speak, "send_dtmf": _send_dtmf,
    "sleep": _sleep, "hangup": _hangup, "bridge": run_bridge, "detect_speech": detect_speech, "log": _log,
    "info": _info, "deflect": _deflect, "transfer": _transfer}.items()}
APPS["avmd_start"] = AppSpec("mod_avmd", _avmd_start)
APPS["avmd_stop"] = AppSpec("mod_avmd", _avmd_stop)


def do_transfer(call: "SimCall", destination: str, dialplan: str, context: str) -> None:
    """uuid_transfer to another socket extension (capture 12): the old socket app completes, the new
    dialplan runs ring_ready, set switchboard_agent, socket, and a second connection opens for the same uuid.

    The old session gets these events only once the new session has parked (sent `connect`), as capture 18 shows
    it (they reach it in one write, as the new session connects): a controller that waits for its socket app's
    completion to `exit` therefore ends the new park, as it does on FreeSWITCH."""
    ch = call.channel
    if not ch.up:
        return
    old_conn = call.controlling
    if old_conn is not None:
        old_conn.hold_events()
    if call.socket_app is not None:
        call.fire("CHANNEL_UNPARK")
        call.fire("CHANNEL_EXECUTE_COMPLETE", after=call.socket_app_headers())
        call.socket_app = None
    old = ch.profile
    epoch = call.now_us() // 1_000_000
    source = f"{epoch}:{uuidlib.uuid4()}:bl_xfer:{destination}/{context}/{dialplan}"
    old.index = (old.index or 1) + 1
    old.rdnis, old.destination, old.transfer_source, old.dialplan, old.context = \
        old.destination, destination, source, dialplan, context
    old.created_us = call.now_us()
    for name, value in (("max_forwards", "70"), ("transfer_history", source), ("transfer_source", source)):
        ch.set_var(name, value)
    agent = call.scenario.handoffs.get(destination)
    ch.set_var("DP_MATCH", f"ARRAY::{destination}|:{agent}" if agent else None)
    ch.state, ch.state_number = "CS_ROUTING", 2
    call.fire_callstate("RINGING")
    call.fire("CHANNEL_STATE")
    ch.state, ch.state_number = "CS_EXECUTE", 4
    call.fire_callstate("ACTIVE")
    call.fire("CHANNEL_STATE")
    if agent is None:
        call.note(f"transfer to {destination}: no handoff for it in the scenario, the dialplan finds no route")
        call.hangup("NO_ROUTE_DESTINATION", "dialplan")
        return
    call.note(f"transfer to {destination}: agent {agent} takes the call on a new connection")
    call.run_app("ring_ready", "", str(uuidlib.uuid4()), _ring_ready, by_controller=False)
    call.run_app("set", f"switchboard_agent={agent}", str(uuidlib.uuid4()), _set, by_controller=False)
    address = f"{call.addr[0]}:{call.addr[1]} async full"
    ch.set_var("current_application_response", None)
    ch.set_var("current_application", "socket")
    ch.set_var("current_application_data", address)
    socket_uuid = str(uuidlib.uuid4())
    call.fire("CHANNEL_EXECUTE", after=[("Application", "socket"), ("Application-Data", address),
                                        ("Application-UUID", socket_uuid)])
    ch.set_var("socket_host", call.addr[0])
    new_conn = call.open_connection(address)
    if new_conn is None:
        call.hangup("NORMAL_CLEARING", "dialplan")
    else:
        call.socket_app = socket_uuid
    if old_conn is not None:
        def deliver_when_parked() -> None:
            call.wait_until(lambda: new_conn is None or new_conn.connected or new_conn.closed or not ch.up,
                            CONNECT_TIMEOUT_S)
            old_conn.release_events()
        call._greenlets.append(gevent.spawn(deliver_when_parked))


def set_cdr_variables(call: "SimCall") -> None:
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
