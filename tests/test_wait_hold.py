"""The wait action through the simulator: hold music streamed with `unicast`, a person after the hold, a menu
heard during a wait, max_wait_s and max_hold_s, and the stream started again after every app the wait runs."""
from __future__ import annotations

import gevent
import pytest

from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.phrases import phrase
from tests.support.controller import BASE_AGENT, call, records, running, sent, write_config

HOLD_AGENT = BASE_AGENT + """    - type: wait
      name: hold_on
      description: >-
        Patienter en silence quand on nous met en attente.
        Exemples : "veuillez patienter", "ne quittez pas", "votre appel va être transféré".
      max_wait_s: MAX_WAIT
"""


def hold_agent(max_wait_s: int) -> str:
    return HOLD_AGENT.replace("MAX_WAIT", str(max_wait_s))


STILL_THERE = phrase("fr", "no_input")
PLEASE_HOLD = "Veuillez patienter, votre appel va être transféré"
PERSON = "Bonjour, service livraison, Marc à l'appareil"


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path, {"support": hold_agent(5)})


@pytest.fixture
def long_wait(tmp_path):
    return write_config(tmp_path, {"support": hold_agent(30)})


def record_of(runtime, rec):
    gevent.sleep(0.1)
    return next(r for r in records(runtime) if r["uuid"] == rec.uuid)


def waits(record):
    return [a for a in record["actions"] if a["name"] == "hold_on"]


def unicasts(rec):
    return [c for c in rec.commands if c.name == "sendmsg" and c.headers.get("call-command") == "unicast"]


def test_on_hold_music_with_max_wait_5_the_agent_never_asks_if_anyone_is_there_and_hears_the_person(
        config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [
            {"say": PLEASE_HOLD}, {"hold": {"seconds": 16, "audio": "music"}, "after": 0.5},
            {"say": PERSON, "after": 1}, {"silence": 2}]})
        record = record_of(runtime, rec)
    assert not any(STILL_THERE in s for s in sent(rec, "speak"))
    assert not [a for a in record["actions"] if a["name"] == "builtin_hangup"]
    results = [(a["result"], a["detail"]["reason"]) for a in waits(record)]
    assert results[0] == ("timed_out", "max_wait") and len(results) >= 3  # music: the brain waits again
    assert results[-1] == ("resumed", "unhold")
    assert any(a["detail"]["audio_seconds"].get("music", 0) >= 3 for a in waits(record))
    assert [t["text"] for t in record["transcript"] if t["who"] == "caller"][-1] == PERSON
    assert rec.hangup_by == "caller"
    assert "CHANNEL_HOLD" in rec.events("CHANNEL_HOLD")[0]["Event-Name"]  # subscribed: the hold reached us


def test_the_hold_events_are_subscribed_because_the_agent_has_a_wait(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
    assert "event plain CHANNEL_HOLD CHANNEL_UNHOLD" in sent(rec)


def test_a_menu_heard_during_a_wait_becomes_a_turn_and_the_key_follows(long_wait, session_redis):
    with running(long_wait, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [
            {"say": PLEASE_HOLD}, {"wait_for": {"unicast": 1}}, {"audio": "music"},
            {"say": "Pour le suivi de votre colis, tapez 1", "after": 2}, {"audio": "silence", "after": 0},
            {"silence": 6}]})
        record = record_of(runtime, rec)
    [wait] = waits(record)
    assert (wait["result"], wait["detail"]["reason"]) == ("resumed", "menu_end")
    keys = [a for a in record["actions"] if a["name"] == "menu_choice"]
    assert keys and keys[0]["result"] == "sent"
    assert sent(rec, "send_dtmf")


def test_unicast_is_started_again_after_each_app_the_wait_runs(long_wait, session_redis):
    with running(long_wait, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [
            {"say": PLEASE_HOLD}, {"wait_for": {"unicast": 1}}, {"audio": "music"},
            {"say": "Tous nos conseillers sont occupés", "after": 1.5}, {"wait_for": {"unicast": 2}},
            {"say": PERSON, "after": 1.5}]})
        record = record_of(runtime, rec)
    [wait] = waits(record)
    assert wait["detail"]["reason"] == "person_speaking"  # a person after the hold music: the brain gets it
    assert [t["text"] for t in record["transcript"] if t["who"] == "caller"][-1] == PERSON
    assert wait["detail"]["recorded_prompts"] == ["Tous nos conseillers sont occupés"]
    streams = unicasts(rec)
    assert len(streams) == wait["detail"]["unicast_starts"] == 3
    # every app the wait ran (detect_speech resume) ended the stream; the next unicast followed it
    order = [("unicast" if c.headers.get("call-command") == "unicast" else c.app) for c in rec.commands
             if c.name == "sendmsg" and (c.app == "detect_speech" or c.headers.get("call-command") == "unicast")]
    first = order.index("unicast")
    assert order[first:first + 5] == ["unicast", "detect_speech", "unicast", "detect_speech", "unicast"]
    assert all(packets > 0 for packets in rec.unicast_packets[:2])
    assert streams[0].headers["transport"] == "udp" and streams[0].headers["remote-ip"] == "127.0.0.1"


def test_hold_time_past_max_hold_s_ends_the_call_with_the_builtin_hangup(tmp_path, session_redis):
    agent = hold_agent(5).replace("actions:\n", "limits: {max_hold_s: 30}\nactions:\n")
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [
            {"say": PLEASE_HOLD}, {"hold": {"seconds": 120, "audio": "music"}, "after": 0.5}]})
        record = record_of(runtime, rec)
    [builtin] = [a for a in record["actions"] if a["name"] == "builtin_hangup"]
    assert builtin["detail"]["reason"] == "max_hold_s"
    assert waits(record)[-1]["result"] == "max_hold"
    assert sum(1 for a in waits(record)) >= 5
    assert phrase("fr", "max_hold") in " ".join(sent(rec, "speak"))
    assert record["hangup_by"] == "agent" and not any(STILL_THERE in s for s in sent(rec, "speak"))


def test_without_speech_recognition_a_voice_after_the_hold_music_ends_the_wait(long_wait, session_redis):
    modules = ["mod_dptools", "mod_commands", "mod_sofia", "mod_flite"]
    with running(long_wait, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "modules": modules, "script": [
            {"hold": {"audio": "music"}, "after": 1}, {"wait_for": {"unicast": 1}}, {"silence": 3},
            {"audio": {"sound": "speech", "seconds": 5}}, {"unhold": True, "after": 1}]})
        record = record_of(runtime, rec)
    [wait] = waits(record)
    assert wait["detail"]["reason"] == "voice" and wait["detail"]["audio_seconds"]["music"] >= 2
    assert wait["detail"]["unicast_starts"] == 1 and len(unicasts(rec)) == 1  # no app ran: one stream


def test_a_max_hold_s_out_of_range_names_the_field_and_the_allowed_range(tmp_path):
    agent = hold_agent(5).replace("actions:\n", "limits: {max_hold_s: 10}\nactions:\n")
    path = write_config(tmp_path, {"support": agent})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [issue] = caught.value.issues
    assert issue.field_path == "agents.support.limits.max_hold_s" and "10 is out of range" in issue.problem
    assert issue.allowed.startswith("30..14400")
