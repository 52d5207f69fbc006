"""The turn loop through the simulator: speech in and out, DTMF, barge-in, silences, both brains, the record."""
from __future__ import annotations

import json

import gevent
import pytest

from tests.support.controller import BASE_AGENT, call, records, running, sent, write_config
from tests.support.peers import Reply

HANGUP_PHRASE = "Merci pour tout, au revoir"


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path)


def record_of(runtime, rec):
    gevent.sleep(0.1)
    return next(r for r in records(runtime) if r["uuid"] == rec.uuid)


def test_speech_is_recognised_in_the_background_and_resumed_after_each_result(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Mon chat dort sur le canapé"},
                                                             {"say": "Il y avait des bouchons terribles ce matin", "after": 1}]})
        record = record_of(runtime, rec)
    detects = sent(rec, "detect_speech")
    assert detects[0] == "detect_speech unimrcp builtin:speech/transcribe switchboard"
    assert detects.count("detect_speech resume") == 2
    commands = sent(rec)
    assert commands.index("answer") < commands.index(detects[0]) < next(
        i for i, c in enumerate(commands) if c.startswith("speak"))
    said = [t["text"] for t in record["transcript"] if t["who"] == "caller"]
    assert said == ["Mon chat dort sur le canapé", "Il y avait des bouchons terribles ce matin"]


def test_the_answer_to_a_turn_does_not_wait_for_detect_speech_resume_to_complete(config, session_redis,
                                                                                  monkeypatch):
    """FreeSWITCH runs the resume a media frame (20 ms) after its sendmsg, or later behind a slow recogniser:
    the brain decides meanwhile and the answer's speak is queued behind it."""
    from fssim import apps, asr

    def slow_resume(sim_call, arg):
        if arg.split()[:1] == ["resume"]:
            sim_call.session.wait_app(5.0)  # call seconds: far longer than any decision
        return asr.detect_speech(sim_call, arg)

    monkeypatch.setitem(apps.APPS, "detect_speech", apps.AppSpec(apps.APPS["detect_speech"].module, slow_resume))
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Quelle est la capitale de l'Australie"}]})
    resumed = next(f.t for f in rec.frames if f.direction == "out" and b"CHANNEL_EXECUTE_COMPLETE" in f.raw
                   and b"Application-Data: resume" in f.raw)
    answer = next(c.t for c in rec.commands if c.app == "speak" and "reformuler" in (c.app_arg or ""))
    assert answer < resumed
    assert any(app == "speak" and "reformuler" in (arg or "") for app, arg in rec.executed_apps)  # played after it


def test_the_hangup_action_is_chosen_from_the_callers_words_and_the_agent_ends_the_call(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "end": "wait", "script": [{"say": HANGUP_PHRASE}]})
        record = record_of(runtime, rec)
    assert record["hangup_by"] == "agent" and rec.hangup_by == "controller"
    [action] = [a for a in record["actions"] if a["name"] == "end_call"]
    assert action["result"] == "hung_up"
    assert sent(rec, "speak")[-1].endswith("au revoir.") or "revoir" in sent(rec, "speak")[-1]


