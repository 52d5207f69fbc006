"""The simulated caller channel and the events FreeSWITCH builds from it.

The header layout of every event is the one FreeSWITCH 1.10.12 wrote in ../shared/esl-captures/:
event header, event-specific "before" headers (Bridge-A-Unique-ID...), channel data (`Channel-State` ...
`Answer-State`, `Hangup-Cause` once hung up, codecs), the `Caller-*` profile, `Other-Type`/`Other-Leg-*`
after a bridge, the `variable_*` block (not on CHANNEL_STATE/CALLSTATE/DTMF), then "after" headers
(Application...). The connect reply (CHANNEL_DATA) adds a `Channel-*` copy of the profile first (capture 04/12).
"""
from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import count
from typing import Callable, Iterable

from fssim.scenario import Scenario

Header = tuple[str, str]

CALL_STATE_NUMBERS = {"DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5,
                      "RING_WAIT": 6, "HANGUP": 7, "UNHELD": 8}
# (Event-Calling-File, -Function, -Line-Number) per event, as recorded in the captures.
CALLING = {
    "CHANNEL_DATA": ("mod_event_socket.c", "parse_command", "2021"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3846"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "301"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2944"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2967"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3445"),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", "943"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", "1213"),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3505"),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered", "3560"),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2408"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "677"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1646"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2020"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1572"),
    "CUSTOM": ("mod_avmd.c", "avmd_fire_event", "700"),
    # Not in any capture: switch_channel.c fires hold events from switch_channel_mark_hold.
    "CHANNEL_HOLD": ("switch_channel.c", "switch_channel_mark_hold", "0"),
    "CHANNEL_UNHOLD": ("switch_channel.c", "switch_channel_mark_hold", "0"),
}
# Events whose channel data stops after the Caller-* profile (no variable_* block), per the captures.
NO_VARIABLES = frozenset({"CHANNEL_STATE", "CHANNEL_CALLSTATE", "DTMF", "PRIVATE_COMMAND"})


class Switch:
    """What is common to every event of one simulated FreeSWITCH: Core-UUID, host, the sequence counter."""

    def __init__(self, hostname: str = "switchboard-sim") -> None:
        self.core_uuid = str(uuidlib.uuid4())
        self.hostname = hostname
        self._sequence = count(1000)
        self._sessions = count(1)
        # inbound event-socket sessions: each gets every event fired (name, decoded headers, frame) and keeps
        # what its subscriptions and filters let through
        self.sinks: list[Callable[[str, dict[str, str], bytes], None]] = []

    def next_session_id(self) -> str:
        return str(next(self._sessions))

    def event_header(self, name: str, when_us: int, subclass: str | None = None) -> list[Header]:
        stamp = when_us / 1e6
        local = datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
        gmt = datetime.fromtimestamp(stamp, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        where = CALLING.get(name, ("mod_event_socket.c", "parse_command", "0"))
        headers: list[Header] = [("Event-Subclass", subclass)] if subclass else []
        headers += [
            ("Event-Name", name), ("Core-UUID", self.core_uuid), ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname), ("FreeSWITCH-IPv4", "127.0.0.1"), ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", local), ("Event-Date-GMT", gmt), ("Event-Date-Timestamp", str(when_us)),
            ("Event-Calling-File", where[0]), ("Event-Calling-Function", where[1]),
            ("Event-Calling-Line-Number", where[2]), ("Event-Sequence", str(next(self._sequence))),
        ]
        return headers


@dataclass
class Profile:
    """A caller profile (`Caller-*`, `Channel-*` in the connect reply, `Other-Leg-*` after a bridge)."""

    direction: str
    number: str
    name: str | None
    destination: str
    uuid: str
    channel_name: str
    created_us: int
    dialplan: str = "xml"
    context: str = "default"
    source: str = "mod_loopback"
    callee_name: str = "Outbound Call"
    callee_number: str = "default"
    index: int | None = 1
    rdnis: str | None = None
    transfer_source: str | None = None
    times: dict[str, int] = field(default_factory=dict)

    def headers(self, prefix: str) -> list[Header]:
        out: list[Header] = [(f"{prefix}-Direction", self.direction), (f"{prefix}-Logical-Direction", "inbound"),
                             (f"{prefix}-Dialplan", self.dialplan)]
        if self.name:
            out.append((f"{prefix}-Caller-ID-Name", self.name))
        out.append((f"{prefix}-Caller-ID-Number", self.number))
        if self.name:
            out.append((f"{prefix}-Orig-Caller-ID-Name", self.name))
        out += [(f"{prefix}-Orig-Caller-ID-Number", self.number), (f"{prefix}-Callee-ID-Name", self.callee_name),
                (f"{prefix}-Callee-ID-Number", self.callee_number), (f"{prefix}-ANI", self.number),
                (f"{prefix}-Destination-Number", self.destination), (f"{prefix}-Unique-ID", self.uuid),
                (f"{prefix}-Source", self.source)]
        if self.transfer_source:
            out.append((f"{prefix}-Transfer-Source", self.transfer_source))
        out.append((f"{prefix}-Context", self.context))
        if self.rdnis:
            out.append((f"{prefix}-RDNIS", self.rdnis))
        out.append((f"{prefix}-Channel-Name", self.channel_name))
        if self.index is not None:
            out.append((f"{prefix}-Profile-Index", str(self.index)))
        out += [(f"{prefix}-Profile-Created-Time", str(self.created_us)),
                (f"{prefix}-Channel-Created-Time", str(self.times.get("created", self.created_us)))]
        for key in ("Answered", "Progress", "Progress-Media", "Hangup", "Transfer", "Resurrect", "Bridged",
                    "Last-Hold", "Hold-Accum"):
            out.append((f"{prefix}-Channel-{key}-Time" if key not in ("Last-Hold", "Hold-Accum")
                        else f"{prefix}-Channel-{key}", str(self.times.get(key.lower(), 0))))
        out += [(f"{prefix}-Screen-Bit", "true"), (f"{prefix}-Privacy-Hide-Name", "false"),
                (f"{prefix}-Privacy-Hide-Number", "false")]
        return out


