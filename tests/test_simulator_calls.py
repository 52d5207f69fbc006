"""Whole calls through the simulator over real TCP, driven by a throwaway controller."""
from __future__ import annotations

import gevent
import pytest
from gevent.server import StreamServer

from fssim import Scenario, Simulator

try:
    from tests.support.simulator import HANGUP, SCALE, FakeController, event_names, finish, play, start
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import HANGUP, SCALE, FakeController, event_names, finish, play, start


def test_a_failed_bridge_without_continue_on_fail_hangs_the_caller_up_before_the_bridge_completes():
    def controller(s):
        start(s)
        s.execute("bridge", "[leg_timeout=3]sofia/gateway/trunk/+33100000001")
        s.wait_notice("linger")
        s.command("exit")

    rec, (s,) = play({"name": "no-cof", "targets": {"+33100000001": "no_answer"}}, controller)
    names = event_names(s)
    assert names.index("CHANNEL_HANGUP") < names.index("CHANNEL_EXECUTE_COMPLETE", names.index("CHANNEL_HANGUP") - 1)
    complete = next(e for e in s.events if e.get("Application") == "bridge" and e["Event-Name"].endswith("COMPLETE"))
    assert complete["Hangup-Cause"] == "ALLOTTED_TIMEOUT"
    assert (rec.hangup_cause, rec.hangup_by) == ("ALLOTTED_TIMEOUT", "bridge")


@pytest.mark.parametrize("continue_on_fail, hung_up", [("true", False), ("USER_BUSY,NO_ROUTE_DESTINATION", False),
                                                        ("17", False), ("CALL_REJECTED", True), ("false", True)])


def test_continue_on_fail_lists_the_failures_that_keep_the_caller(continue_on_fail, hung_up):
    def controller(s):
        start(s)
        s.execute("set", f"continue_on_fail={continue_on_fail}")
        done = s.execute("bridge", "sofia/gateway/trunk/+33100000002")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        if not hung_up:
            s.send(HANGUP)
        s.wait_notice("linger")
        s.command("exit")

    rec, (s,) = play({"name": "busy", "targets": {"+33100000002": "busy"}}, controller)
    assert (rec.hangup_by == "bridge") is hung_up
    assert rec.bridges[0].disposition == "USER_BUSY"


def test_no_answer_within_originate_timeout_always_leaves_the_caller_in_the_dialplan():
    def controller(s):
        start(s)
        done = s.execute("bridge", "{originate_timeout=4}sofia/gateway/trunk/+33100000001")
        event = s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        assert event["variable_DIALSTATUS"] == "NOANSWER" and "Hangup-Cause" not in event
        finish(s)

    rec, _ = play({"name": "noanswer", "targets": {"+33100000001": "no_answer"}}, controller)
    assert rec.bridges[0].disposition == "NO_ANSWER" and rec.hangup_by == "controller"


@pytest.mark.parametrize("leg_timeout, outcome", [(2, "ALLOTTED_TIMEOUT"), (5, "answered")])
def test_leg_timeout_is_read_from_the_wire_and_counts_call_seconds(leg_timeout, outcome):
    def controller(s):
        start(s)
        s.execute("set", "continue_on_fail=true")
        done = s.execute("bridge", f"{{ignore_early_media=true}}[leg_timeout={leg_timeout}]sofia/gateway/gw/+331")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done, timeout=20)
        finish(s)

    rec, _ = play({"name": "leg", "targets": {"+331": {"answer_after_s": 3, "talk_s": 1}}}, controller)
    bridge = rec.bridges[0]
    assert (bridge.leg_timeout_s, bridge.outcome) == (float(leg_timeout), outcome)
    execute = next(f.t for f in rec.frames if f.event.get("Application") == "bridge")
    complete = [f.t for f in rec.frames if f.event.get("Application") == "bridge"][-1]
    assert complete - execute >= min(leg_timeout, 3)


def test_an_app_whose_module_is_not_loaded_hangs_the_call_up_like_capture_06():
    def controller(s):
        start(s)
        s.execute("avmd_start", "inbound_channel=1")
        s.wait_notice("linger")
        s.command("exit")

    rec, (s,) = play({"name": "noavmd", "modules": ["mod_dptools", "mod_commands", "mod_flite"]}, controller)
    assert "avmd_start" not in [e.get("Application") for e in s.events]
    assert (rec.hangup_cause, rec.hangup_by) == ("DESTINATION_OUT_OF_ORDER", "simulator")
    assert event_names(s)[-6:] == ["CHANNEL_HANGUP", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_STATE",
                                   "CHANNEL_STATE", "CHANNEL_HANGUP_COMPLETE"]