def test_nothing_matching_gets_the_fallback_line_and_no_action(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Quelle est la capitale de l'Australie"}]})
        record = record_of(runtime, rec)
    assert [a for a in record["actions"] if a["moment"] == "during_call"] == []
    assert any("reformuler" in s for s in sent(rec, "speak"))


def test_the_greeting_uses_a_variable_kept_from_a_before_call_workflow(tmp_path, session_redis, http_server):
    http_server.then(Reply(body={"customer": {"name": "Camille Martin", "tier": "gold"}}))
    agent = BASE_AGENT.replace('greeting: "Bonjour, que puis-je faire pour vous ?"',
                               'greeting: "Bonjour {{ customer_name }}, que puis-je faire ?"')
    agent = agent.replace("actions:\n", f"""ring_budget_s: 3
actions:
  before_call:
    - type: workflow
      name: lookup
      description: Fiche client
      request: {{url: "{http_server.url}/customers?phone={{{{ caller_number | urlencode }}}}"}}
      keep: {{customer_name: customer.name}}
""")
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        record = record_of(runtime, rec)
    assert sent(rec, "speak")[0] == "speak flite|kal|Bonjour Camille Martin, que puis-je faire ?"
    assert http_server.requests[0].path == "/customers?phone=%2B33612345678"
    assert record["variables"]["customer_name"] == "Camille Martin"
    [lookup] = [a for a in record["actions"] if a["name"] == "lookup"]
    assert lookup["moment"] == "before_call" and lookup["result"] == "ok"


def test_a_slow_before_call_workflow_is_cut_at_the_ring_budget_and_the_call_is_answered(tmp_path, session_redis,
                                                                                       http_server):
    http_server.then(Reply(body={"customer": {"name": "Trop Tard"}}, delay_s=2.0))
    agent = BASE_AGENT.replace("actions:\n", f"""ring_budget_s: 1
actions:
  before_call:
    - type: workflow
      name: lookup
      description: Fiche client
      request: {{url: "{http_server.url}/slow"}}
      timeout_s: 30
      keep: {{customer_name: customer.name}}
""")
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        record = record_of(runtime, rec)
    assert "answer" in sent(rec, "answer")
    [lookup] = [a for a in record["actions"] if a["name"] == "lookup"]
    assert lookup["result"] == "timeout"
    assert "customer_name" not in record["variables"]


def test_barge_in_breaks_the_agents_speech_and_flushes_what_was_queued(tmp_path, session_redis):
    agent = BASE_AGENT.replace('greeting: "Bonjour, que puis-je faire pour vous ?"',
                               'greeting: "Bonjour. ' + "Ceci est une très longue présentation. " * 6 + '"')
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [
            {"say": "Je vous coupe, excusez-moi", "barge_in": True, "after": 0.5}]})
        record = record_of(runtime, rec)
    commands = sent(rec)
    assert f"api uuid_break {rec.uuid} all" in commands
    assert any(t["who"] == "system" and t["text"] == "barge-in" for t in record["transcript"])
    assert any(t["who"] == "caller" and t["text"] == "Je vous coupe, excusez-moi" for t in record["transcript"])


def test_silence_prompts_again_and_repeated_silences_end_the_call_with_the_builtin_hangup(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "end": "wait", "script": [], "max_duration_s": 120})
        record = record_of(runtime, rec)
    [builtin] = [a for a in record["actions"] if a["name"] == "builtin_hangup"]
    assert builtin["detail"]["reason"] == "consecutive_silences"
    assert record["hangup_by"] == "agent"
    assert len(sent(rec, "speak")) >= 3  # greeting, reprompts, goodbye


def test_digits_form_one_turn_ended_by_hash(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"dtmf": "42#", "after": 1}]})
        record = record_of(runtime, rec)
    [digits] = [t for t in record["transcript"] if t.get("dtmf")]
    assert digits["text"] == "42"


def test_without_the_asr_module_the_agent_still_answers_speaks_and_takes_digits(config, session_redis):
    modules = ["mod_dptools", "mod_commands", "mod_sofia", "mod_flite"]
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "modules": modules, "script": [{"dtmf": "7#", "after": 1}]})
        record = record_of(runtime, rec)
    assert sent(rec, "detect_speech") == []
    assert sent(rec, "speak")
    assert [t["text"] for t in record["transcript"] if t.get("dtmf")] == ["7"]


def test_json_speech_results_are_understood_like_nlsml(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "speech_format": "json", "end": "wait",
                             "script": [{"say": HANGUP_PHRASE}]})
        record = record_of(runtime, rec)
    assert any(a["name"] == "end_call" for a in record["actions"])


