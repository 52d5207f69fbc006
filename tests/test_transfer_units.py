"""The transfer's pure parts: destination resolution, disposition mapping, and the builders it adds."""
from __future__ import annotations

import pytest

from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.esl.commands import (bridge_string, confirm_prompt, deflect, multiset_before_bridge, uuid_kill,
                                     uuid_transfer)
from controller.esl.values import DialStringError
from controller.transfer.destinations import DestinationIndex, Target, words
from controller.transfer.outcome import classify_disposition
from tests.support.transfer import transfer_config

UUID = "16161616-0000-4000-8000-000000000001"
ADVISORS = DestinationIndex([
    Target("paris", "Conseillers Île-de-France", number="+33170363950"),
    Target("lyon", "Conseillers Lyon", number="+33472103030"),
    Target("bruxelles", "Conseillers Belgique", number="+3225138940"),
    Target("sales", "Agent commercial", agent="sales"),
])
HOSTILE = ["a\nb", "a\rb", "${x}", "a b", "a,b", "a|b", "a{b}", "x" * 65, "", "a'b", "a\x00b", "\u202e"]


@pytest.mark.parametrize("text, expected, how", [
    ("lyon", "lyon", "exact"),
    ("LYON ", "lyon", "exact"),
    ("Conseillers Lyon", "lyon", "exact"),
    ("un conseiller à Lyon s'il vous plaît", "lyon", "exact"),
    ("je voudrais un conseiller à Lyon aujourd'hui", "lyon", "description"),
    ("passez-moi l'ile de france", "paris", "description"),
    ("un conseiller en belgique, vite", "bruxelles", "description"),
    ("le service commercial", "sales", "description"),
])
def test_the_destination_is_found_by_id_then_by_its_description(text, expected, how):
    resolution = ADVISORS.resolve(text)
    assert (resolution.target.id, resolution.how) == (expected, how)


@pytest.mark.parametrize("text, how", [
    ("je veux parler à un conseiller", "ambiguous"),
    ("bonjour", "no destination named"),
    ("+33612345678", "no destination named"),
    ("appelez le 01 70 36 39 50", "no destination named"),
    ("33170363950", "no destination named"),
    ("${destroy} \n X-Evil: 1", "no destination named"),
])
def test_a_request_that_names_no_single_destination_is_refused_and_no_number_is_ever_taken_from_it(text, how):
    resolution = ADVISORS.resolve(text)
    assert resolution.target is None and resolution.how == how


def test_two_equally_named_destinations_are_ambiguous():
    index = DestinationIndex([Target("a", "Support Lyon", number="+33472103030"),
                              Target("b", "Ventes Lyon", number="+33472103031")])
    resolution = index.resolve("Lyon")
    assert resolution.target is None and resolution.how == "ambiguous"
    assert [t.id for t in resolution.candidates] == ["a", "b"]


def test_without_a_destination_the_first_one_is_used_and_a_single_destination_takes_any_words():
    assert ADVISORS.resolve(None).target.id == "paris" and ADVISORS.resolve("  ").how.startswith("default")
    only = DestinationIndex([Target("desk", "Accueil", number="+33184808080")])
    assert only.resolve("+33612345678 please").target.number == "+33184808080"


def test_words_fold_accents_plurals_and_stop_words():
    assert words("Je voudrais les Conseillers d'Île-de-France") == ["conseiller", "ile", "franc"]


def test_a_large_directory_resolves_by_description():
    targets = [Target(f"n{i}", f"Agence {i:06d}", number=f"+3314{i:07d}", imported=True) for i in range(20000)]
    index = DestinationIndex(targets + [Target("lille", "Agence de Lille", number="+33320000000")])
    assert index.resolve("l'agence de Lille").target.id == "lille"
    assert index.resolve("n1234").target.number == "+33140001234"


