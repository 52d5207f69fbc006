"""Fuzzing (hypothesis, derandomized: CI runs the same examples every time) of what arrives from the wire and of
every builder a value passes on its way to ESL: the frame reader, event bodies, speech results, the speech
builder, SIP header names and values, DTMF, numbers, gateways and the dial strings built from them.

Each test says what may come out: a parsed value or the one error type of that parser or builder, never another
exception; and what a builder lets through holds none of the characters that would start a new dial-string
variable, an expansion or a command. Hostile inputs found so far are kept as `@example`s and in
tests/fuzz_corpus/.
"""
from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings, strategies as st

from controller.esl import commands
from controller.esl.frames import Frame, FrameReader, ProtocolError, parse_event_body
from controller.esl.speech import MAX_SPEAK_CHARS, build_speech, parse_heard
from controller.esl.values import (DialStringError, normalise_number, validate_dtmf, validate_e164, validate_gateway,
                                   validate_header_name, validate_header_value)

FUZZ = settings(derandomize=True, max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CORPUS = Path(__file__).parent / "fuzz_corpus"
DIAL_STRING_BREAKERS = set(",'\"{}[]^|$\\\n\r\0")
HEADER_LINE = st.tuples(st.text(st.characters(blacklist_characters="\n:"), max_size=20),
                        st.text(st.characters(blacklist_characters="\n"), max_size=40))


def _frames(data: bytes) -> list[Frame]:
    """Every frame of `data`; ProtocolError ends the connection (that is the reader's one error)."""
    reader, out = FrameReader(io.BytesIO(data)), []
    for _ in range(1000):  # bounded: each read consumes input or ends it
        frame = reader.read()
        if frame is None:
            return out
        out.append(frame)
    raise AssertionError("the reader did not reach the end of a finite input")


def _corpus(name: str) -> list[bytes]:
    return [chunk.encode("utf-8").decode("unicode_escape").encode("latin-1")
            for chunk in (CORPUS / name).read_text(encoding="utf-8").split("\n---\n") if chunk.strip()]


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_give_frames_or_a_protocol_error(data):
    try:
        _frames(data)
    except ProtocolError:
        pass


@FUZZ
@given(st.lists(HEADER_LINE, max_size=8), st.sampled_from(["text/event-plain", "text/event-json", "text/event-xml",
                                                           "api/response", "command/reply"]),
       st.one_of(st.integers(-5, 5000).map(str), st.sampled_from(["1e3", "12abc", "", " 5", "١٢", "99999999999"])),
       st.binary(max_size=300))
def test_frames_with_hostile_headers_and_lengths_give_frames_or_a_protocol_error(headers, ctype, length, body):
    head = "".join(f"{k}: {v}\n" for k, v in headers) + f"Content-Type: {ctype}\nContent-Length: {length}\n\n"
    try:
        _frames(head.encode("utf-8", "surrogatepass") + body)
    except (ProtocolError, UnicodeEncodeError):
        pass


def test_the_hostile_frames_of_the_corpus_end_only_their_connection():
    for data in _corpus("frames.txt"):
        try:
            _frames(data)
        except ProtocolError:
            pass


@FUZZ
@given(st.sampled_from(["text/event-plain", "text/event-json", "text/event-xml"]), st.binary(max_size=1500))
@example("text/event-json", b'{"Event-Name": ["not", "a", "string"], "Content-Length": "-1"}')
@example("text/event-xml", b'<!DOCTYPE e [<!ENTITY a "aaaa">]><event><headers>&a;</headers></event>')
@example("text/event-plain", b"Event-Name: CUSTOM\nContent-Length: 99999999\n\nx")
def test_event_bodies_parse_or_raise_a_protocol_error(ctype, body):
    try:
        frame = parse_event_body(ctype, body)
    except ProtocolError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in frame.headers.items())


SPEECH_TEXT = st.text(max_size=300)


@FUZZ
@given(st.one_of(st.text(max_size=800), SPEECH_TEXT.map(lambda t: f'{{"text": {t!r}, "confidence": "x"}}'),
                 SPEECH_TEXT.map(lambda t: f'<result><interpretation confidence="{t[:5]}"><input mode="speech">{t}'
                                           '</input></interpretation></result>')))
