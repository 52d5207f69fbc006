"""The dialplan applications the simulator runs for `sendmsg execute`, each owned by its module.

An app whose module is not loaded does not exist: FreeSWITCH answers `+OK` and hangs the channel up with
DESTINATION_OUT_OF_ORDER (capture 06). `speak` and `detect_speech` live in mod_dptools; when their engine
module (mod_flite, mod_unimrcp...) is missing they fail quietly, as switch_ivr_speak_text does: the call
goes on and nothing is played or heard. Each handler returns the Application-Response (None for `_none_`).
The bigger apps have their own modules: bridge.py, asr.py (detect_speech), avmd.py (mod_avmd).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fssim.asr import detect_speech
from fssim.avmd import avmd_beep, avmd_hears, avmd_start, avmd_stop
from fssim.bridge import run_bridge
from fssim.dtmf import send_dtmf
from fssim.ports import AppHandler, CallPort


@dataclass(frozen=True)
class AppSpec:
    """An application and the module that must be loaded for it to exist."""

    module: str
    handler: AppHandler


def playback_seconds(call: CallPort, path: str) -> float:
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


def _answer(call: CallPort, arg: str) -> None:
    call.answer()
    return None


def _pre_answer(call: CallPort, arg: str) -> None:
    ch = call.channel
    if ch.answer_state == "ringing":
        ch.answer_state = "early"
        ch.mark("progress-media")
        call.fire("CHANNEL_PROGRESS_MEDIA")
        call.fire_callstate("EARLY")
    return None


def _ring_ready(call: CallPort, arg: str) -> None:
    ch = call.channel
    if not ch.profile.times.get("progress"):
        ch.mark("progress")
        call.fire("CHANNEL_PROGRESS")
    return None


def _set(call: CallPort, arg: str) -> None:
    name, _, value = arg.partition("=")
    call.channel.set_var(name.strip(), value or None)
    return None


def _multiset(call: CallPort, arg: str) -> None:
    delimiter = " "
    if arg.startswith("^^") and len(arg) > 2:
        delimiter, arg = arg[2], arg[3:]
    for pair in arg.split(delimiter):
        if pair.strip():
            _set(call, pair)
    return None


def _unset(call: CallPort, arg: str) -> None:
    call.channel.set_var(arg.strip(), None)
    return None


def _export(call: CallPort, arg: str) -> None:
    local = not arg.startswith("nolocal:")
    pair = arg.split(":", 1)[1] if not local else arg
    name = pair.partition("=")[0].strip()
    if local:
        _set(call, pair)
    exported = [v for v in (call.channel.get_var("export_vars") or "").split(",") if v]
    call.channel.set_var("export_vars", ",".join(exported + [name]))
    return None


def _playback(call: CallPort, arg: str) -> str:
    _pre_answer(call, "")
    seconds = playback_seconds(call, arg)
    kind = arg.split("://", 1)[0] if "://" in arg else "file"
    call.fire("PLAYBACK_START", after=[("Playback-File-Type", kind), ("Playback-File-Path", arg)])
    started = call.now()
    if avmd_hears(call, arg) and seconds > 0.02:
        finished = call.session.wait_app(0.02)
        if finished:
            call.note(f"avmd hears the leg's own {arg}: a beep")
            avmd_beep(call)
            finished = call.session.wait_app(seconds - 0.02)
    else:
        finished = call.session.wait_app(seconds)
    played_ms = int((seconds if finished else min(seconds, call.now() - started)) * 1000)
    for name, value in (("playback_last_offset_pos", played_ms * 8), ("playback_seconds", played_ms // 1000),
                        ("playback_ms", played_ms), ("playback_samples", played_ms * 8)):
        call.channel.set_var(name, str(value))
    call.fire("PLAYBACK_STOP", after=[("Playback-File-Type", kind), ("Playback-File-Path", arg),
                                      ("Playback-Status", "done" if finished else "break")])
    return "FILE PLAYED"


def _speak(call: CallPort, arg: str) -> None:
    parts = arg.split("|", 2)
    engine, text = (parts[0], parts[2]) if len(parts) == 3 else (call.channel.get_var("tts_engine"), arg)
    if not engine or f"mod_{engine}" not in call.scenario.modules:
        call.note(f"speak: TTS module mod_{engine} is not loaded: nothing is played (Invalid TTS module)")
        return None
    _pre_answer(call, "")
    call.rec.spoken.append(text)
    seconds = len(text) * call.scenario.speak_seconds_per_char
    started = call.now()
    if not call.session.wait_app(seconds):
        heard = int(len(text) * min(1.0, (call.now() - started) / seconds)) if seconds else 0
        call.note(f"speak cut after {heard}/{len(text)} characters: {text[:heard]!r}")
    return None


def _sleep(call: CallPort, arg: str) -> None:
    call.session.wait_app(int(arg.strip() or 0) / 1000.0)
    return None


def _hangup(call: CallPort, arg: str) -> None:
    call.hangup(arg.strip().upper() or "NORMAL_CLEARING", "controller")
    return None


def _log(call: CallPort, arg: str) -> None:
    call.note(f"log: {arg}")
    return None


def _info(call: CallPort, arg: str) -> None:
    return None


def _start_dtmf_generate(call: CallPort, arg: str) -> None:
    call.note("start_dtmf_generate: the channel's DTMF is played inband from now on")
    return None


def _deflect(call: CallPort, arg: str) -> None:
    call.note(f"deflect to {arg}: the caller is referred away")
    call.hangup("NORMAL_CLEARING", "deflect")
    return None


def _transfer(call: CallPort, arg: str) -> None:
    words = arg.split()
    if words:
        call.session.push_urgent(("transfer", words[0], words[1] if len(words) > 1 else "XML",
                                  words[2] if len(words) > 2 else "default"))
    return None


APPS: dict[str, AppSpec] = {name: AppSpec("mod_dptools", handler) for name, handler in {
    "answer": _answer, "pre_answer": _pre_answer, "ring_ready": _ring_ready, "set": _set, "multiset": _multiset,
    "unset": _unset, "export": _export, "playback": _playback, "speak": _speak, "send_dtmf": send_dtmf,
    "sleep": _sleep, "hangup": _hangup, "bridge": run_bridge, "detect_speech": detect_speech, "log": _log,
    "info": _info, "start_dtmf_generate": _start_dtmf_generate, "deflect": _deflect, "transfer": _transfer}.items()}
APPS["avmd_start"] = AppSpec("mod_avmd", avmd_start)
APPS["avmd_stop"] = AppSpec("mod_avmd", avmd_stop)
