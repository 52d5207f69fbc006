"""The simulator's pure parts: frame writer/reader, dial strings, scenario files."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from gevent import socket

from fssim.dialstring import DialStringError, parse_dial_string
from fssim.scenario import Scenario, ScenarioError, load_scenario
from fssim.wire import (FrameReader, api_response, command_reply, corrupt, event_plain, url_decode,
                                       url_encode)


def test_url_encoding_escapes_what_freeswitch_escapes_and_keeps_existing_escapes():
    assert url_encode("+33612345678") == "%2B33612345678"
    assert url_encode("ESL Test") == "ESL%20Test"
    assert url_encode("tone_stream://%(1000,0,440)") == "tone_stream%3A//%25(1000,0,440)"
    assert url_encode("+OK\n") == "%2BOK%0A"
    assert url_encode("#") == "%23"
    assert url_encode("50%20off") == "50%20off"
    assert url_encode("%2a") == "%252a"
    assert url_encode("é") == "%C3%A9"
    assert url_decode("ESL%20Test%2b") == "ESL Test+"


def test_a_plain_event_puts_its_length_first_and_its_body_after_an_inner_content_length():
    frame = event_plain([("Event-Name", "DETECTED_SPEECH"), ("Speech-Type", "detected-speech")], "héllo")
    head, _, inner = frame.partition(b"\n\n")
    assert head == f"Content-Length: {len(inner)}\nContent-Type: text/event-plain".encode()
    assert inner == "Event-Name: DETECTED_SPEECH\nSpeech-Type: detected-speech\nContent-Length: 6\n\nhéllo".encode()


def test_replies_and_api_results_are_framed_like_freeswitch():
    assert command_reply("+OK") == b"Content-Type: command/reply\nReply-Text: +OK\n\n"
    assert api_response("+OK\n") == b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"


def test_a_malformed_frame_lies_about_or_drops_its_content_length():
    frame = event_plain([("Event-Name", "CHANNEL_ANSWER")])
    body_length = len(frame.partition(b"\n\n")[2])
    assert corrupt(frame, "short_length").startswith(f"Content-Length: {body_length - 10}\n".encode())
    assert corrupt(frame, "long_length").startswith(f"Content-Length: {body_length + 10}\n".encode())
    assert b"Content-Length" not in corrupt(frame, "missing_length").partition(b"\n\n")[0]


def test_the_reader_reassembles_commands_split_across_tcp_segments():
    left, right = socket.socketpair()
    try:
        reader = FrameReader(right)
        left.sendall(b"myevents\n")
        left.sendall(b"\nsendmsg\ncall-command: execute\nexecute-app-name: speak\ncontent-type: text/plain\n")
        left.sendall(b"content-length: 12\n\nflite|kal|h")
        left.sendall(b"i\n\napi uuid_getvar x y\n\n")
        first, second, third = reader.read_command(), reader.read_command(), reader.read_command()
        assert (first.name, second.name, third.name) == ("myevents", "sendmsg", "api")
        assert second.app == "speak" and second.app_arg == "flite|kal|hi"
        assert third.arg == "uuid_getvar x y"
        left.close()
        assert reader.read_command() is None
    finally:
        right.close()


def test_a_body_without_text_plain_content_type_is_not_an_argument():
    left, right = socket.socketpair()
    try:
        left.sendall(b"sendmsg\ncall-command: execute\nexecute-app-name: playback\ncontent-length: 4\n\nbeep")
        command = FrameReader(right).read_command()
        assert command.body == b"beep" and command.app_arg is None
    finally:
        left.close()
        right.close()


def test_a_dial_string_yields_global_and_per_leg_variables_and_the_dialled_number():
    dial = parse_dial_string("{ignore_early_media=true,origination_uuid=U}"
                             "[leg_timeout=20,sip_h_X-Reason='a,b']sofia/gateway/trunk/+33100000004")
    leg = dial.legs[0]
    assert dial.global_variables == {"ignore_early_media": "true", "origination_uuid": "U"}
    assert leg.variables["leg_timeout"] == "20" and leg.variables["origination_uuid"] == "U"
    assert leg.sip_headers == {"X-Reason": "a,b"}
    assert (leg.gateway, leg.destination) == ("trunk", "+33100000004")


def test_commas_ring_legs_together_and_pipes_fail_over():
    dial = parse_dial_string("[leg_timeout=5]loopback/a/default,loopback/b/default|user/1000@example.org")
    assert [[leg.destination for leg in group] for group in dial.groups] == [["a", "b"], ["1000"]]


def test_an_unbalanced_dial_string_is_refused():
    with pytest.raises(DialStringError):
        parse_dial_string("{leg_timeout=5 sofia/gateway/gw/123")


def test_a_scenario_file_loads_with_its_targets_and_script(tmp_path):
    path = tmp_path / "call.yaml"
    path.write_text(textwrap.dedent("""
        name: support-transfer
        agent: support
        caller: {number: "+33612345678", name: Jane}
        sip_headers: {X-Customer-Id: "42"}
        targets:
          "+33100000004": {answer_after_s: 2, talk_s: 5}
          "+33100000002": busy
        script:
          - say: I want to talk to someone
          - dtmf: "12#"
            after: 1
          - hangup
    """))
    scenario = load_scenario(path)
    assert scenario.far_end("33100000004").outcome == "answer"
    assert scenario.far_end("+33100000002").outcome == "busy"
    assert [step.action for step in scenario.script] == ["say", "dtmf", "hangup"]
    assert scenario.script[1].after == 1.0 and scenario.script[2].value == "NORMAL_CLEARING"


@pytest.mark.parametrize("data, message", [
    ({"agent": "x"}, "name: missing"),
    ({"name": "x", "script": [{"dtmf": "12x"}]}, "script[0].dtmf: '12x' has characters other than"),
    ({"name": "x", "targets": {"123": "maybe"}}, "targets.123: 'maybe'; allowed: busy"),
    ({"name": "x", "speech_format": "xml"}, "speech_format: 'xml'; allowed: nlsml, json"),
    ({"name": "x", "colour": "red"}, "colour: unknown field"),
    ({"name": "x", "script": [{"say": "hi", "dtmf": "1"}]}, "script[0]: needs exactly one of"),
])
def test_a_bad_scenario_is_refused_with_the_field_and_the_fix(data, message):
    with pytest.raises(ScenarioError) as error:
        Scenario.from_dict(data, "bad.yaml")
    assert str(error.value).startswith("bad.yaml: ") and message in str(error.value)


def test_every_example_scenario_loads():
    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "scenarios").glob("*.yaml"))
    assert examples
    for path in examples:
        assert load_scenario(path).name == path.stem
