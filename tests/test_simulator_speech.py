"""The caller's voice and the agent's prompts: detect_speech, divert_events, uuid_break, TTS, avmd."""
from __future__ import annotations

import gevent
import pytest

try:
    from tests.support.simulator import event_names, finish, play, start
except ImportError:  # tests/ imported as a package
    from tests.simulator_support import event_names, finish, play, start


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


def test_a_voicemail_greeting_talks_over_the_agent_instead_of_waiting_for_a_pause():
    """`talk_over: true`: a machine's greeting starts `after` seconds after the answer, whatever the agent does."""
    def controller(s):
        start(s)
        s.command("divert_events on")
        s.execute("detect_speech", "unimrcp default default")
        s.execute("speak", "flite|kal|" + "A long prompt the voicemail does not wait for. " * 5)
        s.wait_event("DETECTED_SPEECH", Speech_Type="begin-speaking")
        s.wait_event("DETECTED_SPEECH", Speech_Type="detected-speech")
        finish(s)

    rec, (s,) = play({"name": "over", "speech_format": "json", "script": [
        {"wait_for": {"app": "speak"}}, {"say": "vous êtes bien chez Paul", "talk_over": True, "after": 0.2}]},
        controller)
    speaking = next(f.t for f in rec.frames if f.event.get("Speech-Type") == "begin-speaking")
    ended = [f.t for f in rec.frames if f.event.get("Application") == "speak"][-1]
    assert speaking < ended  # the greeting began while the agent's prompt still played


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
        s.wait_notice("linger")
        s.command("exit")

    rec, (s,) = play({"name": "deaf", "end": "hangup", "end_after_s": 0.5, "script": [{"say": "hello?"}]}, controller)
    assert "DETECTED_SPEECH" not in event_names(s)
    assert rec.heard == [("hello?", False)] and rec.hangup_by == "caller"


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


def test_a_voicemail_beep_on_an_originated_channel_is_reported_once_avmd_listens():
    """An originated (outbound) channel: avmd.conf's outbound_channel=1 applies, and avmd hears the far end."""
    def controller(s):
        start(s, "event plain CUSTOM avmd::start avmd::beep avmd::stop")
        s.execute("avmd_start", "inbound_channel=0,outbound_channel=1")
        s.wait_event("CUSTOM", Event_Subclass="avmd::beep")
        s.execute("avmd_stop")
        s.wait_event("CUSTOM", Event_Subclass="avmd::stop")
        finish(s)

    rec, (s,) = play({"name": "avmd", "direction": "outbound", "answered": True,
                      "script": [{"beep": True, "after": 1}]}, controller)
    subclasses = [e["Event-Subclass"] for e in s.events if e["Event-Name"] == "CUSTOM"]
    assert subclasses == ["avmd::start", "avmd::start", "avmd::beep", "avmd::stop", "avmd::stop"]


@pytest.mark.parametrize("direction, arg, starts", [
    ("outbound", None, True), ("outbound", "outbound_channel=1", True), ("outbound", "outbound_channel=0", False),
    ("outbound", "inbound_channel=1,outbound_channel=0", False), ("inbound", None, False),
    ("inbound", "inbound_channel=1,outbound_channel=0", True)])
def test_avmd_starts_only_with_the_flag_of_the_channels_direction(direction, arg, starts):
    def controller(s):
        start(s, "event plain CUSTOM avmd::start avmd::beep avmd::stop")
        s.execute("avmd_start", arg)
        finish(s)

    rec, (s,) = play({"name": "avmd", "direction": direction, "answered": direction == "outbound"}, controller)
    started = [e for e in s.events if e.get("Event-Subclass") == "avmd::start"]
    assert bool(started) == starts


def test_a_far_end_beep_is_not_heard_by_avmd_on_an_inbound_channel_like_capture_14():
    def controller(s):
        start(s, "event plain CUSTOM avmd::start avmd::beep avmd::stop")
        s.execute("avmd_start", "inbound_channel=1,outbound_channel=0")
        s.wait_notice("linger")
        s.command("exit")
        s.wait_closed()

    rec, (s,) = play({"name": "avmd", "end": "hangup", "end_after_s": 0.5,
                      "script": [{"beep": True, "after": 1}]}, controller)
    assert "avmd::beep" not in [e.get("Event-Subclass") for e in s.events]
    assert any("taps only what the leg plays" in text for _, text in rec.notes)
