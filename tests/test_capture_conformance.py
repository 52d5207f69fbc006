"""The simulator against the real FreeSWITCH 1.10.12 transcripts in ../shared/esl-captures/.

First the capture reader and the frame writer (every captured event is rebuilt byte for byte), then the
simulator replays the controller side of captures 02, 04, 07, 09, 10, 11, 12 and 16 and must produce the
same events in the same order, with the same header names (variables apart) and the same key values.
Captures 01, 03, 05, 06, 08, 14, 15, 16b and 17 are replayed from the files themselves (`commands_of`,
`replay`); each of those tests starts with what it deliberately leaves out and the gaps it knows of.
Captures 13 and 18 (how a socket session starts, and how it lets go of its channel) are in
test_capture_conformance_sessions.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import gevent
import gevent.socket
import pytest
from gevent.queue import Empty

from controller.simulator import Scenario, Simulator
from controller.simulator.captures import (CaptureFrame, capture_path, captures_dir, load_capture,
                                          parse_capture)
from controller.simulator.connection import MYEVENTS
from controller.simulator.inbound import InboundServer
from controller.simulator.wire import (api_response, command_reply, connect_reply, disconnect_notice,
                                       event_plain, linger_notice, parse_event_body, url_decode)

try:
    from simulator_support import WAIT_S, FakeController, FakeSession
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import WAIT_S, FakeController, FakeSession

try:
    CAPTURES = captures_dir()
except FileNotFoundError as missing:
    pytest.skip(str(missing), allow_module_level=True)

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


def test_every_capture_frame_rebuilds_to_its_recorded_length():
    for path in sorted(CAPTURES.glob("*.txt")):
        if path.name == "README.md":
            continue
        frames = parse_capture(path)
        markers = sum(1 for line in path.read_text().splitlines() if line.startswith("### "))
        assert len(frames) == markers, path.name
        assert all(len(frame.raw) == frame.length for frame in frames)


def test_the_writer_rebuilds_every_captured_plain_event_byte_for_byte():
    count = 0
    for path in sorted(CAPTURES.glob("[0-9]*.txt")):
        for frame in parse_capture(path):
            if frame.direction != "recv" or frame.frame.content_type != "text/event-plain":
                continue
            parsed = parse_event_body(frame.frame.body)
            pairs, body = parsed.pairs, None
            if "Content-Length" in parsed.headers:
                own = max(i for i, (name, _) in enumerate(pairs) if name == "Content-Length")
                pairs, body = pairs[:own] + pairs[own + 1:], parsed.body.decode()
            assert event_plain(pairs, body) == frame.raw, f"{path.name} #{frame.seq}"
            count += 1
    assert count > 300


def test_the_writer_rebuilds_captured_replies_notices_and_connect_data():
    frames = {(f.frame.headers.get("Content-Disposition"), f.connection): f for f in load_capture("02")
              if f.frame.content_type == "text/disconnect-notice"}
    linger = frames[("linger", "outbound")].frame.headers
    assert linger_notice(linger["Controlled-Session-UUID"], linger["Channel-Name"], -1) == \
        frames[("linger", "outbound")].raw
    assert disconnect_notice(linger["Controlled-Session-UUID"]) == frames[("disconnect", "outbound")].raw
    assert disconnect_notice(None) == frames[(None, "inbound-ctl")].raw
    raws = {f.raw for f in load_capture("02") if f.direction == "recv"}
    assert command_reply("+OK Events Enabled") in raws and command_reply("+OK will linger") in raws
    assert api_response("+OK\n") in raws and api_response("+33612345678") in raws
    connect = next(f for f in load_capture("04") if f.frame.headers.get("Event-Name") == "CHANNEL_DATA")
    pairs = [(line.split(": ", 1)[0], url_decode(line.split(": ", 1)[1]))
             for line in connect.raw.decode().split("\n") if ": " in line]
    assert connect_reply(pairs[:-4]) == connect.raw


def test_a_preanswered_call_matches_capture_04_from_connect_to_the_disconnect_notice():
    def controller(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.command("event plain CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER")
        assert s.api(f"uuid_getvar {s.channel['Unique-ID']} answer_state") == "_undef_"
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: pre_answer\n\n")
        s.replies.get(timeout=5)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="pre_answer")
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n")
        s.replies.get(timeout=5)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="answer")
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: hangup\nexecute-app-arg: NORMAL_CLEARING\n\n")
        s.wait_closed()

    rec, (session,) = run({"name": "04", "caller": ESL_TEST,
                           "destination": "agent_preanswer", "end": "wait"}, controller)
    captured = next(f for f in load_capture("04") if f.frame.headers.get("Event-Name") == "CHANNEL_DATA")
    ours = next(f for f in rec.frames if f.headers.get("Event-Name") == "CHANNEL_DATA")
    assert [n for n in ours.headers if not n.startswith("variable_")] == \
           [n for n in captured.frame.headers if not n.startswith("variable_")]
    assert [n for n in ours.headers if n.startswith("variable_")] == \
           [n for n in captured.frame.headers if n.startswith("variable_")]
    for header in ("Answer-State", "Channel-Name", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number",
                   "Caller-Destination-Number", "Reply-Text", "Socket-Mode", "Control", "Channel-Call-State"):
        assert ours.headers[header] == captured.frame.headers[header], header
    simulated = [e for e in simulated_events(session) if dict(e)["Event-Name"] != "CHANNEL_PARK"]
    assert names(simulated) == names(captured_events("04"))
    assert_same_layouts(simulated, captured_events("04"))
    assert [n.headers["Content-Disposition"] for n in session.notices] == ["disconnect"]
    assert rec.hangup_cause == "NORMAL_CLEARING" and rec.hangup_by == "controller"


def test_a_bridge_without_continue_on_fail_matches_capture_07():
    def controller(s: FakeSession) -> None:
        s.connect()
        s.command("myevents")
        s.command("linger 2")
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: answer\n\n")
        s.replies.get(timeout=5)
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: bridge\n"
               "execute-app-arg: {leg_timeout=5,sip_h_X-Test=abc}loopback/noanswer/default\n\n")
        s.replies.get(timeout=5)
        s.wait_closed()

    rec, (session,) = run({"name": "07", "caller": ESL_TEST, "targets": {"noanswer": "no_answer"}, "end": "wait"},
                          controller)
    simulated, captured = simulated_events(session), captured_events("07")
    assert names(simulated) == names(captured)
    assert_same_layouts(simulated, captured)
    complete = dict(simulated[-6])
    assert complete["Application"] == "bridge" and complete["Hangup-Cause"] == "ALLOTTED_TIMEOUT"
    for variable in ("originate_disposition", "DIALSTATUS", "originate_failed_cause", "last_bridge_hangup_cause"):
        assert complete[f"variable_{variable}"] == "ALLOTTED_TIMEOUT"
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           [("linger", "2"), ("disconnect", None)]
    assert session.notices[1].body == b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def test_a_session_like_capture_02_keeps_event_uuids_reports_dtmf_and_survives_a_timed_out_bridge():
    def controller(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.command("linger")
        s.execute("answer", app_uuid="aaaaaaaa-0000-0000-0000-000000000001")
        s.execute("playback", "tone_stream://%(1000,0,440)", lock=False, body_form=False)
        s.wait_event("DTMF", DTMF_Digit="6")
        s.execute("set", "continue_on_fail=true", body_form=False)
        s.execute("bridge", "{leg_timeout=5,sip_h_X-Test=abc}loopback/noanswer/default",
                  app_uuid="aaaaaaaa-0000-0000-0000-000000000003", lock=False, body_form=False)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="bridge")
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.replies.get(timeout=5)
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        gevent.sleep(0.05)
        assert s.command("exit").headers["Reply-Text"] == "+OK bye"
        s.wait_closed()

    rec, (session,) = run({"name": "02", "caller": ESL_TEST, "targets": {"noanswer": "no_answer"}, "end": "wait",
                           "script": [{"wait_for": {"app": "playback"}}, {"dtmf": "456", "after": 0}]}, controller)
    captured = myevents_only(captured_events("02"))
    simulated = simulated_events(session)
    answer = [dict(e) for e in simulated if dict(e).get("Application") == "answer"]
    assert {e["Application-UUID"] for e in answer} == {"aaaaaaaa-0000-0000-0000-000000000001"}
    dtmf = [e for e in simulated if dict(e)["Event-Name"] == "DTMF"]
    assert [dict(e)["DTMF-Digit"] for e in dtmf] == ["4", "5", "6"]
    assert layout(dtmf[0]) == layout(next(e for e in captured if dict(e)["Event-Name"] == "DTMF"))
    bridge = [dict(e) for e in simulated if dict(e).get("Application") == "bridge"][-1]
    assert bridge["Application-UUID"] == "aaaaaaaa-0000-0000-0000-000000000003"
    assert bridge["variable_originate_disposition"] == "ALLOTTED_TIMEOUT" and "Hangup-Cause" not in bridge
    tail = ["CHANNEL_HANGUP", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_STATE", "CHANNEL_STATE",
            "CHANNEL_HANGUP_COMPLETE"]
    assert names(simulated)[-6:] == tail == names(captured)[-6:]
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           [("linger", "-1"), ("disconnect", None)]


def test_an_answered_bridge_matches_capture_09_and_hands_the_caller_back():
    peer = "09090909-0909-4909-8909-090909090909"

    def controller(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.command("linger")
        s.execute("answer")
        s.execute("multiset", "continue_on_fail=true hangup_after_bridge=false")
        done = s.execute("bridge", f"{{ignore_early_media=true,origination_uuid={peer}}}"
                                   "[leg_timeout=10,sip_h_X-Test=abc]loopback/sbt-answer/default")
        s.wait_event("CHANNEL_BRIDGE")
        assert s.api(f"uuid_getvar {s.channel['Unique-ID']} bridge_uuid") == peer
        assert s.api(f"uuid_getvar {peer} sip_h_X-Test") == "abc"
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        assert s.api(f"uuid_getvar {s.channel['Unique-ID']} last_bridge_hangup_cause") == "NORMAL_CLEARING"
        s.execute("playback", "tone_stream://%(500,0,660)", body_form=False)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="playback")
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        gevent.sleep(0.05)
        s.command("exit")
        s.wait_closed()

    rec, (session,) = run({"name": "09", "agent": "bridge09", "end": "wait",
                           "targets": {"sbt-answer": {"answer_after_s": 0.02, "talk_s": 3}}}, controller)
    simulated, captured = simulated_events(session), captured_events("09")
    assert names(simulated) == names(captured)
    assert_same_layouts(simulated, captured)
    bridge = dict(next(e for e in simulated if dict(e)["Event-Name"] == "CHANNEL_BRIDGE"))
    assert (bridge["Bridge-A-Unique-ID"], bridge["Bridge-B-Unique-ID"]) == (rec.uuid, peer)
    complete = dict(next(e for e in simulated if dict(e).get("Application") == "bridge"
                         and dict(e)["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"))
    expected = dict(next(e for e in captured if dict(e).get("Application") == "bridge"
                         and dict(e)["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"))
    for key in ("Application-Response", "variable_originate_disposition", "variable_DIALSTATUS",
                "variable_originate_causes", "variable_bridge_hangup_cause", "variable_last_bridge_hangup_cause",
                "variable_bridge_uuid", "variable_last_bridge_to", "Other-Type", "Other-Leg-Unique-ID"):
        assert complete[key] == expected[key], key
    assert rec.bridges[0].outcome == "answered" and rec.bridges[0].legs[0].sip_headers == {"X-Test": "abc"}


def test_busy_then_rejected_bridges_report_like_capture_10():
    def controller(s: FakeSession) -> None:
        s.connect()
        s.command("myevents")
        s.command("linger")
        s.execute("answer")
        s.execute("set", "continue_on_fail=true")
        s.execute("bridge", "[leg_timeout=10]loopback/sbt-busy/default")
        s.execute("bridge", "[leg_timeout=10]loopback/sbt-reject/default")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_Data="[leg_timeout=10]loopback/sbt-reject/default")
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        s.command("exit")
        s.wait_closed()

    rec, (session,) = run({"name": "10", "end": "wait", "targets": {"sbt-busy": "busy", "sbt-reject": "reject"}},
                          controller)
    simulated = simulated_events(session)
    ours = [dict(e) for e in simulated if dict(e).get("Application") == "bridge"
            and dict(e)["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]
    theirs = [dict(e) for e in captured_events("10") if dict(e).get("Application") == "bridge"
              and dict(e)["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]
    for mine, real in zip(ours, theirs, strict=True):
        for key in ("originate_disposition", "DIALSTATUS", "originate_failed_cause", "last_bridge_hangup_cause"):
            assert mine[f"variable_{key}"] == real[f"variable_{key}"], key
        assert "variable_bridge_hangup_cause" not in mine
    assert ours[1]["variable_originate_causes"].startswith("ARRAY::") and ours[1]["variable_originate_causes"] \
        .endswith(";CALL_REJECTED")
    assert "CHANNEL_BRIDGE" not in names(simulated)


def test_sip_gateway_outcomes_carry_the_sip_variables_of_capture_16():
    legs = {n: f"{{ignore_early_media=true,origination_uuid=16161616-0000-4000-8000-00000000000{n}}}"
               f"[leg_timeout=6,sip_h_X-Test=abc,sip_h_X-Call-Reason=support]sofia/gateway/sbtest/+3310000000{n}"
            for n in (1, 2, 3, 5, 4)}

    def controller(s: FakeSession) -> None:
        s.connect()
        s.command("myevents")
        s.command("linger")
        s.execute("answer")
        s.execute("multiset", "continue_on_fail=true hangup_after_bridge=false")
        for number, dial in legs.items():
            done = s.execute("bridge", dial)
            s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        s.command("exit")
        s.wait_closed()

    targets = {"+33100000001": "no_answer", "+33100000002": "busy", "+33100000003": "reject",
               "+33100000005": "early_media", "+33100000004": {"answer_after_s": 1, "talk_s": 3}}
    rec, (session,) = run({"name": "16", "end": "wait", "targets": targets}, controller)
    keys = ("originate_disposition", "DIALSTATUS", "last_bridge_hangup_cause",
            "last_bridge_proto_specific_hangup_cause", "sip_hangup_phrase", "bridge_hangup_cause")

    def completes(events):
        return [{k: dict(e).get(f"variable_{k}") for k in keys} for e in events
                if dict(e).get("Application") == "bridge" and dict(e)["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]

    assert completes(simulated_events(session)) == completes(captured_events("16"))
    assert [b.outcome for b in rec.bridges] == ["ALLOTTED_TIMEOUT", "USER_BUSY", "CALL_REJECTED",
                                                "ALLOTTED_TIMEOUT", "answered"]
    assert rec.bridges[0].legs[0].sip_headers == {"X-Test": "abc", "X-Call-Reason": "support"}


def test_detected_speech_while_speaking_is_diverted_lost_or_flushed_as_in_capture_11():
    sentence = "flite|kal|" + "This is a long English sentence spoken by the flite text to speech engine. " * 8

    def controller(s: FakeSession) -> None:
        s.channel = s.connect()
        uuid = s.channel["Unique-ID"]
        s.command("linger")
        s.command("event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE DETECTED_SPEECH DTMF")
        s.execute("answer")
        s.execute("detect_speech", "unimrcp builtin:grammar/default builtin:grammar/default")
        assert s.command("divert_events on").headers["Reply-Text"] == "+OK events diverted"
        s.execute("speak", sentence)
        s.wait_event("DETECTED_SPEECH", Speech_Type="begin-speaking")
        assert s.api(f"uuid_break {uuid} all") == "+OK\n"
        s.wait_event("DETECTED_SPEECH", Speech_Type="detected-speech")
        assert s.command("divert_events off").headers["Reply-Text"] == "+OK events not diverted"
        s.execute("detect_speech", "resume")
        first = s.execute("speak", sentence)
        second = s.execute("speak", sentence)
        s.wait_event("CHANNEL_EXECUTE", Application_UUID=first)
        gevent.sleep(0.05)
        assert s.api(f"uuid_break {uuid} all") == "+OK\n"
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=first)
        s.execute("sleep", "3000")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="sleep")
        assert not [e for e in s.events if e.get("Application-UUID") == second]
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.wait_notice("linger")
        s.command("exit")
        s.wait_closed()

    script = [{"say": "I would like to talk to support", "barge_in": True, "after": 0.5},
              {"say": "Hello again", "barge_in": True, "after": 0.2}]
    rec, (session,) = run({"name": "11", "end": "wait", "script": script}, controller)
    speech = [e for e in simulated_events(session) if dict(e)["Event-Name"] == "DETECTED_SPEECH"]
    captured = [e for e in captured_events("11") if dict(e)["Event-Name"] == "DETECTED_SPEECH"]
    assert [layout(e) for e in speech] == [layout(e) for e in captured[:2]]
    assert "<input mode=\"speech\">I would like to talk to support</input>" in session.bodies[
        next(i for i, e in enumerate(session.events) if e.get("Speech-Type") == "detected-speech")]
    speak_done = [e for e in session.events if e.get("Application") == "speak"
                  and e["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]
    assert [e["Application-Response"] for e in speak_done] == ["_none_", "_none_"]
    assert rec.heard == [("I would like to talk to support", True), ("Hello again", False)]
    assert any("flushed" in text for _, text in rec.notes)


def test_a_hand_off_opens_a_second_session_for_the_same_uuid_like_capture_12():
    def first(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.command("linger")
        s.execute("answer")
        s.execute("playback", "tone_stream://%(300,0,440)")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="playback")
        s.mark = len(s.raw)
        assert s.api(f"uuid_transfer {s.channel['Unique-ID']} sb-second XML default") == "+OK\n"
        s.wait_event("CHANNEL_PARK", start=3)
        s.execute("log", "INFO sendmsg from the first socket session after the hand-off")
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        gevent.sleep(0.1)
        s.command("exit")
        s.wait_closed()

    def second(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.command("linger")
        assert s.api(f"uuid_getvar {s.channel['Unique-ID']} switchboard_agent") == "second"
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="log")
        s.send("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n")
        s.wait_event("CHANNEL_HANGUP_COMPLETE")
        gevent.sleep(0.1)
        s.command("exit")
        s.wait_closed()

    handlers = iter([first, second])
    rec, (one, two) = run({"name": "12", "agent": "first", "destination": "sb-first", "end": "wait",
                           "handoffs": {"sb-second": "second"}}, lambda s: next(handlers)(s))
    assert one.channel["Unique-ID"] == two.channel["Unique-ID"] == rec.uuid
    assert two.channel["Answer-State"] == "answered" and two.channel["variable_switchboard_agent"] == "second"
    connect = next(f for f in load_capture("12") if f.connection == "outbound-2"
                   and f.frame.headers.get("Event-Name") == "CHANNEL_DATA").frame.headers
    ours = next(f for f in rec.frames if f.connection == "conn2" and f.headers.get("Event-Name") == "CHANNEL_DATA")
    assert [n for n in ours.headers if not n.startswith("variable_")] == \
           [n for n in connect if not n.startswith("variable_")]
    after = [e for e in simulated_events(one, one.mark)]
    expected = ["CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_STATE", "CHANNEL_STATE", "CHANNEL_EXECUTE",
                "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_EXECUTE",
                "CHANNEL_PARK"]
    captured = names(myevents_only(captured_events("12")))
    start = captured.index("CHANNEL_UNPARK")
    assert names(after)[:10] == expected == captured[start:start + 10]
    assert dict(after[1])["Application"] == "socket" and dict(after[1])["Application-Response"] == "FILE PLAYED"
    assert [n.headers["Content-Disposition"] for n in one.notices] == ["linger", "disconnect"]
    assert [n.headers["Content-Disposition"] for n in two.notices] == ["linger", "disconnect"]
    assert "CHANNEL_EXECUTE_COMPLETE" in names(simulated_events(two)) and rec.connections == ["conn1", "conn2"]


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


def test_an_invalid_application_hangs_the_caller_up_like_capture_06():
    """Accepted differences: CHANNEL_PARK (FreeSWITCH fired it before `myevents` took effect, so capture 06 has
    none; the simulator fires it a frame after the first command); variables and timing (the linger is 2 call
    seconds, scaled); the inbound-ctl originate and its BACKGROUND_JOB (the simulator dials the socket itself)."""
    commands = commands_of("06")

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands)
        s.wait_closed()

    rec, (session,) = run({"name": "06", "caller": ESL_TEST, "end": "wait"}, controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    simulated, captured = without_park(simulated_events(session)), captured_events("06")
    assert names(simulated) == names(captured)
    assert_same_layouts(simulated, captured)
    assert_same_values(simulated, captured, "Hangup-Cause", "Answer-State", "Application", "Application-Response",
                       "Channel-Call-State")
    assert "no_such_app" not in [dict(e).get("Application") for e in simulated]
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           notices_of("06") == [("linger", "2"), ("disconnect", None)]
    assert rec.hangup_cause == "DESTINATION_OUT_OF_ORDER"


def test_json_events_and_a_five_second_linger_end_like_capture_03():
    """Accepted differences: the far end's `uuid_send_dtmf` and `uuid_kill ... USER_BUSY` on the -a leg (sent
    on inbound-ctl) are the scenario's caller script here; DTMF-Source (RTP here, UNKNOWN for uuid_send_dtmf);
    variables; timing (FreeSWITCH closed 6 s after its `linger 5` notice, the simulator after 5 call seconds).
    Gap, not compared: the simulator writes every event as text/event-plain, also after `myevents json`, so
    the events are compared decoded (names, header layouts, values), not as JSON bytes."""
    commands = commands_of("03")

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands)
        s.wait_closed()

    script = [{"wait_for": {"app": "playback"}}, {"dtmf": "9", "after": 2}, {"hangup": "USER_BUSY", "after": 0.1}]
    rec, (session,) = run({"name": "03", "caller": ESL_TEST, "end": "wait", "script": script}, controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    assert [t for t, _ in session.replies_seen[1:3]] == ["+OK Events Enabled", "+OK will linger 5 seconds"]
    simulated, captured = without_park(simulated_events(session)), without_park(captured_any_events("03"))
    assert names(simulated) == names(captured)
    assert_same_layouts(simulated, captured)
    assert_same_values(simulated, captured, "Hangup-Cause", "Answer-State", "Application", "Application-Data",
                       "Application-Response", "DTMF-Digit", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number")
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           notices_of("03") == [("linger", "5"), ("disconnect", None)]
    assert rec.hangup_cause == "USER_BUSY" and rec.hangup_by == "caller"


def test_an_agent_on_the_originating_leg_sends_and_receives_dtmf_like_capture_05():
    """Accepted differences: the ivr on the far leg is not simulated: its play_and_get_digits/log/playback/park
    (seen by inbound-ctl through `filter Caller-Destination-Number ivr`) are not compared; the agent's
    `send_dtmf 123#` is checked as recorded DTMF instead, and the far side's `uuid_send_dtmf 789` is the
    scenario's script; CHANNEL_PARK (capture 05 has none: it was fired before `myevents`); DTMF-Source;
    variables; timing (linger 3 is 3 call seconds); the caller-ID part of the profile: mod_loopback flips it on
    the -a leg (`Outbound Call`/`default`, the number moved to Orig-Caller-ID-Number/Callee-ID-Number, no
    *-ID-Name headers besides Caller-ID-Name), while the simulator's placed call keeps the origination number
    as Caller-Caller-ID-Number, as a sofia leg does (capture 16's B legs); Caller-Logical-Direction's value."""
    commands = commands_of("05")

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands)
        s.wait_closed()

    script = [{"wait_for": {"app": "send_dtmf"}}, {"dtmf": "789", "after": 1}]
    rec, (session,) = run({"name": "05", "caller": {"number": "+33612345678"}, "destination": "ivr",
                           "direction": "outbound", "answered": True, "end": "wait", "script": script}, controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    simulated, captured = without_park(simulated_events(session)), captured_events("05")
    assert names(simulated) == names(captured)
    for ours, theirs in zip(simulated, captured, strict=True):
        assert [n for n in layout(ours) if not n.endswith("-ID-Name")] == \
               [n for n in layout(theirs) if not n.endswith("-ID-Name")], dict(theirs)["Event-Name"]
    assert_same_values(simulated, captured, "Hangup-Cause", "Answer-State", "Application", "Application-Data",
                       "Application-Response", "DTMF-Digit", "Call-Direction")
    assert rec.dtmf_sent == ["123#"]
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           notices_of("05") == [("linger", "3"), ("disconnect", None)]


def test_unicast_is_accepted_and_reports_no_event_like_capture_15():
    """Accepted differences: CHANNEL_PARK (round 1 of capture 15 has none, round 2 has it after `answer`);
    variables; timing (the capture waits 4 s between unicast and playback, here 4 call seconds).
    Gap, not compared: the simulator has no media, so unicast streams no UDP (FreeSWITCH sent 320-byte L16
    packets 50 times a second from local-port to remote-port while parked, and stopped for good once an app
    ran); it only accepts the command. The two rounds (with and without `flags: native`) are replayed alike."""
    commands = commands_of("15")
    second = [i for i, sent in enumerate(commands) if sent.text.startswith("connect")][1]
    for number, round_commands in enumerate((commands[:second], commands[second:]), start=1):
        assert any("call-command: unicast" in sent.text for sent in round_commands)

        def controller(s: FakeSession) -> None:
            s.replies_seen = replay(s, round_commands)
            s.wait_closed()

        agent = "unicast15" if number == 1 else "unicast15b"
        rec, (session,) = run({"name": f"15-{number}", "caller": {"number": "+33612345678"}, "agent": agent,
                               "destination": f"sb-{agent}", "end": "wait"}, controller)
        assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
        assert ("L16", "L16") in session.replies_seen and ("8000", "8000") in session.replies_seen
        simulated = without_park(simulated_events(session))
        captured = without_park(captured_events("15"))
        captured = captured[:len(captured) // 2] if number == 1 else captured[len(captured) // 2:]
        assert names(simulated) == names(captured)
        assert_same_layouts(simulated, captured)
        assert_same_values(simulated, captured, "Hangup-Cause", "Answer-State", "Application", "Application-Data",
                           "Application-Response", "Channel-Name", "Caller-Destination-Number")
        assert any("unicast" in text for _, text in rec.notes)


def test_an_incoming_sip_x_header_reaches_connect_and_uuid_getvar_like_capture_17():
    """Accepted differences: the caller leg is a sofia channel in capture 17 (`sofia/sbtest/...`, context sbtest,
    Caller-Source mod_sofia, Caller-Username and Caller-Network-Addr, no Caller-Callee-ID-*, many sip_*
    variables); the simulator's caller is always a loopback -b leg in context default, with the scenario's
    X- headers as its only SIP trace. So the header layouts are compared without those four profile headers,
    and the connect reply by its key values. The SIP messages (INVITE, 200 OK, BYE), CHANNEL_PARK (none in 17)
    and the BACKGROUND_JOB of inbound-ctl are not compared; timing and variables neither."""
    commands = commands_of("17")
    assert any("sip_h_X-Customer-Id" in sent.text for sent in commands)

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands)
        s.wait_closed()

    caller = {"number": "+33612345678", "name": "+33612345678"}  # sofia: a From without a display name
    rec, (session,) = run({"name": "17", "caller": caller, "agent": "sipagent",
                           "destination": "agentsip", "sip_headers": {"X-Customer-Id": "42"}, "end": "wait"},
                          controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    assert session.replies_seen[1] == ("42", "42")
    captured_connect = next(f for f in load_capture("17") if f.frame.headers.get("Event-Name") == "CHANNEL_DATA")
    for key in ("Call-Direction", "Answer-State", "Caller-Caller-ID-Number", "Caller-Caller-ID-Name",
                "Caller-Destination-Number", "variable_switchboard_agent", "variable_sip_h_X-Customer-Id",
                "Socket-Mode", "Control", "Reply-Text"):
        assert session.channel.get(key) == captured_connect.frame.event[key], key
    assert session.channel["variable_sip_h_X-Customer-Id"] == "42"

    def sip_neutral(pairs):
        return [n for n in layout(pairs) if not n.endswith(("-Username", "-Network-Addr", "-Callee-ID-Name",
                                                           "-Callee-ID-Number"))]

    simulated, captured = without_park(simulated_events(session)), captured_events("17")
    assert names(simulated) == names(captured)
    assert [sip_neutral(e) for e in simulated] == [sip_neutral(e) for e in captured]
    assert_same_values(simulated, captured, "Hangup-Cause", "Answer-State", "Application", "Application-Response",
                       "Caller-Caller-ID-Number", "Caller-Destination-Number", "variable_sip_h_X-Customer-Id")
    assert [(n.headers["Content-Disposition"], n.headers.get("Linger-Time")) for n in session.notices] == \
           notices_of("17") == [("linger", "-1"), ("disconnect", None)]


def received_sip_headers() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """From 16b's excerpts: per dialled number, the X- headers of the INVITE the sbtest profile received, and
    the receiving dialplan's log of `${sip_h_X-...}`, `${sip_X-Test}`, `${sip_i_X-Test}` (empty = unset)."""
    invites: dict[str, dict[str, str]] = {}
    logged: dict[str, dict[str, str]] = {}
    for line in capture_path("16b").read_text().splitlines():
        invite = re.match(r"^##\s+\S+ recv INVITE sip:([^@]+)@\S+ SIP/2\.0\s+\[call-id \w+\]\s*(.*)$", line)
        if invite:
            invites[invite[1]] = dict(h.split(": ", 1) for h in invite[2].split(" | ") if h)
        log = re.match(r"^##\s+SBTEST-RECV dest=\[([^]]*)\] call_id=\[[^]]*\] (.*)$", line)
        if log:
            logged[log[1]] = dict(re.findall(r"(\S+)=\[([^]]*)\]", log[2]))
    return invites, logged


def test_a_bridge_sends_its_sip_h_variables_as_the_x_headers_the_far_end_received_in_capture_16b():
    """Accepted differences: 16b is excerpts only (siptrace, the receiving dialplan's log, uuid_dump lines), so
    the simulator is checked against them, not frame by frame: the X- headers it records for each bridge leg
    (what it would put on the INVITE) and `uuid_getvar` on the far leg while it exists (ringing 1, early 5,
    answered 4; the 486/603 legs of 2 and 3 end within 20 ms). The simulator has one far leg, where FreeSWITCH
    has the dialling side's B leg and the receiving `sofia/sbtest/...` channel; headers FreeSWITCH adds itself
    (X-FS-Support, Remote-Party-ID) and the SIP messages are not modelled; timing neither."""
    invites, logged = received_sip_headers()
    bridges = [sent for sent in commands_of("16") if "execute-app-name: bridge" in sent.text]
    assert len(bridges) == 5 and set(invites) >= {f"+3310000000{n}" for n in range(1, 6)}
    seen: dict[str, dict[str, str]] = {}

    def look(s: FakeSession, sent: Sent) -> None:
        if "execute-app-name: bridge" not in sent.text:
            return
        dial = sent.text.partition("\n\n")[2]
        number = dial.rsplit("/", 1)[1]
        peer = re.search(r"origination_uuid=([^,}\]]+)", dial)[1]
        s.wait_event("CHANNEL_EXECUTE", Application="bridge", Application_Data=dial)
        if number in ("+33100000002", "+33100000003"):
            return
        seen[number] = {name: s.api(f"uuid_getvar {peer} {name}") for name in logged[number]}

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands_of("16"), after=lambda sent: look(s, sent))
        s.wait_closed()

    targets = {"+33100000001": "no_answer", "+33100000002": "busy", "+33100000003": "reject",
               "+33100000005": "early_media", "+33100000004": {"answer_after_s": 0.02, "talk_s": 3}}
    rec, (session,) = run({"name": "16b", "end": "wait", "targets": targets}, controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    for bridge in rec.bridges:
        (leg,) = bridge.legs
        assert leg.sip_headers == invites[leg.destination], leg.destination
    assert set(seen) == {"+33100000001", "+33100000005", "+33100000004"}
    for number, values in seen.items():
        assert values == {name: value or "_undef_" for name, value in logged[number].items()}, number
        assert values["sip_h_X-Test"] == "abc" and values["sip_X-Test"] == values["sip_i_X-Test"] == "_undef_"


def test_avmd_starts_only_with_inbound_channel_and_hears_the_legs_own_tone_like_capture_14():
    """Accepted differences: the far side's tone (`uuid_broadcast <A leg> ... aleg` on inbound-ctl) is not
    replayed: the simulator has no audio from the far leg, and FreeSWITCH did not report it either; the beep's
    measured values (Frequency 1000.454123 there) and Total-time; CHANNEL_PARK (none in 14); variables; timing.
    Known difference (reported): the scenario's `beep` step, a far-end beep, is reported by the simulator
    whenever avmd runs, while on this inbound leg FreeSWITCH taps only the write stream."""
    commands = commands_of("14")

    def controller(s: FakeSession) -> None:
        s.replies_seen = replay(s, commands)
        s.wait_closed()

    rec, (session,) = run({"name": "14", "caller": {"number": "+33612345678"}, "agent": "avmd14",
                           "destination": "sb-avmd14", "end": "wait"}, controller)
    assert [ours for _, ours in session.replies_seen] == [theirs for theirs, _ in session.replies_seen]
    assert ("TRUE", "TRUE") in session.replies_seen
    simulated, captured = without_park(simulated_events(session)), captured_events("14")
    assert names(simulated) == names(captured)
    assert_same_layouts(simulated, captured)
    assert_same_values(simulated, captured, "Event-Subclass", "Application", "Application-Data",
                       "Application-Response", "Beep-Status", "Answer-State", "Hangup-Cause", "Call-command")
    custom = [dict(e) for e in simulated if dict(e)["Event-Name"] == "CUSTOM"]
    assert [e["Event-Subclass"] for e in custom] == ["avmd::start", "avmd::start", "avmd::beep", "avmd::stop",
                                                    "avmd::stop"]
    assert custom[0]["Event-Sequence"] == custom[1]["Event-Sequence"]
    assert any("not started on an inbound channel" in text for _, text in rec.notes)


def open_inbound(port: int) -> FakeSession:
    """A client of the simulator's inbound event socket (real TCP); returns once `auth/request` has arrived."""
    session = FakeSession(gevent.socket.create_connection(("127.0.0.1", port), timeout=WAIT_S))
    assert session.replies.get(timeout=WAIT_S).content_type == "auth/request"
    return session


def without_job_uuid(text: str) -> str:
    return re.sub(r"Job-UUID: [0-9a-f-]{36}", "Job-UUID: <job>", text)


def test_the_inbound_socket_authenticates_and_answers_bgapi_like_capture_01():
    """Accepted differences: values FreeSWITCH makes up (Core-UUID, Event-Sequence, dates, the Job-UUID of a
    bgapi sent without one); the simulator's inbound socket does not close a connection left open without auth
    (FreeSWITCH did after 2 s), the test closes it. Gaps (reported; the inbound socket models what Switchboard
    uses: auth, event, filter, bgapi originate, exit): `api` (version, status, global_getvar, show channels,
    uuid_kill/uuid_getvar of an unknown uuid), `sendmsg <uuid>` and `noevents` get `-ERR command not found`, so
    for them only one reply per command is checked; a BACKGROUND_JOB's body for `status`/`version` (-ERR ...
    Command not found!) and for an originate that is not `&socket(...)` (-ERR INVALID_ARGUMENT where FreeSWITCH
    says NO_ROUTE_DESTINATION), and its empty Job-Command-Arg header for a command without argument; events are
    plain after `event json|xml`; `exit` closes without the disconnect notice."""
    modelled = ("auth", "event", "bgapi", "exit", "nosuchcommand")
    server = InboundServer("ClueCon", Scenario.from_dict({"name": "01"}), SCALE)
    port = server.start()
    try:
        session = open_inbound(port)
        commands = commands_of("01", "inbound")
        replies = replay(session, commands)
        session.wait_closed()
        for sent, (theirs, ours) in zip(commands, replies, strict=True):
            if sent.text.split(None, 1)[0] in modelled:
                assert without_job_uuid(ours) == without_job_uuid(theirs), sent.text
        bgapi = [(sent, reply) for sent, reply in zip(commands, replies) if sent.text.startswith("bgapi")]
        assert len(bgapi) == 5 and "Job-UUID: 11111111-2222-3333-4444-555555555555" in bgapi[0][0].text
        assert bgapi[0][1][1] == "+OK Job-UUID: 11111111-2222-3333-4444-555555555555"
        jobs = [e for e in session.events if e["Event-Name"] == "BACKGROUND_JOB"]
        assert [e["Job-UUID"] for e in jobs] == [ours.split(": ", 1)[1] for _, (_, ours) in bgapi]
        assert [e["Job-Command"] for e in jobs] == [sent.text.split()[1] for sent, _ in bgapi]
        captured = [f for f in load_capture("01") if f.connection == "inbound" and event_pairs(f)]
        originate = [dict(e) for e in simulated_events(session) if dict(e).get("Job-Command") == "originate"]
        (theirs,) = [event_pairs(f) for f in captured if dict(event_pairs(f))["Job-Command"] == "originate"]
        assert layout(simulated_events(session)[2]) == layout(theirs)
        for key in ("Job-Command-Arg", "Event-Calling-File", "Event-Calling-Function", "Event-Calling-Line-Number"):
            assert originate[0][key] == dict(theirs)[key], key
        assert session.bodies[2].startswith("-ERR ")

        wrong = open_inbound(port)
        assert [ours for _, ours in replay(wrong, commands_of("01", "inbound-badauth"))] == ["-ERR invalid"]
        wrong.wait_closed()
        captured_notice = next(f for f in load_capture("01") if f.connection == "inbound-badauth"
                               and f.frame.content_type == "text/disconnect-notice")
        assert wrong.raw[-1] == captured_notice.raw

        early = open_inbound(port)
        assert replay(early, commands_of("01", "inbound-noauth")) == [("-ERR command not found",) * 2]
        assert not early.closed.wait(0.05)
        early.close()
    finally:
        server.stop()


def test_an_inbound_filter_on_the_unique_id_follows_one_call_like_capture_08():
    """Accepted differences: the simulator's inbound socket places calls with `bgapi originate ... &socket(...)`
    only, so the captured blocking `api originate ... &park` is sent as `bgapi` with `&socket('<our port> async
    full')` and the call is driven from that socket session: the inbound-myevents connection's `sendmsg <uuid>`
    playback and inbound-filter's `api uuid_kill <uuid>` are sent there (both name the uuid), and the far leg's
    CHANNEL_CREATE/CHANNEL_ANSWER/park app are not compared; the parked app that completes after the hang-up is
    `socket` here, `park` there; the caller-ID profile (see 05), variables and timing are not compared.
    Gaps (reported): on the inbound socket, `myevents <uuid>` (-ERR invalid uuid before the call exists, then the
    call's events and a disconnect notice when it ends), `sendmsg <uuid>` and `api` are not modelled (-ERR command
    not found); `exit` sends no disconnect notice; the placed call's Caller-Destination-Number is the dial
    string's last part (`default` for `loopback/ivr/default`)."""
    uuid = "cafe0000-1111-2222-3333-444455556666"
    filtering = commands_of("08", "inbound-filter")
    myevents = commands_of("08", "inbound-myevents")
    playback = next(sent.text for sent in myevents if sent.text.startswith("sendmsg"))
    kill = next(sent for sent in filtering if sent.text.startswith(f"api uuid_kill {uuid} "))

    def agent(s: FakeSession) -> None:
        s.channel = s.connect()
        s.command("myevents")
        s.send(playback)
        assert reply_text(s.replies.get(timeout=WAIT_S)) == "+OK"
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="playback")
        s.killed = (reply_text(kill.reply.frame), s.api(kill.text[len("api "):].strip()))
        s.wait_closed()

    with FakeController(agent) as controller:
        server = InboundServer("ClueCon", Scenario.from_dict({"name": "08-callee"}), SCALE)
        port = server.start()
        try:
            watcher = open_inbound(port)
            setup = [sent for sent in filtering if not sent.text.startswith(("api ", "exit"))]
            replies = replay(watcher, setup)
            assert [ours for _, ours in replies[2:]] == [theirs for theirs, _ in replies[2:]]  # filter, event
            assert replies[0] == ("+OK accepted", "+OK accepted") and replies[1][1].startswith("-ERR")
            originate = next(sent.text for sent in filtering if sent.text.startswith("api originate"))
            placed = originate.replace("api originate", "bgapi originate", 1).replace(
                "&park", f"&socket('127.0.0.1:{controller.addr[1]} async full')")
            assert watcher.command(placed.strip()).headers["Reply-Text"].startswith("+OK Job-UUID: ")
            watcher.wait_event("CHANNEL_HANGUP_COMPLETE")
            assert watcher.command("exit").headers["Reply-Text"] == "+OK bye"
            watcher.wait_closed()
            (recording,) = server.recordings(timeout=WAIT_S)
        finally:
            server.stop()
    assert not controller.errors, controller.errors
    (session,) = controller.sessions
    assert session.channel["Unique-ID"] == recording.uuid == uuid
    assert session.killed == ("+OK\n", "+OK\n")
    assert [(n.headers.get("Content-Disposition"), n.headers.get("Controlled-Session-UUID"))
            for n in session.notices] == [("disconnect", uuid)]
    captured_notice = next(f for f in load_capture("08") if f.connection == "inbound-myevents"
                           and f.frame.content_type == "text/disconnect-notice")
    assert session.notices[0].headers == captured_notice.frame.headers

    def from_playback(events):
        start = next(i for i, e in enumerate(events) if dict(e).get("Application") == "playback")
        return events[start:]

    simulated = from_playback(simulated_events(watcher))
    captured = from_playback(captured_events("08", "inbound-filter"))
    assert names(simulated) == names(captured) == [
        "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE"]
    assert {dict(e)["Unique-ID"] for e in simulated} == {uuid}
    assert_same_values(simulated, captured, "Unique-ID", "Answer-State", "Hangup-Cause", "Application-Response",
                       "Call-Direction")
    assert_same_values(simulated[:2], captured[:2], "Application", "Application-Data")
    assert "BACKGROUND_JOB" not in [e["Event-Name"] for e in watcher.events]
