"""The keypad action reading its keys from the menu heard: the parser, the goal matcher, the action against a
FakeContext (the same-keys rule, listening after the keys), the semantic brain's routing and the config checks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from controller.actions import build_actions
from controller.actions.base import ActionRefused
from controller.brain.base import BrainContext, Turn
from controller.brain.calibration import shipped_phrase_sets
from controller.brain.semantic import SemanticBrain
from controller.brain.tools import build_toolset, validate_arguments
from controller.brain.menu import MenuOption, parse_menu
from controller.brain.menu_goal import choose_option
from controller.clock import Clock
from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.esl import commands
from controller.esl.commands import App
from controller.esl.values import DialStringError
from knowledge.embedders import get_embedder
from knowledge.sources import EmbedderSpec
from tests.support.controller import write_config
from tests.support.event_frames import detected_speech, speech_event
from tests.support.fake_context import FakeContext, services_for

SCALE = 0.02
AGENT = """
language: fr
brain: {type: semantic}
speech:
  asr: {module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}
actions:
  during_call:
    - {type: keypad, name: ivr, description: "Choisir dans le serveur vocal.",
       goal: "{{ goal | default('faire une réclamation') }}", listen_after_s: 8}
    - {type: keypad, name: fixed, description: "Taper 1.", digits: "1"}
    - {type: keypad, name: fixed_again, description: "Taper 1 encore.", digits: "1", repeat_keys: true}
