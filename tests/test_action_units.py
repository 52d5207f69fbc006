"""Each during-call action alone against a FakeContext (tests/support/fake_context.py): the apps, api commands,
sentences and turns it produces, with configurations read by the real loader and no socket, simulator or Redis."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from controller.actions import build_actions
from controller.actions.base import Action, ActionRefused
from controller.actions.context import ActionContext
from controller.call.conversation import Conversation
from controller.clock import Clock
from controller.config.load import load_config
from controller.config.schema import Config
from controller.esl.commands import App
from controller.esl.frames import CallHangup
from controller.phrases import phrase
from tests.support.controller import write_config
from tests.support.event_frames import FAKE_UUID, channel_event, detected_speech
from tests.support.fake_context import Bridge, FakeContext, services_for
from tests.support.transfer import SALES, agent_yaml, transfer_config

SCALE = 0.02  # call seconds -> real seconds: a 5 s wait takes 0.1 s
PARIS = [{"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]
RINGBACK_FR = "transfer_ringback=%(1500,3500,440)"
UTILITY = """
language: fr
brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}
speech:
  asr: {module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}
actions:
  during_call:
    - {type: keypad, name: menu_choice, description: "Choisir le suivi de colis.", digits: "1w2", tone_ms: 100}
    - {type: keypad, name: press_keys, description: "Taper les touches que le serveur vocal demande."}
    - {type: hangup, name: end_call, description: "Raccrocher.", condition: "L'appelant prend congé.",
       min_attempts: 2}
    - {type: wait, name: hold_on, description: "Patienter en attente.", max_wait_s: 5,
       message_after: "Merci d'avoir patienté."}
    - {type: rag, name: faq, description: "Répondre aux questions.", source: kb,
       message_no_answer: "Je ne trouve pas cette information dans nos documents."}
"""
KB = """
knowledge_sources:
  kb: {index_dir: kb, embedder: use-m3, language: fr}