def test_unknown_commands_apis_and_foreign_uuids_get_freeswitch_errors():
    def controller(s):
        uuid = start(s)
        assert s.command("nosuchcommand").headers["Reply-Text"] == "-ERR command not found"
        assert s.api("nosuchcommand foo") == "-ERR nosuchcommand Command not found!\n"
        assert s.api("uuid_kill 00000000-0000-0000-0000-000000000000") == "-ERR No such channel!\n"
        assert s.api(f"uuid_getvar {uuid} no_such_variable") == "_undef_"
        assert s.command("sendmsg 00000000-0000-0000-0000-000000000000\ncall-command: execute\n"
                         "execute-app-name: answer").headers["Reply-Text"] == \
            "-ERR invalid session id [00000000-0000-0000-0000-000000000000]"
        assert s.command("myevents").headers["Reply-Text"] == "-ERR aready enabled."
        finish(s)

    play({"name": "errors"}, controller)


def test_a_caller_who_hangs_up_while_the_transfer_rings_cancels_it():
    def controller(s):
        start(s)
        s.execute("multiset", "continue_on_fail=true hangup_after_bridge=false")
        s.execute("bridge", "[leg_timeout=20]sofia/gateway/trunk/+33100000009")
        s.wait_notice("linger")
        s.command("exit")

    rec, (s,) = play({"name": "cancel", "targets": {"+33100000009": {"caller_hangs_up_after_s": 2}}}, controller)
    complete = next(e for e in s.events if e.get("Application") == "bridge" and e["Event-Name"].endswith("COMPLETE"))
    assert complete["variable_originate_disposition"] == "ORIGINATOR_CANCEL"
    assert complete["variable_DIALSTATUS"] == "CANCEL"
    assert rec.hangup_by == "caller"


@pytest.mark.parametrize("setting, hung_up", [(None, False), ("true", True)])
def test_the_caller_is_hung_up_after_an_answered_bridge_only_when_hangup_after_bridge_is_true(setting, hung_up):
    def controller(s):
        start(s)
        done = s.execute("bridge", "sofia/gateway/trunk/+33100000004")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        if not hung_up:
            s.send(HANGUP)
        s.wait_notice("linger")
        s.command("exit")

    scenario = {"name": "hab", "targets": {"+33100000004": {"answer_after_s": 1, "talk_s": 2}}}
    if setting:
        scenario["variables"] = {"hangup_after_bridge": setting}
    rec, (s,) = play(scenario, controller)
    names = event_names(s)
    assert names.index("CHANNEL_BRIDGE") < names.index("CHANNEL_UNBRIDGE")
    assert (rec.hangup_by == "bridge") is hung_up


def test_gateway_down_and_unknown_numbers_fail_at_once():
    def controller(s):
        start(s)
        s.execute("set", "continue_on_fail=true")
        for number in ("+33100000007", "+33199999999"):
            done = s.execute("bridge", f"sofia/gateway/trunk/{number}")
            s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        finish(s)

    rec, _ = play({"name": "down", "targets": {"+33100000007": "gateway_down"}}, controller)
    assert [b.disposition for b in rec.bridges] == ["NETWORK_OUT_OF_ORDER", "UNALLOCATED_NUMBER"]


def test_closing_the_socket_before_hanging_up_lets_the_dialplan_end_the_call():
    def controller(s):
        start(s)
        s.command("exit")
        s.wait_closed()

    rec, _ = play({"name": "exit"}, controller)
    assert rec.hangup_by == "dialplan"
    assert "CHANNEL_HANGUP_COMPLETE" not in [e["Event-Name"] for e in rec.events()]  # the socket was gone


def test_hold_and_dtmf_reach_a_controller_that_subscribed_to_them():
    def controller(s):
        start(s, "event plain CHANNEL_HOLD CHANNEL_UNHOLD")
        s.wait_event("CHANNEL_UNHOLD")
        s.wait_event("DTMF", DTMF_Digit="#")
        finish(s)

    rec, (s,) = play({"name": "hold", "script": [{"hold": 2}, {"dtmf": "1#"}]}, controller)
    assert event_names(s).count("DTMF") == 2
    assert b"DTMF-Digit: %23\n" in b"".join(f.raw for f in rec.frames if f.direction == "out")
    hold = next(e for e in s.events if e["Event-Name"] == "CHANNEL_HOLD")
    assert hold["Channel-Call-State"] == "HELD"


def test_max_duration_bounds_a_call_the_controller_never_ends():
    def controller(s):
        start(s)
        s.wait_notice("linger")
        s.command("exit")

    rec, _ = play({"name": "forever", "max_duration_s": 5}, controller)
    assert rec.hangup_by == "simulator"
    assert any("max_duration_s=5 reached" in text for _, text in rec.notes)


@pytest.mark.parametrize("fault", ["short_length", "long_length", "missing_length"])
def test_a_malformed_frame_is_sent_when_the_scenario_asks_for_it(fault):

    def controller(s):
        s.connect()
        s.command("myevents")
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: answer\nevent-lock: true\n\n")
        s.wait_bytes(b"Event-Name: CHANNEL_ANSWER")
        s.close()

    with FakeController(controller) as fake:
        scenario = Scenario.from_dict({"name": "bad", "end": "wait",
                                       "malformed": {"event": "CHANNEL_ANSWER", "fault": fault}})
        rec = Simulator(fake.addr, time_scale=SCALE).run(scenario)
    answer = next(f.raw for f in rec.frames if b"CHANNEL_ANSWER" in f.raw)
    head, _, body = answer.partition(b"\n\n")
    declared = [int(line.split(b": ")[1]) for line in head.split(b"\n") if line.startswith(b"Content-Length")]
    assert declared != [len(body)]
    assert any("malformed CHANNEL_ANSWER" in text for _, text in rec.notes)