def test_the_openai_brain_calls_an_action_through_a_compatible_server(tmp_path, session_redis, http_server,
                                                                     monkeypatch):
    monkeypatch.setenv("SB_TEST_KEY", "secret-key")
    tool_call = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [{
        "id": "c1", "type": "function", "function": {"name": "end_call", "arguments": "{}"}}]}}]}
    http_server.then(Reply(body=tool_call))
    agent = BASE_AGENT.replace('brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}',
                               f'brain: {{type: openai, base_url: "{http_server.url}/v1", model: test, '
                               f'api_key_env: SB_TEST_KEY}}')
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "end": "wait", "script": [{"say": "Je n'ai plus de question"}]})
        record = record_of(runtime, rec)
    request = http_server.requests[0]
    assert request.headers["Authorization"] == "Bearer secret-key"
    assert request.json()["parallel_tool_calls"] is False
    assert [a["name"] for a in record["actions"]] == ["end_call"]
    assert record["hangup_by"] == "agent"


def test_a_hostile_model_reply_is_spoken_without_expansion_characters(tmp_path, session_redis, http_server,
                                                                     monkeypatch):
    reply = {"choices": [{"message": {"role": "assistant",
                                      "content": "Voici ${system(reboot)} la réponse.\nMerci."}}]}
    http_server.then(Reply(body=reply))
    agent = BASE_AGENT.replace('brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}',
                               f'brain: {{type: openai, base_url: "{http_server.url}", model: test}}')
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Une question"}]})
    spoken = sent(rec, "speak")
    assert "speak flite|kal|Voici system(reboot) la réponse. Merci." in spoken
    assert not any("$" in s or "{" in s for s in spoken)


def test_an_openai_server_error_makes_the_agent_say_the_fallback_and_the_call_goes_on(tmp_path, session_redis,
                                                                                     http_server):
    http_server.then(Reply(status=500, body={"error": "boom"}))
    agent = BASE_AGENT.replace('brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}',
                               f'brain: {{type: openai, base_url: "{http_server.url}", model: test, '
                               f'fallback_text: "Un souci technique, pouvez-vous répéter ?"}}')
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Une question"}]})
        record = record_of(runtime, rec)
    assert any("souci technique" in s for s in sent(rec, "speak"))
    assert any(t["who"] == "system" and "error" in t for t in record["transcript"])
    assert record["hangup_by"] == "caller"


def test_every_turn_is_in_the_redis_state_and_the_record_with_latencies(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Bonjour"}]})
        record = record_of(runtime, rec)
        state = runtime.store.call_state(rec.uuid)
    assert [t["who"] for t in state["transcript"]] == [t["who"] for t in record["transcript"]]
    assert record["metrics"]["turn_latency_ms"] and all(v >= 0 for v in record["metrics"]["turn_latency_ms"])
    assert json.dumps(record)  # the record is plain JSON


def test_a_during_call_workflow_says_its_message_while_the_request_runs(tmp_path, session_redis, http_server):
    http_server.then(Reply(body={"order": {"status": "expédiée"}}, delay_s=0.1))
    agent = BASE_AGENT.replace("actions:\n  during_call:\n", f"""actions:
  during_call:
    - type: workflow
      name: order_status
      description: >-
        Donner le suivi d'une commande. Exemples : "où en est ma commande", "je voudrais le suivi de ma commande".
      request: {{url: "{http_server.url}/orders?phone={{{{ caller_number }}}}"}}
      keep: {{status: order.status}}
      say_while_running: "Je regarde votre commande, {{{{ caller_number }}}}."
      say_result: "Votre commande est {{{{ status }}}}."
""")
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "où en est ma commande"}]})
    speaks = [s.split("|", 2)[2] for s in sent(rec, "speak")]
    assert speaks[1:3] == ["Je regarde votre commande, +33612345678.", "Votre commande est expédiée."]
    assert http_server.requests[0].path == "/orders?phone=%2B33612345678"  # encoded without `| urlencode`