"""


@pytest.fixture
def run() -> Iterator[Callable[..., Any]]:
    """run(config, action name, arguments, **script) -> (outcome, fake); every fake is closed afterwards."""
    made: list[FakeContext] = []

    def run_action(config: Config, name: str, arguments: dict[str, Any] | None = None, agent: str = "support",
                   **script: Any) -> tuple[Any, FakeContext]:
        ctx, action = context(config, name, agent, **script)
        return action.run(ctx, arguments or {}), ctx

    def context(config: Config, name: str, agent: str = "support", **script: Any) -> tuple[FakeContext, Action]:
        clock = Clock(SCALE)
        services = services_for(config, clock)
        action = build_actions(config.agents[agent], services)[name]
        ctx = FakeContext(config.agents[agent], services, **script)
        made.append(ctx)
        return ctx, action

    run_action.context = context  # type: ignore[attr-defined]
    yield run_action
    for ctx in made:
        ctx.close()


@pytest.fixture
def utility(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path, {"support": UTILITY}, extra=KB))


def transfer(tmp_path: Path, **settings: Any) -> Config:
    return load_config(transfer_config(tmp_path, {"destinations": PARIS, **settings}))


def handing_off(tmp_path: Path) -> Config:
    support = agent_yaml({"destinations": [{"agent": "sales", "description": "Agent commercial"}]})
    return load_config(transfer_config(tmp_path, agents={"support": support, "sales": SALES}))


# ---------------------------------------------------------------- the fake itself
def test_the_fake_implements_every_member_of_the_action_context_with_the_conversations_signatures(utility):
    members = [name for name in vars(ActionContext) if not name.startswith("_")]
    methods = [name for name in members if callable(getattr(ActionContext, name))]
    fake = FakeContext(utility.agents["support"], services_for(utility, Clock(SCALE)))
    try:
        for name in ActionContext.__annotations__:
            assert hasattr(fake, name), name
        for name in methods:
            expected = inspect.signature(getattr(ActionContext, name)).parameters.keys()
            assert inspect.signature(getattr(FakeContext, name)).parameters.keys() == expected, name
            assert inspect.signature(getattr(Conversation, name)).parameters.keys() == expected, name
    finally:
        fake.close()


# ---------------------------------------------------------------- keypad
def test_keypad_with_fixed_digits_waits_until_the_agent_is_quiet_then_sends_them_with_the_tone_length(utility, run):
    ctx, action = run.context(utility, "menu_choice", speak_s=2.0)
    ctx.say("Je compose le numéro du suivi.")
    outcome = action.run(ctx, {})
    assert (outcome.result, outcome.detail) == ("sent", {"digits": "1w2"})
    assert ctx.apps[-1] == App("send_dtmf", "1w2@100")
    assert ctx.timeline.index("sent send_dtmf 1w2@100") > ctx.timeline.index("got CHANNEL_EXECUTE_COMPLETE speak")
    assert ctx.quiet_waits == 1


def test_keypad_without_fixed_digits_sends_the_digits_the_brain_chose(utility, run):
    outcome, ctx = run(utility, "press_keys", {"digits": "12#"})
    assert outcome.result == "sent" and ctx.apps == [App("send_dtmf", "12#@100")]


@pytest.mark.parametrize("digits", ["12x", "1 2", "1\nhangup", ""])
def test_keypad_refuses_digits_that_are_not_dtmf_and_sends_nothing(utility, run, digits):
    ctx, action = run.context(utility, "press_keys")
    with pytest.raises(ActionRefused) as refused:
        action.run(ctx, {"digits": digits})
    assert refused.value.field == "digits"
    assert ctx.apps == [] and ctx.quiet_waits == 0


# ---------------------------------------------------------------- transfer to a number
def test_a_busy_number_is_taken_back_with_the_busy_message_in_the_agents_language(tmp_path, run):
    outcome, ctx = run(transfer(tmp_path), "to_advisor", {"destination": "Paris"},
                       bridge=Bridge("USER_BUSY", ring_s=2.0))
    busy = phrase("fr", "transfer_busy")
    assert (outcome.result, outcome.progress, outcome.end_call) == ("busy", False, False)
    assert outcome.detail["cause"] == "USER_BUSY" and outcome.detail["said"] == busy
    assert ctx.said == [phrase("fr", "transfer_transferring"), busy]
    assert ctx.app_names() == ["speak", "detect_speech", "multiset", "bridge", "detect_speech", "speak"]
    assert ctx.sent("detect_speech") == ["pause", "resume"]
    assert ctx.sent("multiset") == ["continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false "
                                    + RINGBACK_FR]
    peer = outcome.detail["origination_uuid"]
    assert ctx.sent("bridge") == [f"{{ignore_early_media=true,origination_uuid={peer}}}[leg_timeout=20]"
                                  "sofia/gateway/trunk_main/+33170363950"]
    assert ctx.listeners == [] and ctx.apis == []


def test_a_busy_number_without_speech_recognition_neither_pauses_nor_resumes_it(tmp_path, run):
    outcome, ctx = run(transfer(tmp_path), "to_advisor", {}, bridge=Bridge("USER_BUSY"), asr=False)
    assert outcome.result == "busy"
    assert ctx.app_names() == ["speak", "multiset", "bridge", "speak"]


def test_an_answered_transfer_with_after_bridge_hangup_ends_the_call_once_the_far_end_hangs_up(tmp_path, run):
    outcome, ctx = run(transfer(tmp_path), "to_advisor", {}, bridge=Bridge("SUCCESS", ring_s=1.0, talk_s=3.0))
    assert (outcome.result, outcome.end_call, outcome.detail["disposition"]) == ("answered", True, "SUCCESS")
    assert outcome.detail["ring_s"] == pytest.approx(1.0, abs=0.5)
    assert outcome.detail["talk_s"] == pytest.approx(3.0, abs=0.5)
    assert ctx.said == [phrase("fr", "transfer_transferring")] and ctx.sent("detect_speech") == ["pause"]


def test_an_answered_transfer_with_after_bridge_resume_takes_the_caller_back(tmp_path, run):
    outcome, ctx = run(transfer(tmp_path, after_bridge="resume"), "to_advisor", {}, bridge=Bridge("SUCCESS"))
    assert (outcome.result, outcome.end_call) == ("answered", False)
    assert ctx.said[-1] == phrase("fr", "not_yet") and ctx.sent("detect_speech") == ["pause", "resume"]


def test_a_bridge_freeswitch_never_reports_is_ended_by_the_guards_uuid_kill_and_the_caller_taken_back(tmp_path,
                                                                                                       run):
    outcome, ctx = run(transfer(tmp_path, max_ring_s=5), "to_advisor", {}, bridge=Bridge(reports=False))
    peer = outcome.detail["origination_uuid"]
    assert ctx.apis == [f"uuid_kill {peer} ALLOTTED_TIMEOUT"]
    assert (outcome.result, outcome.detail["guard_fired"], outcome.detail["disposition"]) == \
        ("no_answer", True, "ALLOTTED_TIMEOUT")
    assert ctx.said[-1] == phrase("fr", "transfer_no_answer")


def test_the_caller_hanging_up_while_it_rings_ends_the_transfer_as_abandoned(tmp_path, run):
    ctx, action = run.context(transfer(tmp_path), "to_advisor", bridge=Bridge("NO_ANSWER", ring_s=20), hangup_at=2)
    with pytest.raises(CallHangup) as hangup:
        action.run(ctx, {})
    assert hangup.value.outcome.result == "abandoned" and ctx.listeners == []


def test_a_transfer_to_an_imported_number_without_a_sip_connection_fails_and_dials_nothing(tmp_path, run):
    config = handing_off(tmp_path)  # agent destinations only: no SIP connection needed, none chosen
    numbers = tmp_path / "numbers"
    numbers.mkdir()
    (numbers / "support.to_advisor.csv").write_text("phone,description\n+33170363950,Conseillers Paris\n")
    outcome, ctx = run(config, "to_advisor", {"destination": "Conseillers Paris"})
    assert (outcome.result, outcome.detail["cause"], outcome.progress) == ("failed", "NO_SIP_CONNECTION", False)
    assert ctx.app_names() == ["speak"] and ctx.said == [phrase("fr", "transfer_failed")]
    assert ctx.listeners == [] and ctx.apis == []


# ---------------------------------------------------------------- hand-off to another agent
def test_a_hand_off_freeswitch_accepts_returns_handed_off_after_the_uuid_transfer(tmp_path, run):
    outcome, ctx = run(handing_off(tmp_path), "to_advisor", {"destination": "commercial"})
    command = f"uuid_transfer {FAKE_UUID} 2002 XML default"
    assert (outcome.result, outcome.handed_off) == ("handed_off", True)
    assert ctx.apis == [command]
    [handoff] = ctx.hand_offs
    assert (handoff.command, handoff.agent_id, handoff.accepted) == (command, "sales", True)
    assert handoff.detail["agent"] == "sales" and (handoff.detail["extension"], handoff.detail["context"]) == \
        ("2002", "default")
    assert ctx.app_names() == ["speak", "detect_speech"] and ctx.sent("detect_speech") == ["stop"]
    assert ctx.released


def test_a_hand_off_freeswitch_refuses_is_taken_back_with_cause_transfer_refused(tmp_path, run):
    outcome, ctx = run(handing_off(tmp_path), "to_advisor", {}, refuse_hand_off="-ERR No such channel!\n")
    assert (outcome.result, outcome.handed_off, outcome.progress) == ("failed", False, False)
    assert outcome.detail["cause"] == "TRANSFER_REFUSED" and "No such channel" in outcome.detail["error"]
    assert [h.accepted for h in ctx.hand_offs] == [False] and not ctx.released
    assert ctx.said == [phrase("fr", "transfer_transferring"), phrase("fr", "transfer_failed")]


# ---------------------------------------------------------------- hang-up
def test_hangup_with_min_attempts_two_asks_first_then_ends_the_call_the_second_time(utility, run):
    ctx, action = run.context(utility, "end_call")
    first = action.run(ctx, {})
    assert (first.result, first.say, first.end_call, first.progress) == \
        ("condition_met", phrase("fr", "not_yet"), False, False)
    second = action.run(ctx, {})
    assert (second.result, second.say, second.end_call) == ("hung_up", phrase("fr", "goodbye"), True)
    assert second.detail == {"attempt": 2, "min_attempts": 2}
    assert ctx.apps == []  # the conversation says the goodbye and hangs up, not the action
    assert ctx.variables == run.context(utility, "end_call")[0].variables  # the tally is not a call variable


# ---------------------------------------------------------------- wait
def test_wait_resumes_when_a_person_speaks_and_hands_their_words_to_the_conversation(utility, run):
    person = "Bonjour, Marc à l'appareil, que puis-je faire pour vous ?"
    outcome, ctx = run(utility, "hold_on", events=[(0.5, detected_speech("Veuillez patienter, votre appel est "
                                                                          "important")),
                                                   (1.0, detected_speech(person, confidence=87))])
    assert (outcome.result, outcome.detail["reason"], outcome.say) == \
        ("resumed", "person_speaking", "Merci d'avoir patienté.")
    assert outcome.detail["recorded_prompts"] == ["Veuillez patienter, votre appel est important"]
    assert [(t.kind, t.text, t.confidence) for t in ctx.pushed] == [("speech", person, 0.87)]
    assert [(t["who"], t["text"]) for t in ctx.transcript] == [("caller", person)]
    assert ctx.sent("detect_speech") == ["resume", "resume"] and ctx.silence_restarts == 1
    assert outcome.detail["audio_seconds"] == {}  # the fake streams no audio: the words alone decide


@pytest.mark.parametrize("person", ["Bonjour, merci pour votre appel, Sophie à l'appareil.",
                                    "Hello, I'm impressed you waited, Dave speaking. Cordialement."])
def test_wait_takes_a_person_for_a_person_even_with_words_a_recorded_prompt_contains(utility, run, person):
    outcome, ctx = run(utility, "hold_on", events=[(0.5, detected_speech(person))])
    assert (outcome.result, outcome.detail["reason"]) == ("resumed", "person_speaking")
    assert [t.text for t in ctx.pushed] == [person]


def test_wait_resumes_when_the_far_end_takes_the_call_off_hold(utility, run):
    outcome, ctx = run(utility, "hold_on", events=[channel_event("CHANNEL_HOLD"), (1.0, channel_event(
        "CHANNEL_UNHOLD"))])
    assert (outcome.result, outcome.detail["reason"]) == ("resumed", "unhold") and ctx.pushed == []


def test_wait_passes_a_menu_followed_by_silence_on_as_a_speech_turn_so_a_keypad_can_follow(utility, run):
    menu = "Pour le suivi de votre colis, tapez 1"
    outcome, ctx = run(utility, "hold_on", events=[detected_speech(menu)])
    assert (outcome.result, outcome.detail["reason"]) == ("resumed", "menu_end")
    assert [(t.kind, t.text) for t in ctx.pushed] == [("speech", menu)]
    assert [(t["who"], t["text"], t.get("recorded_prompt")) for t in ctx.transcript] == [("caller", menu, True)]


def test_a_hold_prompt_followed_by_silence_is_still_a_hold_not_a_menu(utility, run):
    outcome, ctx = run(utility, "hold_on", events=[detected_speech("Veuillez patienter, votre appel va être "
                                                                   "transféré")])
    assert (outcome.result, outcome.detail["reason"]) == ("timed_out", "max_wait")
    assert [(t.kind, t.text) for t in ctx.pushed] == [("event", "wait_timeout")]


def test_wait_gives_the_brain_a_wait_timeout_turn_at_max_wait_and_keeps_the_caller_silence_alone(utility, run):
    clock = Clock(SCALE)
    started = clock.monotonic()
    outcome, ctx = run(utility, "hold_on")
    assert (outcome.result, outcome.detail["reason"], outcome.say) == ("timed_out", "max_wait", "")
    assert (clock.monotonic() - started) / SCALE == pytest.approx(5.0, abs=1.0)
    [turn] = ctx.pushed
    assert (turn.kind, turn.text, turn.result["waited_s"]) == ("event", "wait_timeout", 5)
    assert ctx.hold_s == pytest.approx(5.0, abs=1.0) and ctx.silence_restarts == 1


def test_wait_subscribes_the_hold_events_itself_and_streams_the_audio_again_after_each_app(utility, run):
    outcome, ctx = run(utility, "hold_on", events=[
        (0.5, detected_speech("Veuillez patienter")), (1.0, detected_speech("Bonjour, Marc à l'appareil"))])
    assert ctx.subscribed == ["CHANNEL_HOLD", "CHANNEL_UNHOLD"]
    assert outcome.detail["unicast_starts"] == 3 and len(ctx.unicasts) == 3  # at the start, after each resume
    assert len({remote for _, remote in ctx.unicasts}) == 1
    steps = [line.split()[0:2] for line in ctx.timeline if line.startswith(("unicast", "sent detect_speech"))]
    assert [s[0] for s in steps] == ["unicast", "sent", "unicast", "sent", "unicast"]


def test_the_calls_total_hold_time_past_max_hold_s_ends_the_call_with_the_builtin_hangup(utility, run):
    ctx, action = run.context(utility, "hold_on")
    ctx.held(utility.agents["support"].limits.max_hold_s - 2.0)
    outcome = action.run(ctx, {})
    assert (outcome.result, outcome.detail["reason"]) == ("max_hold", "max_hold_s")
    assert ctx.builtin_hangups == [("max_hold_s", phrase("fr", "max_hold"))]
    assert ctx.pushed == []


# ---------------------------------------------------------------- RAG
def test_rag_with_an_unavailable_source_says_the_no_answer_line_and_searches_nothing(utility, run):
    outcome, ctx = run(utility, "faq", {"query": "Comment payer ma facture ?"})
    assert (outcome.result, outcome.progress) == ("unavailable", False)
    assert outcome.say == "Je ne trouve pas cette information dans nos documents."
    assert "was not loaded at start" in outcome.detail["error"]
    assert ctx.said == [] and ctx.apps == []
