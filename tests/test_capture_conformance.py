"""The simulator against the real FreeSWITCH 1.10.12 transcripts in ../shared/esl-captures/ (1 of 3).

First the capture reader and the frame writer (every captured event is rebuilt byte for byte), then the
simulator replays the controller side of captures 02, 04, 07, 09, 10, 11, 12 and 16 and must produce the
same events in the same order, with the same header names (variables apart) and the same key values.
Captures 01, 03, 05, 06, 08, 14, 15, 16b and 17 are in test_capture_conformance_replays.py; 13 and 18 (how a
socket session starts, and how it lets go of its channel) in test_capture_conformance_sessions.py.
"""
from __future__ import annotations

import gevent
import pytest

from fssim.captures import captures_dir, load_capture, parse_capture
from fssim.wire import (api_response, command_reply, connect_reply, disconnect_notice, event_plain,
                                       linger_notice, parse_event_body, url_decode)

try:
    from tests.support.simulator import FakeSession
    from tests.support.captures import (ESL_TEST, assert_same_layouts, captured_events, layout, myevents_only, names, run,
                                 simulated_events)
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import FakeSession
    from tests.capture_support import (ESL_TEST, assert_same_layouts, captured_events, layout, myevents_only, names,
                                       run, simulated_events)

try:
    CAPTURES = captures_dir()
except FileNotFoundError as missing:
    pytest.skip(str(missing), allow_module_level=True)


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