"""


@pytest.fixture
def config(tmp_path: Path) -> Any:
    return load_config(write_config(tmp_path, {"support": AGENT}))


@pytest.fixture
def made() -> Iterator[list[FakeContext]]:
    contexts: list[FakeContext] = []
    yield contexts
    for ctx in contexts:
        ctx.close()


def context(config: Any, made: list[FakeContext], name: str, **script: Any) -> tuple[FakeContext, Any]:
    services = services_for(config, Clock(SCALE))
    action = build_actions(config.agents["support"], services)[name]
    ctx = FakeContext(config.agents["support"], services, **script)
    made.append(ctx)
    return ctx, action


# ---------------------------------------------------------------- reading the menu
@pytest.mark.parametrize("text, options", [
    ("Pour le suivi de votre colis tapez 1, pour une réclamation tapez 2",
     [("pour le suivi de votre colis", "1"), ("pour une reclamation", "2")]),
    ("Welcome. For billing, press 2. For technical support, press three.",
     [("for billing", "2"), ("for technical support", "3")]),
    ("Press 1 for sales, press 2 for support, or press star to hear these options again.",
     [("for sales", "1"), ("for support", "2"), ("to hear these options again", "*")]),
    ("Si vous êtes un particulier, tapez 1. Si vous êtes un professionnel, tapez deux.",
     [("si vous etes un particulier", "1"), ("si vous etes un professionnel", "2")]),
    ("Pour parler à un conseiller, faites le 3. Pour réécouter, appuyez sur la touche étoile. "
     "Pour le menu principal, touche dièse",
     [("pour parler a un conseiller", "3"), ("pour reecouter", "*"), ("pour le menu principal", "#")]),
    ("Bienvenue chez Colis Express, tapez deux pour une réclamation, tapez un pour le suivi",
     [("pour une reclamation", "2"), ("pour le suivi", "1")]),
    ("To speak to an operator press pound", [("to speak to an operator", "#")]),
    ("Bonjour, je suis Paul, que puis-je faire pour vous ?", []),
])
def test_the_menu_heard_becomes_options_in_french_and_english(text, options):
    assert [(o.label, o.keys) for o in parse_menu(text)] == options


@pytest.mark.parametrize("goal, keys", [("réclamation", "2"), ("suivre un colis", "1"), ("je veux me plaindre", "2"),
                                        ("where is my parcel", "1")])
def test_the_option_for_the_goal_is_chosen_whatever_the_wording(goal, keys):
    options = parse_menu("Pour le suivi de votre colis tapez 1, pour une réclamation tapez 2")
    assert choose_option(options, goal).option.keys == keys


def test_no_option_for_the_goal_or_a_tie_chooses_nothing():
    options = [MenuOption("pour les ventes", "1"), MenuOption("pour le support", "2")]
    assert choose_option(options, "résilier mon contrat").reason == "no_option_matches"
    tie = [MenuOption("facture internet", "1"), MenuOption("facture mobile", "2")]
    assert choose_option(tie, "une facture").reason == "ambiguous"


# ---------------------------------------------------------------- the action
def test_the_issues_example_presses_2_for_a_reclamation_not_1(config, made):
    ctx, action = context(config, made, "ivr")
    outcome = action.run(ctx, {"menu": "Pour le suivi de votre colis tapez 1, pour une réclamation tapez 2"})
    assert ctx.apps[0] == App("send_dtmf", "2@100")
    assert outcome.detail["source"] == "menu" and outcome.detail["option"] == "pour une reclamation"


def test_the_goal_is_a_template_over_call_variables(config, made):
    ctx, action = context(config, made, "ivr", variables={"goal": "talk to billing"})
    action.run(ctx, {"menu": "For sales, press 1. For billing, press 2."})
    assert ctx.apps[0] == App("send_dtmf", "2@100")


@pytest.mark.parametrize("menu, reason", [("Bonjour et bienvenue", "no_menu_heard"),
                                          ("Pour les ventes tapez 1, pour le support tapez 2", "no_option_matches")])
def test_no_key_is_pressed_when_the_menu_offers_nothing_for_the_goal(config, made, menu, reason):
    ctx, action = context(config, made, "ivr")
    with pytest.raises(ActionRefused) as refused:
        action.run(ctx, {"menu": menu})
    assert (refused.value.reason, refused.value.field) == (reason, "menu") and ctx.apps == []


def test_after_the_keys_the_agent_listens_and_the_ivrs_next_menu_is_the_next_turn(config, made):
    ctx, action = context(config, made, "ivr", events=[
        (2.0, speech_event("begin-speaking")), (3.0, detected_speech("Réclamation. Pour un colis abîmé tapez 1.")),
        (3.5, detected_speech("Pour un colis perdu tapez 2."))])
    outcome = action.run(ctx, {"menu": "pour une réclamation tapez 2"})
    assert ctx.said == [] and ctx.silence_restarts == 1
    heard = "Réclamation. Pour un colis abîmé tapez 1. Pour un colis perdu tapez 2."
    assert ctx.pushed == [Turn("speech", heard, 0.9)]
    assert outcome.detail["heard_after"] == ctx.pushed[0].text
    assert [t["who"] for t in ctx.transcript] == ["caller"]


def test_a_silent_ivr_gets_no_prompt_until_listen_after_s_has_passed(config, made):
    ctx, action = context(config, made, "ivr")
    outcome = action.run(ctx, {"menu": "pour une réclamation tapez 2"})
    assert ctx.said == [] and ctx.pushed == [] and outcome.detail["heard_after"] == ""
    assert ctx.silence_restarts == 1  # the no-input clock starts only now, listen_after_s after the keys


def test_the_same_fixed_keys_are_refused_for_a_second_prompt_unless_repeat_keys(config, made):
    ctx, fixed = context(config, made, "fixed")
    fixed.run(ctx, {"menu": "Pour le suivi tapez 1"})
    fixed.run(ctx, {"menu": "Pour le suivi tapez 1"})  # the same prompt again: the IVR did not get it
    with pytest.raises(ActionRefused) as refused:
        fixed.run(ctx, {"menu": "Pour une réclamation tapez 2"})
    assert (refused.value.reason, refused.value.field) == ("same_keys_twice", "digits")
    assert ctx.sent("send_dtmf") == ["1@100", "1@100"]
    _, again = context(config, made, "fixed_again")
    again.run(ctx, {"menu": "Pour une réclamation tapez 2"})
    assert ctx.sent("send_dtmf") == ["1@100", "1@100", "1@100"]


@pytest.mark.parametrize("digits, sent", [("12@200", "12@200"), ("1w2#", "1w2#@100")])
def test_brain_digits_with_a_tone_length_or_pauses_are_sent_as_freeswitch_reads_them(config, made, digits, sent):
    ctx, action = context(config, made, "ivr")
    action.run(ctx, {"digits": digits})
    assert ctx.sent("send_dtmf") == [sent]


@pytest.mark.parametrize("digits", ["1" * 100, "x", "12@5"])
def test_bad_brain_digits_are_a_typed_refusal(config, made, digits):
    ctx, action = context(config, made, "ivr")
    assert action.validate({"digits": digits})  # the schema refuses it before the action runs...
    with pytest.raises(ActionRefused) as refused:  # ...and the action itself too
        action.run(ctx, {"digits": digits})
    assert refused.value.reason.startswith("invalid_digits: ") and ctx.apps == []


# ---------------------------------------------------------------- the semantic brain
def test_the_semantic_brain_sends_a_menu_to_the_keypad_that_reads_menus_and_other_words_elsewhere(config):
    services = services_for(config, Clock(SCALE))
    specs = [a.base_spec() for a in build_actions(config.agents["support"], services).values()]
    [english] = shipped_phrase_sets(("en",))
    actions = specs + [a for a in english.actions if a.type != "keypad"]
    brain = SemanticBrain(get_embedder(EmbedderSpec("minilm")))
    menu = "To speak to an operator press 0, for billing press 2"
    decision = brain.decide(Turn("speech", menu), BrainContext("u", "support", "en", [], {}, actions))
    assert decision.action is not None and (decision.action.name, decision.action.arguments) == ("ivr", {"menu": menu})
    order = Turn("speech", "I would like to place an order")
    words = brain.decide(order, BrainContext("u", "s", "en", [], {}, actions))
    assert words.action is None or words.action.name != "ivr"


def test_the_openai_brain_is_offered_digits_and_menu_both_optional(config):
    spec = build_actions(config.agents["support"], services_for(config, Clock(SCALE)))["ivr"].base_spec()
    [tool] = build_toolset([spec]).tools
    parameters = tool["function"]["parameters"]
    assert set(parameters["properties"]) == {"digits", "menu"} and "required" not in parameters
    assert validate_arguments(parameters, {"digits": "12#"}) == []
    assert validate_arguments(parameters, {"digits": "12x"})


# ---------------------------------------------------------------- configuration and dial strings
@pytest.mark.parametrize("digits, message", [
    ('"1" ', None), ('"12@200"', None),
    ('"' + "1" * 100 + '"', "is not a DTMF sequence; allowed: 1..99 of 0-9 * # A B C D w W"),
    ('"x"', "'x' is not a DTMF sequence")])
def test_fixed_digits_are_checked_at_load(tmp_path, digits, message):
    agent = AGENT.replace('digits: "1", repeat_keys', f"digits: {digits}, repeat_keys")
    path = write_config(tmp_path, {"support": agent})
    if message is None:
        load_config(path)
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "(keypad \"fixed_again\").digits: " in str(caught.value) and message in str(caught.value)


def test_listen_after_s_is_bounded(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"support": AGENT.replace("listen_after_s: 8", "listen_after_s: 90")}))
    assert "listen_after_s" in str(caught.value)


def test_the_sip_connections_dtmf_mode_is_in_the_originate_and_bridge_dial_strings():
    uuid = "13131313-1313-4313-8313-131313131313"
    args = ("+33612345678", "gw", "e164", uuid, "support", ("127.0.0.1", 8084), 30)
    assert "ignore_early_media=true,dtmf_type=info}sofia/" in commands.originate(*args, dtmf="info")
    assert "dtmf_type=none,execute_on_answer=start_dtmf_generate}" in commands.originate(*args, dtmf="inband")
    assert "dtmf_type" not in commands.originate(*args)
    leg = commands.bridge_string("+33612345678", "gw", "e164", 20, uuid, dtmf="rfc2833")
    assert "[leg_timeout=20,dtmf_type=rfc2833]sofia/gateway/gw/" in leg
    with pytest.raises(DialStringError):
        commands.originate(*args, dtmf="sip")
