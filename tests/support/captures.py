"""What the capture conformance tests share: the captured and simulated events of one connection, compared by
name, header layout and value, and a scenario run against a throwaway controller."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import gevent
from gevent.queue import Empty

from fssim import Scenario, Simulator
from fssim.captures import CaptureFrame, load_capture
from fssim.wire import parse_event_body, url_decode
from fssim.connection import MYEVENTS

try:
    from tests.support.simulator import WAIT_S, FakeController, FakeSession
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import WAIT_S, FakeController, FakeSession

SCALE = 0.02
ESL_TEST = {"number": "+33612345678", "name": "ESL Test"}


def captured_events(name: str, connection: str = "outbound") -> list[list[tuple[str, str]]]:
    """Decoded header pairs of the plain events one capture connection received, in order."""
    return [parse_event_body(f.frame.body).pairs for f in load_capture(name)
            if f.connection == connection and f.frame.content_type == "text/event-plain"]


def simulated_events(session: FakeSession, raw_start: int = 0) -> list[list[tuple[str, str]]]:
    return [parse_event_body(raw.partition(b"\n\n")[2]).pairs for raw in session.raw[raw_start:]
            if raw.startswith(b"Content-Length") and b"text/event-plain" in raw.partition(b"\n\n")[0]]


def names(events: list[list[tuple[str, str]]]) -> list[str]:
    return [dict(pairs)["Event-Name"] for pairs in events]


def layout(pairs: list[tuple[str, str]]) -> list[str]:
    """Header names in order, variables left out (they depend on the call)."""
    return [name for name, _ in pairs if not name.startswith("variable_")]


def myevents_only(events):
    return [pairs for pairs in events if dict(pairs)["Event-Name"] in MYEVENTS]


def assert_same_layouts(simulated, captured):
    for ours, theirs in zip(simulated, captured, strict=True):
        assert layout(ours) == layout(theirs), dict(theirs)["Event-Name"]


def run(scenario: dict, handler) -> tuple:
    with FakeController(handler) as controller:
        recording = Simulator(controller.addr, time_scale=SCALE).run(Scenario.from_dict(scenario))
    assert not controller.errors, controller.errors
    return recording, controller.sessions


# -- replaying a capture's own commands -----------------------------------------------------------------------
# The tests below send what the capture's controller side sent, read from the file, each command once the
# simulator has delivered as many events (CHANNEL_PARK apart: it races the first subscription in every capture)
# as FreeSWITCH had when the controller sent it.

def event_pairs(frame) -> list[tuple[str, str]] | None:
    """The decoded header pairs of a captured plain or json event frame (json has no URL encoding), else None."""
    if frame.frame.content_type == "text/event-plain":
        return parse_event_body(frame.frame.body).pairs
    if frame.frame.content_type == "text/event-json":
        return [(k, v) for k, v in json.loads(frame.frame.body, object_pairs_hook=list) if k != "_body"]
    return None


def captured_any_events(name: str, connection: str = "outbound") -> list[list[tuple[str, str]]]:
    return [pairs for f in load_capture(name) if f.connection == connection and (pairs := event_pairs(f))]


def without_park(events):
    return [pairs for pairs in events if dict(pairs)["Event-Name"] != "CHANNEL_PARK"]


@dataclass
class Sent:
    """One frame the capture's controller sent, the events it had received by then, and FreeSWITCH's reply."""

    text: str
    events_before: int
    reply: CaptureFrame | None = None  # FreeSWITCH's answer: command/reply, api/response or the connect data


def commands_of(name: str, connection: str = "outbound") -> list[Sent]:
    out: list[Sent] = []
    seen = 0
    for f in load_capture(name):
        if f.connection != connection:
            continue
        if f.direction == "sent":
            seen = 0 if f.raw.startswith(b"connect") else seen  # a new session (capture 15 has two)
            out.append(Sent(f.raw.decode(), seen))
        elif (pairs := event_pairs(f)) is not None:
            seen += dict(pairs)["Event-Name"] != "CHANNEL_PARK"
        elif f.frame.content_type in ("command/reply", "api/response") and out and out[-1].reply is None:
            out[-1].reply = f
    return out


def reply_text(frame) -> str:
    """What a reply says: the Reply-Text of a command/reply, the body of an api/response."""
    if frame.content_type == "api/response":
        return frame.body.decode()
    return url_decode(frame.headers.get("Reply-Text", ""))


def wait_for_events(s: FakeSession, count: int) -> None:
    deadline = gevent.get_hub().loop.now() + WAIT_S
    while len([e for e in s.events if e["Event-Name"] != "CHANNEL_PARK"]) < count:
        remaining = deadline - gevent.get_hub().loop.now()
        assert remaining > 0 and not s.closed.is_set(), \
            f"waited for {count} events, got {[e['Event-Name'] for e in s.events]}"
        s._new.clear()
        s._new.wait(min(remaining, 0.5))


def replay(s: FakeSession, commands: list[Sent], after=None) -> list[tuple[str, str]]:
    """Send each captured command (the captured socket-leg uuid swapped for ours) and read its reply;
    returns (FreeSWITCH's reply, the simulator's reply) for each, with the captured uuid swapped too.
    `after(sent)`, if given, runs once each command has its reply (to look at the call in between)."""
    swap: dict[str, str] = {}
    out = []
    for sent in commands:
        wait_for_events(s, sent.events_before)
        text = sent.text
        for theirs, ours in swap.items():
            text = text.replace(theirs, ours)
        s.send(text)
        try:
            got = s.replies.get(timeout=WAIT_S)
        except Empty:
            raise AssertionError(f"no reply to {text!r}") from None
        if text.startswith("connect"):
            s.channel = got.event
            swap[sent.reply.frame.event["Unique-ID"]] = s.channel["Unique-ID"]
        theirs = reply_text(sent.reply.frame)
        for old, new in swap.items():
            theirs = theirs.replace(old, new)
        out.append((theirs, reply_text(got)))
        if after is not None:
            after(sent)
    return out


def assert_same_values(simulated, captured, *keys: str) -> None:
    """Event by event, the same value (or absence) for each key; the socket app's address is the test's own."""
    def value(pairs, key):
        found = dict(pairs).get(key)
        return re.sub(r"^127\.0\.0\.1:\d+ ", "127.0.0.1:<port> ", found) if found else found

    for ours, theirs in zip(simulated, captured, strict=True):
        for key in keys:
            assert value(ours, key) == value(theirs, key), (dict(theirs)["Event-Name"], key)


def notices_of(name: str, connection: str = "outbound") -> list[tuple[str | None, str | None]]:
    return [(f.frame.headers.get("Content-Disposition"), f.frame.headers.get("Linger-Time"))
            for f in load_capture(name) if f.connection == connection
            and f.frame.content_type == "text/disconnect-notice"]