@pytest.mark.parametrize("disposition, result", [
    ("SUCCESS", "answered"), ("ALLOTTED_TIMEOUT", "no_answer"), ("NO_ANSWER", "no_answer"),
    ("NO_USER_RESPONSE", "no_answer"), ("PROGRESS_TIMEOUT", "no_answer"), ("USER_BUSY", "busy"),
    ("CALL_REJECTED", "rejected"), ("ORIGINATOR_CANCEL", "abandoned"), ("GATEWAY_DOWN", "failed"),
    ("INCOMPATIBLE_DESTINATION", "failed"), (None, "failed"), ("", "failed"),
])
def test_every_disposition_maps_to_one_typed_result(disposition, result):
    outcome = classify_disposition(disposition)
    assert outcome.result == result
    assert outcome.cause == ((disposition or "").upper() or "UNKNOWN")


def test_the_caller_leg_gets_the_ringback_and_refuses_anything_else():
    assert multiset_before_bridge(False, "%(2000,4000,440,480)").arg.endswith(" transfer_ringback=%(2000,4000,440,480)")
    for bad in ("%(1,2) x=y", "${us-ring}", "%(1,2)\nhangup", "local_stream://moh"):
        with pytest.raises(DialStringError):
            multiset_before_bridge(False, bad).arg


@pytest.mark.parametrize("prompt, spoken", [
    ("Appel client, appuyez sur 1.", "Appel client appuyez sur 1."),
    ("Tapez 1 {x} [y] | 'z' ^ $w \\ =", "Tapez 1 x y z w"),
    ("line\nbreak\r\nand\ttab", "line break and tab"),
])
def test_a_confirm_prompt_loses_every_dial_string_separator(prompt, spoken):
    assert confirm_prompt(prompt) == spoken


@pytest.mark.parametrize("prompt", ["", " , ", "x" * 257])
def test_an_empty_or_too_long_confirm_prompt_is_refused(prompt):
    with pytest.raises(DialStringError):
        confirm_prompt(prompt)


def test_confirm_goes_in_the_global_variables_and_its_parts_are_checked():
    built = bridge_string("+33123456789", "trunk", "e164", 20, UUID, confirm=("#", "Appuyez", "flite", "kal"))
    assert built == ("{ignore_early_media=true,origination_uuid=" + UUID + ",group_confirm_key=#,"
                     "group_confirm_file=say:Appuyez,group_confirm_cancel_timeout=false,tts_engine=flite,"
                     "tts_voice=kal}[leg_timeout=20]sofia/gateway/trunk/+33123456789")
    for confirm in (("12", "x", "flite", "kal"), ("1", "x", "fl ite", "kal"), ("1", "x", "flite", "k,al")):
        with pytest.raises(DialStringError):
            bridge_string("+33123456789", "trunk", "e164", 20, UUID, confirm=confirm)


@pytest.mark.parametrize("value", HOSTILE)
def test_hand_off_refer_and_kill_commands_refuse_hostile_parts(value):
    with pytest.raises(DialStringError):
        uuid_transfer(UUID, value, "default")
    with pytest.raises(DialStringError):
        uuid_transfer(UUID, "2002", value)
    with pytest.raises(DialStringError):
        deflect("+33123456789", value, "e164").arg
    with pytest.raises(DialStringError):
        uuid_kill(value)


def test_the_hand_off_refer_and_kill_commands_are_exact():
    assert uuid_transfer(UUID, "2002", "default") == f"uuid_transfer {UUID} 2002 XML default"
    assert deflect("+33123456789", "sip.carrier.example", "e164_no_plus").arg == "sip:33123456789@sip.carrier.example"
    assert uuid_kill(UUID) == f"uuid_kill {UUID} ALLOTTED_TIMEOUT"


def test_a_confirm_prompt_too_long_for_a_dial_string_is_refused_by_check(tmp_path):
    path = transfer_config(tmp_path, {"confirm": {"key": "1", "prompt": "Appuyez sur un. " * 20},
                                      "destinations": [{"country": "FR", "number": "01 70 36 39 50",
                                                        "description": "Conseillers Paris"}]})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "confirm.prompt: is 319 characters long; allowed: at most 200 characters" in str(caught.value)
