"""Captures 01, 03, 05, 06, 08, 14, 15, 16b and 17 against the simulator (2 of 3), replayed from the files.

`commands_of` reads what the capture's controller side sent; `replay` sends each command once the simulator has
delivered as many events as FreeSWITCH had. Each test starts with what it deliberately leaves out and the gaps
it knows of.
"""
from __future__ import annotations

import re

import pytest

from fssim.captures import capture_path, captures_dir, load_capture

try:
    from tests.support.simulator import FakeSession
    from tests.support.captures import (ESL_TEST, assert_same_layouts, captured_events, layout, names, run, simulated_events,
                                 captured_any_events, without_park, Sent, commands_of, replay, assert_same_values,
                                 notices_of)
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import FakeSession
    from tests.capture_support import (ESL_TEST, assert_same_layouts, captured_events, layout, names, run,
                                       simulated_events, captured_any_events, without_park, Sent, commands_of, replay,
                                       assert_same_values, notices_of)

try:
    CAPTURES = captures_dir()
except FileNotFoundError as missing:
    pytest.skip(str(missing), allow_module_level=True)


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
    measured values (Frequency 1000.454123 there) and Total-time; CHANNEL_PARK (none in 14); variables; timing."""
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
