"""Whole calls through the simulator over real TCP, driven by a throwaway controller."""
from __future__ import annotations

import gevent
import pytest
from gevent.server import StreamServer

from controller.simulator import Scenario, Simulator

try:
    from simulator_support import FakeController, FakeSession
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import FakeController, FakeSession

SCALE = 0.01
HANGUP = "sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"


def play(scenario: dict, handler, scale: float = SCALE):
    """Run one scenario against `handler`; returns the recording and the controller's sessions."""
    with FakeController(handler) as controller:
        recording = Simulator(controller.addr, time_scale=scale).run(Scenario.from_dict({"end": "wait", **scenario}))
    assert not controller.errors, controller.errors
    return recording, controller.sessions


def start(s: FakeSession, *extra: str) -> str:
    """connect, myevents, linger, answer; returns the channel uuid."""
    s.channel = s.connect()
    s.command("myevents")
    for command in extra:
        s.command(command)
    s.command("linger")
    s.execute("answer")
    return s.channel["Unique-ID"]


def finish(s: FakeSession) -> None:
    s.send(HANGUP)
    s.wait_notice("linger")
    s.command("exit")
    s.wait_closed()


def event_names(s: FakeSession) -> list[str]:
    return [e["Event-Name"] for e in s.events]


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


def test_uuid_break_all_ends_the_running_speak_and_drops_everything_queued_behind_it():
    def controller(s):
        uuid = start(s)
        first = s.execute("speak", "flite|kal|" + "A long prompt that the caller will not hear to the end. " * 10)
        queued = [s.execute("playback", "ivr/menu.wav"), s.execute("set", "after_break=yes")]
        s.wait_event("CHANNEL_EXECUTE", Application_UUID=first)
        assert s.api(f"uuid_break {uuid} all") == "+OK\n"
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=first, Application_Response="_none_")
        s.execute("log", "INFO still here")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="log")
        assert not [e for e in s.events if e.get("Application-UUID") in queued]
        assert s.api(f"uuid_getvar {uuid} after_break") == "_undef_"
        finish(s)

    rec, _ = play({"name": "break"}, controller)
    assert [app for app, _ in rec.executed_apps] == ["answer", "speak", "log"]
    assert any("never run: playback, set" in text for _, text in rec.notes)


def test_speech_during_speak_is_lost_without_divert_events_but_reaches_a_parked_channel_with_channel_data():
    def controller(s):
        start(s)
        s.execute("detect_speech", "unimrcp default default")
        s.execute("speak", "flite|kal|" + "Welcome to the support line, please tell me why you call. " * 3)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="speak", timeout=20)
        s.execute("detect_speech", "resume")
        s.wait_event("DETECTED_SPEECH", Speech_Type="detected-speech", timeout=20)
        finish(s)

    script = [{"say": "hello are you there", "barge_in": True, "after": 1.0}, {"say": "I need help", "after": 0.5}]
    rec, (s,) = play({"name": "lost", "script": script}, controller)
    speech = [e for e in s.events if e["Event-Name"] == "DETECTED_SPEECH"]
    assert [e["Speech-Type"] for e in speech] == ["begin-speaking", "detected-speech"]
    assert speech[1]["Unique-ID"] == rec.uuid and speech[1]["Channel-State"] == "CS_EXECUTE"
    assert rec.heard == [("hello are you there", False), ("I need help", True)]
    assert any("lost" in text and "capture 11" in text for _, text in rec.notes)


def test_with_divert_events_the_caller_can_barge_in_on_a_prompt():
    def controller(s):
        uuid = start(s)
        s.command("divert_events on")
        s.execute("detect_speech", "unimrcp default default")
        s.execute("speak", "flite|kal|" + "This prompt is long enough to be interrupted by the caller. " * 5)
        s.wait_event("DETECTED_SPEECH", Speech_Type="begin-speaking")
        s.api(f"uuid_break {uuid} all")
        s.wait_event("DETECTED_SPEECH", Speech_Type="detected-speech")
        finish(s)

    rec, (s,) = play({"name": "barge", "speech_format": "json",
                      "script": [{"say": "stop talking please", "barge_in": True}]}, controller)
    raw = next(e for e in s.events if e.get("Speech-Type") == "detected-speech")
    assert set(raw) == {"Command", "Event-Name", "Unique-ID", "Speech-Type", "Content-Length", "Event-UUID"}
    assert '"text": "stop talking please"' in s.bodies[s.events.index(raw)]
    assert rec.heard == [("stop talking please", True)]


def test_the_recogniser_waits_for_resume_after_each_result():
    def controller(s):
        start(s)
        s.execute("detect_speech", "unimrcp default default")
        s.wait_event("DETECTED_SPEECH", Speech_Type="detected-speech")
        gevent.sleep(0.2)
        mark = len(s.events)
        s.execute("detect_speech", "resume")
        s.wait_event("DETECTED_SPEECH", start=mark, Speech_Type="detected-speech", timeout=20)
        finish(s)

    script = [{"say": "first"}, {"say": "second", "after": 0.2}, {"wait_for": {"app": "detect_speech", "count": 2}},
              {"say": "third", "after": 0.2}]
    rec, _ = play({"name": "resume", "script": script}, controller)
    assert rec.heard == [("first", True), ("second", False), ("third", True)]


def test_a_caller_nobody_listens_to_is_not_heard():
    def controller(s):
        start(s)
        s.wait_closed()

    rec, (s,) = play({"name": "deaf", "end": "hangup", "end_after_s": 0.5, "script": [{"say": "hello?"}]}, controller)
    assert "DETECTED_SPEECH" not in event_names(s)
    assert rec.heard == [("hello?", False)] and rec.hangup_by == "caller"


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


def test_speak_without_its_tts_module_plays_nothing_and_the_call_goes_on():
    def controller(s):
        uuid = start(s)
        assert s.api("module_exists mod_flite") == "false"
        assert s.api("module_exists mod_dptools") == "true"
        done = s.execute("speak", "flite|kal|Hello")
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application_UUID=done)
        assert s.api(f"uuid_exists {uuid}") == "true"
        finish(s)

    rec, _ = play({"name": "noflite", "modules": ["mod_dptools", "mod_commands"]}, controller)
    assert rec.spoken == [] and rec.hangup_by == "controller"
    assert any("mod_flite is not loaded" in text for _, text in rec.notes)


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
    assert rec.events()[-1]["Event-Name"] != "CHANNEL_HANGUP_COMPLETE"


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
    frames = []

    def controller(s):
        s.connect()
        s.command("myevents")
        s.send("sendmsg\ncall-command: execute\nexecute-app-name: answer\nevent-lock: true\n\n")
        gevent.sleep(0.2)
        s.close()

    with FakeController(controller) as fake:
        scenario = Scenario.from_dict({"name": "bad", "end": "wait", "max_duration_s": 2,
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


def test_voicemail_beeps_are_reported_only_once_avmd_listens():
    def controller(s):
        start(s, "event plain CUSTOM avmd::start avmd::beep avmd::stop")
        s.execute("avmd_start", "inbound_channel=1,outbound_channel=0")
        s.wait_event("CUSTOM", Event_Subclass="avmd::beep")
        s.execute("avmd_stop")
        s.wait_event("CUSTOM", Event_Subclass="avmd::stop")
        finish(s)

    rec, (s,) = play({"name": "avmd", "script": [{"beep": True, "after": 1}]}, controller)
    subclasses = [e["Event-Subclass"] for e in s.events if e["Event-Name"] == "CUSTOM"]
    assert subclasses == ["avmd::start", "avmd::start", "avmd::beep", "avmd::stop", "avmd::stop"]


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