@example('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><result>&x;</result>')
@example('{"text": {"nested": true}, "confidence": 1e400}')
@example('<result><interpretation><input mode="speech">${system rm -rf /}</input></interpretation></result>')
def test_speech_results_become_a_turn_whatever_the_recogniser_sends(body):
    heard = parse_heard(body)
    assert heard.kind in ("speech", "no_match", "no_input")
    assert heard.confidence is None or isinstance(heard.confidence, float)
    assert heard.kind != "speech" or heard.text.strip()


@FUZZ
@given(st.text(max_size=2000))
@example("${system rm -rf /}|kal|oops\n\x00{{ x }}")
@example("a" * 5000)
def test_whatever_the_brain_says_speak_gets_no_expansion_separator_or_control_character(text):
    spoken = build_speech(text, "flite", "kal")
    for part in spoken.parts:
        assert 0 < len(part) <= MAX_SPEAK_CHARS
        assert not set(part) & set("${}\n\r\0")
        app = commands.speak(part)
        assert app.arg.startswith("flite|kal|") and "\n" not in app.arg


@FUZZ
@given(st.text(max_size=300))
@example("X-Customer-Id")
@example("X-A\nX-B")
@example("X-" + "a" * 65)
def test_sip_header_names_are_x_names_or_refused(name):
    try:
        out = validate_header_name(name)
    except DialStringError:
        return
    assert out.startswith("X-") and out.replace("-", "").isalnum() and out.isascii()


@FUZZ
@given(st.text(max_size=300))
@example("42,sip_h_X-Evil=1")
@example("${system id}")
@example("a]sofia/gateway/evil/+1")
def test_sip_header_values_that_pass_cannot_start_another_variable(value):
    try:
        out = validate_header_value(value)
    except DialStringError:
        return
    assert not set(out) & DIAL_STRING_BREAKERS and out.isprintable() and out.isascii() and len(out) <= 256


@FUZZ
@given(st.text(max_size=200))
@example("1w2#@100")
@example("1" * 129)
@example("1;exit")
def test_dtmf_that_passes_holds_only_keys_pauses_and_a_duration(digits):
    try:
        out = validate_dtmf(digits)
    except DialStringError:
        return
    assert set(out) <= set("0123456789*#ABCDwW@")
    assert "\n" not in commands.send_dtmf(out, 100).arg


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=3)), st.text(max_size=60))
@example("FR", "01 23 45 67 89")
@example(None, "+33 1 23 45 67 89,leg_timeout=1")
@example("FR", "+٣٣١٢٣٤٥٦٧٨٩")
def test_numbers_normalise_to_e164_or_are_refused(country, number):
    try:
        out = normalise_number(country, number)
    except DialStringError:
        return
    assert out.startswith("+") and out[1:].isdigit() and out[1:].isascii() and validate_e164(out) == out


@FUZZ
@given(st.text(max_size=80), st.lists(st.tuples(st.text(max_size=30), st.text(max_size=60)), max_size=3),
       st.text(max_size=20))
@example("carrier_main", [("X-Reason", "support")], "+33612345678")
@example("gw}evil", [], "+33612345678")
@example("carrier_main", [("X-A", "1"), ("x-a", "2")], "+33612345678")
def test_bridge_dial_strings_carry_only_validated_pieces(gateway, headers, number):
    try:
        dial = commands.bridge_string(number, gateway, "e164", 20, "13131313-1313-4313-8313-131313131313",
                                      headers=headers)
    except DialStringError:
        return
    validate_gateway(gateway)
    assert dial.count("{") == dial.count("}") == dial.count("[") == dial.count("]") == 1
    assert "$" not in dial and "\n" not in dial
    variables, _, endpoint = dial.partition("]")
    assert endpoint == f"sofia/gateway/{gateway}/{number}"
    leg = variables.split("[", 1)[1].split(",")
    assert len(leg) == 1 + len(headers)  # leg_timeout, then each header one variable: nothing more
