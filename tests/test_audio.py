"""The wait's ears: the classifier on the committed clips and generated sounds, the UDP receiver, and the
simulator's `unicast` as FreeSWITCH streams it (capture 15)."""
from __future__ import annotations

import gevent
import pytest

from controller.audio.classify import WINDOW, StreamClassifier, classify, energy_vad
from controller.audio.unicast import UnicastReceiver, free_udp_port
from controller.esl import commands
from controller.esl.values import DialStringError
from fssim import sounds
from fssim.scenario import Scenario, ScenarioError
from tests.support.simulator import finish, play, start


def windows(samples):
    return [samples[at:at + WINDOW] for at in range(0, len(samples) - WINDOW + 1, WINDOW)]


@pytest.mark.parametrize("clip", sounds.clip_names())
def test_every_second_of_the_committed_speech_clips_is_speech(clip):
    index = sounds.clip_names().index(clip)
    labels = [classify(w) for w in windows(sounds.speech(4.0, index))]
    assert labels == ["speech"] * 4


@pytest.mark.parametrize("seed", range(8))
def test_hold_music_of_every_timbre_and_tempo_is_music_not_speech(seed):
    labels = [classify(w) for w in windows(sounds.music(6, seed))]
    assert labels.count("music") >= 5


def test_speech_over_music_is_speech_and_cng_fill_is_silence_and_hiss_is_noise():
    assert {classify(w) for w in windows(sounds.speech_over_music(4.0, 1))} == {"speech"}
    assert {classify(w) for w in windows(sounds.silence(3))} == {"silence"}
    assert classify(sounds.silence(1)[:WINDOW]) == "silence" and sounds.silence(1).tobytes() == b"\xff" * 16000
    assert {classify(w) for w in windows(sounds.noise(3))} == {"noise"}


def test_the_energy_only_baseline_takes_music_for_speech():
    assert energy_vad(sounds.music(1, 0)) == "speech" and classify(sounds.music(1, 0)) == "music"


def test_the_stream_classifier_labels_whole_seconds_of_l16_bytes_in_order():
    classifier = StreamClassifier()
    data = sounds.silence(1).tobytes() + sounds.music(1, 2).astype("<i2").tobytes()
    assert classifier.feed(data[:10000]) == []
    assert classifier.feed(data[10000:]) == ["silence", "music"]


def test_the_receiver_keeps_what_arrives_bounded_and_closes():
    with UnicastReceiver(max_bytes=3200) as receiver:
        sender = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
        for _ in range(20):
            sender.sendto(b"\x01\x00" * 160, ("127.0.0.1", receiver.port))
        gevent.sleep(0.05)
        data = receiver.take()
        assert receiver.packets == 20 and len(data) == 3200 and receiver.dropped_bytes == 20 * 320 - 3200
        assert receiver.take() == b""
        sender.close()


def test_the_unicast_builder_writes_the_capture_headers_and_refuses_bad_ports():
    assert commands.unicast(19501, 19502) == [
        ("call-command", "unicast"), ("local-ip", "127.0.0.1"), ("local-port", "19501"),
        ("remote-ip", "127.0.0.1"), ("remote-port", "19502"), ("transport", "udp")]
    assert commands.unicast(19501, 19502, native=True)[-1] == ("flags", "native")
    for bad in (0, 80, 70000, True, "19502"):
        with pytest.raises(DialStringError):
            commands.unicast(19501, bad)
    with pytest.raises(DialStringError):
        commands.unicast(19501, 19502, host="127.0.0.1\nx: y")


def test_the_simulator_streams_320_byte_cng_packets_50_a_second_then_stops_for_good_when_an_app_runs():
    got: dict[str, object] = {}

    def handler(s):
        start(s)
        s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="answer")
        gevent.sleep(0.01)
        with UnicastReceiver() as receiver:
            local = free_udp_port()
            before = len(s.events)
            reply = s.command(f"sendmsg\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: {local}\n"
                              f"remote-ip: 127.0.0.1\nremote-port: {receiver.port}\ntransport: udp")
            gevent.sleep(0.02)  # 2 call seconds at the simulator's scale
            got["reply"], got["events"] = reply.headers.get("Reply-Text"), s.events[before:]
            got["first"] = receiver.take()
            got["packets"] = receiver.packets
            s.execute("log", "INFO hello")
            s.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="log")
            receiver.take()
            gevent.sleep(0.02)
            got["after_app"] = receiver.take()
        finish(s)

    rec, _ = play({"name": "unicast", "answered": True}, handler)
    assert got["reply"] == "+OK" and got["events"] == []
    assert got["first"] and set(got["first"]) == {0xff} and len(got["first"]) % 320 == 0
    assert 60 <= got["packets"] <= 140  # about 50 per call second for 2 call seconds
    assert got["after_app"] == b"" and len(rec.unicast_packets) == 1


def test_scenario_audio_fields_are_checked_with_their_path():
    ok = Scenario.from_dict({"name": "x", "script": [{"hold": {"seconds": 30, "audio": "music"}},
                                                     {"audio": {"sound": "speech", "seconds": 2}}, {"audio": "noise"}]})
    assert [s.value for s in ok.script] == [(30.0, "music"), ("speech", 2.0), ("noise", None)]
    with pytest.raises(ScenarioError, match=r"script\[0\].hold.audio: 'jazz'; allowed: music"):
        Scenario.from_dict({"name": "x", "script": [{"hold": {"seconds": 3, "audio": "jazz"}}]})
    with pytest.raises(ScenarioError, match=r"script\[0\].hold.volume: unknown field"):
        Scenario.from_dict({"name": "x", "script": [{"hold": {"seconds": 3, "volume": 2}}]})
    with pytest.raises(ScenarioError, match=r"script\[0\].audio.sound: missing"):
        Scenario.from_dict({"name": "x", "script": [{"audio": {"seconds": 3}}]})
    assert Scenario.from_dict({"name": "x", "script": [{"wait_for": {"unicast": 2}}]}).script[0].value == ("unicast", 2)
    with pytest.raises(ScenarioError, match=r"script\[0\].wait_for: expected"):
        Scenario.from_dict({"name": "x", "script": [{"wait_for": {"app": "speak", "unicast": 1}}]})
