"""What one simulated call did, for assertions: every frame both ways, commands, apps, bridges, notes.

Times are call seconds since the simulator dialled the controller (real seconds divided by `time_scale`),
so a timeline reads the same at any speed. Directions are the simulator's: "in" came from the controller,
"out" went to it. `hangup_by` says who ended the call: controller (hangup app, sendmsg hangup, uuid_kill),
caller (script), bridge (a failed bridge without continue_on_fail, or hangup_after_bridge), dialplan (the
socket closed or a transfer found no route), simulator (a missing module, max_duration_s), deflect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fssim.dialstring import DialLeg
from fssim.wire import Command, Frame, parse_event_body, parse_frame


class WireFrame(NamedTuple):
    """One frame on the wire: unpacks as (t, direction, connection, raw, headers, body)."""

    t: float
    direction: str
    connection: str
    raw: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def frame(self) -> Frame:
        return parse_frame(self.raw)

    @property
    def event(self) -> dict[str, str]:
        return self.frame.event

    @property
    def event_name(self) -> str | None:
        return self.event.get("Event-Name")


@dataclass
class ReceivedCommand:
    t: float
    connection: str
    name: str
    arg: str
    headers: dict[str, str]
    body: bytes
    app: str | None
    app_arg: str | None


@dataclass
class BridgeAttempt:
    """One `bridge`: the dial string as received, its parsed legs, and how it ended."""

    t: float
    dial_string: str
    global_variables: dict[str, str]
    legs: list[DialLeg]
    outcome: str = "pending"
    disposition: str | None = None
    answered_leg: str | None = None
    leg_timeout_s: float | None = None


@dataclass
class CallRecording:
    scenario: str
    uuid: str
    frames: list[WireFrame] = field(default_factory=list)
    commands: list[ReceivedCommand] = field(default_factory=list)
    executed_apps: list[tuple[str, str | None]] = field(default_factory=list)
    bridges: list[BridgeAttempt] = field(default_factory=list)
    hangup_cause: str | None = None
    hangup_by: str | None = None
    spoken: list[str] = field(default_factory=list)
    heard: list[tuple[str, bool]] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)
    unicast_packets: list[int] = field(default_factory=list)  # datagrams each unicast stream sent before it ended
    notes: list[tuple[float, str]] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)
    error: str | None = None

    def note(self, t: float, text: str) -> None:
        self.notes.append((t, text))

    def events(self, name: str | None = None, connection: str | None = None) -> list[dict[str, str]]:
        """Decoded events sent to the controller, optionally one name / one connection."""
        out = []
        for frame in self.frames:
            if frame.direction != "out" or (connection and frame.connection != connection):
                continue
            if frame.headers.get("Content-Type") != "text/event-plain":
                continue
            event = parse_event_body(frame.body).headers
            if name is None or event.get("Event-Name") == name:
                out.append(event)
        return out

    def timeline(self) -> list[str]:
        """Readable lines: `+0.012s conn1 <- connect`, `+0.035s conn1 -> CHANNEL_EXECUTE answer`, notes `~~`."""
        rows: list[tuple[float, int, str]] = []
        for index, frame in enumerate(self.frames):
            arrow = "<-" if frame.direction == "in" else "->"
            rows.append((frame.t, index, f"{frame.connection} {arrow} {_describe(frame)}"))
        for index, (t, text) in enumerate(self.notes):
            rows.append((t, len(self.frames) + index, f"~~ {text}"))
        return [f"+{t:.3f}s  {text}" for t, _, text in sorted(rows)]

    def summary(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "uuid": self.uuid, "hangup_cause": self.hangup_cause,
                "hangup_by": self.hangup_by, "apps": [app for app, _ in self.executed_apps],
                "bridges": [(b.dial_string, b.outcome) for b in self.bridges], "error": self.error}


def _describe(frame: WireFrame) -> str:
    if frame.direction == "in":
        text = frame.raw.decode("utf-8", "replace").split("\n\n", 1)[0].split("\n")
        first = text[0]
        if first.startswith("sendmsg"):
            fields = dict(line.split(": ", 1) for line in text[1:] if ": " in line)
            lowered = {k.lower(): v for k, v in fields.items()}
            if lowered.get("call-command") == "execute":
                body = frame.raw.split(b"\n\n", 1)[1].decode("utf-8", "replace") if b"\n\n" in frame.raw else ""
                arg = lowered.get("execute-app-arg") or body
                return f"sendmsg execute {lowered.get('execute-app-name')} {arg}".rstrip()
            return f"sendmsg {lowered.get('call-command')} {lowered.get('hangup-cause', '')}".rstrip()
        return first
    content_type = frame.headers.get("Content-Type")
    if content_type == "text/event-plain":
        event = parse_event_body(frame.body).headers
        detail = event.get("Application") or event.get("Speech-Type") or event.get("DTMF-Digit") \
            or event.get("Hangup-Cause") or event.get("Event-Subclass") or ""
        return f"{event.get('Event-Name')} {detail}".rstrip()
    if content_type == "command/reply":
        if "Event-Name" in frame.headers:
            return f"connect reply (Answer-State: {frame.headers.get('Answer-State')})"
        return f"reply {frame.headers.get('Reply-Text')}"
    if content_type == "api/response":
        return f"api {frame.body.decode('utf-8', 'replace').strip()[:60]}"
    if content_type == "text/disconnect-notice":
        return f"disconnect-notice {frame.headers.get('Content-Disposition', '')}".rstrip()
    return f"raw {frame.raw[:40]!r}"


def command_record(t: float, connection: str, command: Command) -> ReceivedCommand:
    return ReceivedCommand(t, connection, command.name, command.arg, command.headers, command.body,
                           command.app, command.app_arg)