class Channel:
    """State of the caller's leg: states, profile, variables (set moves a variable to the end, as FS does)."""

    def __init__(self, switch: Switch, uuid: str, profile: Profile, now_us: Callable[[], int]) -> None:
        self.switch = switch
        self.uuid = uuid
        self.name = profile.channel_name
        self.profile = profile
        self.now_us = now_us
        self.state = "CS_EXECUTE"
        self.state_number = 4
        self.call_state = "RINGING"
        self.answer_state = "ringing"
        self.hangup_cause: str | None = None
        self.other_leg: Profile | None = None
        self.variables: dict[str, str] = {}

    @property
    def up(self) -> bool:
        return self.hangup_cause is None

    def set_var(self, name: str, value: str | None) -> None:
        """switch_channel_set_variable: delete, then add at the bottom unless the value is empty."""
        self.variables.pop(name, None)
        if value not in (None, ""):
            self.variables[name] = value

    def get_var(self, name: str) -> str | None:
        return self.variables.get(name)

    def true_var(self, name: str) -> bool:
        """switch_true: yes/on/true/allow/enable/active or a non-zero number."""
        value = (self.variables.get(name) or "").strip().lower()
        return value in ("yes", "on", "true", "t", "allow", "enable", "enabled", "active") or (
            value.lstrip("-").isdigit() and int(value) != 0)

    def mark(self, key: str) -> None:
        """Stamp a profile time (answered, progress, progress-media, hangup, transfer, bridged, last-hold)."""
        self.profile.times[key] = self.now_us()

    def data(self, variables: bool = True) -> list[Header]:
        """switch_channel_event_set_data: channel state, profile, other leg, variables."""
        out: list[Header] = [
            ("Channel-State", self.state), ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", str(self.state_number)), ("Channel-Name", self.name), ("Unique-ID", self.uuid),
            ("Call-Direction", self.profile.direction), ("Presence-Call-Direction", self.profile.direction),
            ("Channel-HIT-Dialplan", "true"), ("Channel-Call-UUID", self.uuid), ("Answer-State", self.answer_state),
        ]
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        codec = self.variables.get("read_codec", "L16")
        for side in ("Read", "Write"):
            out += [(f"Channel-{side}-Codec-Name", codec), (f"Channel-{side}-Codec-Rate", "8000"),
                    (f"Channel-{side}-Codec-Bit-Rate", "128000")]
        out += self.profile.headers("Caller")
        if self.other_leg is not None:
            out.append(("Other-Type", "originatee"))
            out += self.other_leg.headers("Other-Leg")
        if variables:
            out += [(f"variable_{name}", value) for name, value in self.variables.items()]
        return out

    def event(self, name: str, before: Iterable[Header] = (), after: Iterable[Header] = (),
              variables: bool | None = None, subclass: str | None = None) -> list[Header]:
        """The full header list of one channel event, ready for `wire.event_plain`."""
        with_vars = name not in NO_VARIABLES if variables is None else variables
        return [*self.switch.event_header(name, self.now_us(), subclass), *before, *self.data(with_vars), *after]

    def connect_headers(self) -> list[Header]:
        """The CHANNEL_DATA block of the connect reply: event header, `Channel-*` profile copy, channel data."""
        return [*self.switch.event_header("CHANNEL_DATA", self.now_us()), *self.profile.headers("Channel"),
                *self.data(True)]


def caller_channel(switch: Switch, scenario: Scenario, uuid: str, addr: tuple[str, int], now_us: Callable[[], int],
                   socket_data: str) -> Channel:
    """The socket leg as FreeSWITCH hands it over: the template of capture 04 (ringing) or 12 (answered)
    with the scenario's caller, destination, agent, SIP X- headers and preset variables."""
    s = scenario
    created = now_us()
    name = f"loopback/{s.destination}-b"
    profile = Profile(s.direction, s.caller_number, s.caller_name, s.destination, uuid, name, created)
    profile.times.update(created=created, progress=created)
    ch = Channel(switch, uuid, profile, now_us)
    for key, value in [("direction", s.direction), ("uuid", uuid), ("session_id", switch.next_session_id()),
                       ("channel_name", name), ("read_codec", "L16"), ("read_rate", "8000"),
                       ("write_codec", "L16"), ("write_rate", "8000"),
                       ("origination_caller_id_number", s.caller_number),
                       ("origination_caller_id_name", s.caller_name),
                       ("other_loopback_leg_uuid", str(uuidlib.uuid4())), ("loopback_leg", "B")]:
        ch.set_var(key, value)
    for header, value in s.sip_headers.items():
        ch.set_var(f"sip_h_{header}", value)
    if s.agent:
        ch.set_var("DP_MATCH", f"ARRAY::{s.destination}|:{s.agent}")
    ch.set_var("call_uuid", uuid)
    ch.set_var("switchboard_agent", s.agent)
    for key, value in s.variables.items():
        ch.set_var(key, value)
    if s.answered:
        ch.answer_state, ch.call_state = "answered", "ACTIVE"
        ch.mark("answered")
        ch.set_var("endpoint_disposition", "ANSWER")
    ch.set_var("current_application_data", socket_data)
    ch.set_var("current_application", "socket")
    ch.set_var("socket_host", addr[0])
    return ch
