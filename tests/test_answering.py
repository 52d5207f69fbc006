"""The greeting detector alone (call/answering.py): phrases in French and English, timing, the beep; and the
config and classification pieces machine detection adds."""
from __future__ import annotations

from pathlib import Path

import pytest

from controller.aftercall.classify import classify
from controller.call.answering import GreetingDetector, from_words, is_hello
from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.esl import commands
from controller.esl.values import DialStringError


def heard(text: str, begin: float = 1.0, seconds: float | None = None, max_detect_s: float = 6.0):
    """Feed one utterance (begin-speaking, then its result) and the silence after it; the verdict."""
    detector = GreetingDetector(max_detect_s)
    end = begin + (len(text) * 0.06 if seconds is None else seconds)
    detector.begin_speaking(begin)
    if detector.due() < end and detector.tick(detector.due()):  # asked while the callee still speaks
        return detector.verdict
    verdict = detector.words(text, end)
    while verdict is None:
        verdict = detector.tick(detector.due())
    return verdict


@pytest.mark.parametrize("text", [
    "Bonjour, vous êtes bien chez Paul, laissez un message après le bip",
    "Vous êtes sur la messagerie de Julie",
    "Je ne suis pas disponible pour le moment",
    "Bienvenue sur le répondeur",
    "Hi, this is Tom, leave a message after the tone",
    "You have reached the voicemail of 06 12 34 56 78",
    "Sorry, I'm not available right now",
    "Salut c'est Karim, rappelle-moi",
])
def test_voicemail_phrases_are_machines(text):
    assert from_words(text) == ("machine", "phrase")
    assert heard(text).answered_by == "machine"


@pytest.mark.parametrize("text", [
    "Pour le service client, tapez 1", "Pour une réclamation, appuyez sur la touche 2",
    "For sales press 1, for support press 2", "Bienvenue chez Transports Martin, pour suivre un colis dites suivi",
    "Votre appel est important pour nous", "Thank you for calling Acme, if you know your party's extension",
])
def test_ivr_phrases_are_ivrs(text):
    assert from_words(text) == ("ivr", "phrase")


@pytest.mark.parametrize("text, how", [
    ("Allô ?", "short_greeting"), ("Oui, bonjour, c'est Marie", "short_greeting"), ("Hello?", "short_greeting"),
    ("Yes, speaking", "short_greeting"), ("Hello, Paul speaking", "short_greeting"),
    ("Oui allô, j'étais dans le jardin, excusez-moi", "pause"),
])
def test_people_say_a_short_greeting_and_wait(text, how):
    verdict = heard(text)
    assert (verdict.answered_by, verdict.how) == ("human", how)
    assert verdict.at_s < 3.0 + len(text) * 0.06


def test_a_bare_hello_is_not_a_caller_turn_but_a_sentence_is():
    assert is_hello("Allô ?") and is_hello("Oui bonjour, c'est Marie") and not is_hello("Oui, je voulais savoir")


def test_long_speech_without_a_pause_is_a_machine_even_without_a_known_phrase():
    text = "Bonjour, Paul et Marie Dupont, au plaisir de vous entendre, à très bientôt et belle journée"
    verdict = heard(text, seconds=5.0)
    assert (verdict.answered_by, verdict.how) == ("machine", "length")
    assert verdict.at_s == pytest.approx(1.0 + 3.5)  # decided while it still talks


def test_a_beep_is_a_machine_and_the_first_verdict_stays():
    detector = GreetingDetector(6.0)
    detector.begin_speaking(0.5)
    assert detector.words("Paul Dupont", 1.3) is None
    assert detector.beep(1.6).how == "beep"
    assert detector.words("Allô ?", 2.0).how == "beep"


def test_silence_until_the_limit_is_unknown():
    detector = GreetingDetector(4.0)
    assert detector.tick(3.9) is None and detector.due() == 4.0
    assert (detector.tick(4.0).answered_by, detector.verdict.how) == ("unknown", "timeout")


def test_avmd_arguments_follow_the_channel_direction():
    assert commands.avmd_start("outbound") == ("avmd_start", "inbound_channel=0,outbound_channel=1")
    assert commands.avmd_start("inbound") == ("avmd_start", "inbound_channel=1,outbound_channel=0")
    assert commands.avmd_stop() == ("avmd_stop", None)
    assert commands.event_plain(commands.AVMD_EVENTS) == "event plain CUSTOM avmd::beep avmd::start avmd::stop"
    with pytest.raises(DialStringError):
        commands.avmd_start("sideways")


def test_classification_on_answered_by():
    rules = {"voicemail": {"when": {"answered_by": "machine"}}, "other": {"fallback": True}}
    assert classify({"answered_by": "machine"}, rules) == "voicemail"
    assert classify({"answered_by": "human"}, rules) == "other"
    assert classify({"answered_by": None}, rules) == "other"


AGENT = """\
agents:
  sales:
    language: fr
    machine_detection: {enabled: outbound, max_detect_s: 5}
    actions:
      during_call:
        - type: hangup
          name: voicemail
          description: Message on a voicemail.
          answered_by: [machine]
          leave_message: "Bonjour, rappelez-nous au 01 02 03 04 05."
classifications:
  voicemail: {description: A machine answered, when: {answered_by: machine}}
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_a_voicemail_hangup_needs_no_condition_and_is_not_offered_to_the_brain(tmp_path):
    from controller.actions.hangup import HangupAction
    config = load(tmp_path, AGENT)
    agent = config.agents["sales"]
    [action] = agent.actions.during_call
    assert action.condition is None and action.answered_by == ["machine"]
    assert agent.machine_detection.max_detect_s == 5
    assert HangupAction(action, agent, None).offered is False
    assert config.classifications["voicemail"].when.answered_by == "machine"


@pytest.mark.parametrize("old, new, expected", [
    ("          answered_by: [machine]\n", "", "a hang-up needs a condition, an answered_by, or both"),
    ("answered_by: [machine]", "answered_by: [human]", "answered_by[0]"),
    ("answered_by: [machine]", "answered_by: [ivr]\n          condition: An IVR",
     "leave_message is spoken to an answering machine after its beep"),
    ("enabled: outbound", "enabled: sometimes", "machine_detection.enabled"),
    ("max_detect_s: 5", "max_detect_s: 0", "machine_detection.max_detect_s"),
    ("when: {answered_by: machine}", "when: {answered_by: robot}", "when.answered_by"),
])
def test_bad_machine_detection_settings_name_the_field(tmp_path, old, new, expected):
    assert old in AGENT
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, AGENT.replace(old, new, 1))
    assert any(expected in str(issue) for issue in caught.value.issues), [str(i) for i in caught.value.issues]


def test_a_long_ivr_menu_first_taken_for_a_machine_by_its_length_is_an_ivr_once_its_words_are_heard():
    detector = GreetingDetector(6.0)
    detector.begin_speaking(1.0)
    assert detector.tick(4.5).how == "length"
    verdict = detector.words("Bienvenue chez TransExpress. Pour le suivi de votre colis, tapez 1.", 5.0)
    assert (verdict.answered_by, verdict.how) == ("ivr", "phrase")


def test_check_warns_that_a_voicemail_hangup_never_runs_with_detection_off(tmp_path):
    from controller.config.checks import config_warnings
    config = load(tmp_path, AGENT.replace("enabled: outbound", "enabled: off"))
    [warning] = [w for w in config_warnings(config) if "answered_by" in w]
    assert "machine detection is off for this agent" in warning
