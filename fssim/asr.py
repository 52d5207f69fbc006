"""Speech recognition on the caller's leg: the `detect_speech` app and how DETECTED_SPEECH reaches the socket.

FreeSWITCH queues a recogniser's events on the session, so where they go depends on the channel
(capture 11): with `divert_events on` the raw event goes straight to the socket, even during `speak`;
without it, an event that arrives while speak/playback runs is eaten by the play loop (lost), one that
arrives while the channel is parked is fired with channel data appended, and one that arrives during
another app waits until the channel parks again. The raw headers are those of capture 11's injected events.
After a result the recogniser stays idle until `detect_speech resume`.
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Callable

from fssim import wire
from fssim.ports import CallPort

CONTROL = ("resume", "pause", "stop", "grammar", "nogrammar", "grammaron", "grammaroff", "grammarsalloff",
           "param", "start_input_timers", "init")


class Recogniser:
    """detect_speech state (`started`, `listening`, `grammar`) and DETECTED_SPEECH delivery."""

    def __init__(self, call: CallPort) -> None:
        self.call = call
        self.started = False
        self.listening = False
        self.grammar = "default"
        self._pending: list[Callable[[], None]] = []

    def deliver(self, speech_type: str, body: str | None = None) -> str:
        """Hand one DETECTED_SPEECH to FreeSWITCH's queue; returns diverted, fired, queued or lost."""
        call = self.call
        raw = [("Command", "sendevent DETECTED_SPEECH"), ("Event-Name", "DETECTED_SPEECH"),
               ("Unique-ID", call.uuid), ("Speech-Type", speech_type)]
        if body is not None:
            raw.append(("Content-Length", str(len(body.encode("utf-8")))))
        raw.append(("Event-UUID", str(uuidlib.uuid4())))
        if call.divert:
            conn = call.controlling
            if conn is not None and conn.events_on and not conn.closed:
                conn.send(wire.event_plain(raw, body))
                return "diverted"
            return "lost"
        if call.session.agent_talking:
            return "lost"
        if call.session.app is not None:
            self.queue(lambda: call.fire("DETECTED_SPEECH", headers=[*raw, *call.channel.data(False)], body=body))
            return "queued"
        call.tick()
        call.fire("DETECTED_SPEECH", headers=[*raw, *call.channel.data(False)], body=body)
        return "fired"

    def queue(self, fire: Callable[[], None]) -> None:
        """switch_core_session_queue_event: the session fires it once the running app has returned (its
        CHANNEL_EXECUTE_COMPLETE sent). mod_avmd's channel-data copies travel this way too (capture 14)."""
        self._pending.append(fire)

    def deliver_pending(self) -> None:
        """The channel parks again: fire what was queued during an app."""
        pending, self._pending = self._pending, []
        for fire in pending:
            if self.call.channel.up:
                fire()


def detect_speech(call: CallPort, arg: str) -> None:
    """`detect_speech <mod_name> <gram_name> <gram_path> [<addr>]`, or resume/pause/stop/... on a running one."""
    words = arg.split()
    asr = call.asr
    command = words[0] if words else ""
    if command in CONTROL:
        if not asr.started:
            call.note(f"detect_speech {command}: no detect_speech is running")
        elif command == "resume":
            asr.listening = True
        elif command == "pause":
            asr.listening = False
        elif command == "stop":
            asr.started = asr.listening = False
            asr.deliver("closed")
        return None
    if len(words) < 3:
        call.note(f"detect_speech {arg!r}: usage <mod_name> <gram_name> <gram_path> [<addr>]")
        return None
    if f"mod_{command}" not in call.scenario.modules:
        call.note(f"detect_speech: ASR module mod_{command} is not loaded: nothing will be recognised")
        return None
    asr.started = asr.listening = True
    asr.grammar = words[1]
    return None