def test_a_hand_off_to_an_extension_the_scenario_does_not_know_finds_no_route():
    def controller(s):
        uuid = start(s)
        assert s.api(f"uuid_transfer {uuid} sb-nobody XML default") == "+OK\n"
        s.wait_notice("linger")
        s.command("exit")

    rec, _ = play({"name": "noroute"}, controller)
    assert (rec.hangup_cause, rec.hangup_by) == ("NO_ROUTE_DESTINATION", "dialplan")


def test_run_many_plays_calls_concurrently_and_returns_them_in_order():
    def controller(s):
        start(s)
        s.execute("playback", "silence_stream://2000")
        finish(s)

    with FakeController(controller) as fake:
        scenarios = [Scenario.from_dict({"name": f"call-{i}", "end": "wait"}) for i in range(6)]
        recordings = Simulator(fake.addr, time_scale=SCALE).run_many(scenarios, concurrency=3)
    assert [r.scenario for r in recordings] == [f"call-{i}" for i in range(6)]
    assert len({r.uuid for r in recordings}) == 6
    assert all(r.hangup_by == "controller" for r in recordings)


def test_the_timeline_reads_commands_events_and_notes_in_order():
    def controller(s):
        start(s)
        finish(s)

    rec, _ = play({"name": "timeline"}, controller)
    lines = rec.timeline()
    assert lines[0].endswith("conn1 <- connect")
    assert any(line.endswith("conn1 <- sendmsg execute answer") for line in lines)
    assert any(line.endswith("conn1 -> CHANNEL_EXECUTE answer") for line in lines)
    assert any("~~ hangup NORMAL_CLEARING by controller" in line for line in lines)
    assert lines[-1].endswith("disconnect-notice disconnect")
    assert rec.summary() == {"scenario": "timeline", "uuid": rec.uuid, "hangup_cause": "NORMAL_CLEARING",
                             "hangup_by": "controller", "apps": ["answer"], "bridges": [], "error": None}


def test_a_controller_that_never_sends_connect_is_given_up_on():
    silent = StreamServer(("127.0.0.1", 0), lambda sock, address: sock.recv(1))
    silent.start()
    try:
        rec = Simulator(("127.0.0.1", silent.server_port), time_scale=SCALE).run(
            Scenario.from_dict({"name": "silent", "end": "wait"}))
    finally:
        silent.stop(timeout=1)
    assert rec.hangup_by == "dialplan"
    assert any("no `connect` within 25 s" in text for _, text in rec.notes)


def test_an_unreachable_controller_gives_a_recording_that_says_so():
    probe = StreamServer(("127.0.0.1", 0), lambda sock, address: None)
    probe.start()
    port = probe.server_port
    probe.stop()
    rec = Simulator(("127.0.0.1", port), time_scale=SCALE).run(Scenario.from_dict({"name": "nobody"}))
    assert rec.error.startswith("connect failed") and rec.frames == []


def test_greenswitch_the_controllers_esl_library_drives_a_call_through_the_simulator():
    from greenswitch.esl import OutboundESLServer

    seen = {}

    class Agent:
        def __init__(self, session):
            self.session = session

        def run(self):
            session = self.session
            session.myevents()
            session.linger()
            session.call_command("answer")
            seen["agent"] = session.session_data.get("variable_switchboard_agent")
            seen["playback"] = session.playback("silence_stream://500").headers.get("Application-Response")
            session.hangup()
            gevent.sleep(0.05)

    probe = StreamServer(("127.0.0.1", 0), lambda sock, address: None)
    probe.start()
    port = probe.server_port
    probe.stop()
    server = OutboundESLServer(bind_address="127.0.0.1", bind_port=[port], application=Agent, max_connections=2)
    listener = gevent.spawn(server.listen)
    try:
        gevent.sleep(0.05)
        rec = Simulator(("127.0.0.1", port), time_scale=SCALE).run(
            Scenario.from_dict({"name": "greenswitch", "agent": "support", "end": "wait", "max_duration_s": 60}))
    finally:
        server.stop()
        listener.join(timeout=5)
    assert seen == {"agent": "support", "playback": "FILE PLAYED"}
    assert rec.hangup_by == "controller" and rec.hangup_cause == "NORMAL_CLEARING"


def test_an_answered_connect_starts_the_script_without_an_answer():
    def controller(s):
        s.channel = s.connect()
        s.command("myevents")
        s.command("linger")
        s.wait_event("DTMF", DTMF_Digit="5")
        finish(s)

    rec, (s,) = play({"name": "originated", "answered": True, "script": [{"dtmf": "5"}]}, controller)
    assert s.channel["Answer-State"] == "answered" and s.channel["Channel-Call-State"] == "ACTIVE"
    assert "CHANNEL_ANSWER" not in event_names(s)
