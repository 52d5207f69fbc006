"""The speech-out builder and the ASR result parser: pure functions, hostile inputs."""
from __future__ import annotations

from controller.esl.speech import MAX_SPEAK_CHARS, build_speech, parse_heard


def test_speech_always_goes_out_as_engine_voice_text():
    assert build_speech("Bonjour.", "flite", "kal").parts == ("flite|kal|Bonjour.",)


def test_expansion_characters_and_control_characters_are_removed_and_reported():
    spoken = build_speech("Votre code ${sofia_contact(1000)}\x00 est\nprêt.", "flite", "kal")
    assert spoken.parts == ("flite|kal|Votre code sofia_contact(1000) est prêt.",)
    assert set(spoken.removed) == {"$", "{", "}", "\x00"}


def test_long_text_is_split_at_sentence_ends_and_no_part_exceeds_500_characters():
    sentence = "Ceci est une phrase de test assez longue pour remplir la limite. "
    spoken = build_speech(sentence * 30, "flite", "kal")
    assert len(spoken.parts) > 1
    assert all(len(p) <= MAX_SPEAK_CHARS for p in spoken.parts)
    assert all(p.startswith("flite|kal|") and p.endswith(".") for p in spoken.parts)


def test_a_sentence_longer_than_the_cap_is_cut_at_a_space():
    spoken = build_speech("mot " * 300, "flite", "kal")
    assert all(len(p) <= MAX_SPEAK_CHARS for p in spoken.parts)
    assert " ".join(p.split("|", 2)[2] for p in spoken.parts) == ("mot " * 300).strip()


def test_empty_or_hostile_only_text_gives_nothing_to_speak():
    assert build_speech("${}", "flite", "kal").parts == ()


def test_nlsml_results_give_the_words_and_the_confidence():
    body = ('<?xml version="1.0"?><result><interpretation grammar="g" confidence="87">'
            '<input mode="speech">je voudrais parler au support</input></interpretation></result>')
    heard = parse_heard(body)
    assert (heard.kind, heard.text, heard.confidence) == ("speech", "je voudrais parler au support", 0.87)


def test_nomatch_noinput_and_empty_results_are_typed():
    assert parse_heard("<result><interpretation><input><nomatch/></input></interpretation></result>").kind == "no_match"
    assert parse_heard("<result><interpretation><input><noinput/></input></interpretation></result>").kind == "no_input"
    assert parse_heard("").kind == "no_match"
    assert parse_heard('{"text": ""}').kind == "no_match"


def test_json_results_are_parsed_too():
    heard = parse_heard('{"text": "I want to talk to sales", "confidence": 0.9}')
    assert (heard.kind, heard.text, heard.confidence) == ("speech", "I want to talk to sales", 0.9)


def test_a_result_with_a_dtd_or_broken_xml_is_a_no_match_not_a_crash():
    bomb = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><result><input>&a;</input></result>'
    assert parse_heard(bomb).kind == "no_match"
    assert parse_heard("<result><input>oops").kind == "no_match"
