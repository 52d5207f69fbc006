"""The call lifecycle end to end: the simulator (real ESL over TCP) against the real controller and Redis."""
from __future__ import annotations

import gevent
import pytest

from tests.support.controller import BASE_AGENT, call, records, running, sent, write_config


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path, {"support": BASE_AGENT, "sales": BASE_AGENT.replace("Bonjour", "Ventes")})


def test_a_ringing_call_is_set_up_answered_and_recorded_when_the_caller_hangs_up(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
    commands = sent(rec)
    assert commands[:4] == ["connect", "myevents", "divert_events on", "linger 30"]
    assert commands.index("answer") < commands.index("set playback_terminators=none")
    assert commands[-1] == "exit"
    assert record["uuid"] == rec.uuid and record["agent"] == "support"
    assert list(record["moments"]) == ["ringing", "in_call", "ended"]
    assert record["hangup_by"] == "caller" and record["hangup_cause"] == "NORMAL_CLEARING"
    assert record["caller"] == "+33612345678" and record["direction"] == "inbound"


def test_an_already_answered_channel_skips_ringing_and_answer(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "answered": True, "script": [{"silence": 1}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert "answer" not in sent(rec, "answer")
    assert list(record["moments"]) == ["in_call", "ended"]


def test_the_agent_is_chosen_by_the_channel_variable_and_unknown_ids_fall_back_to_the_default(config, session_redis):
    with running(config, session_redis) as runtime:
        sales = call(runtime, {"agent": "sales", "script": [{"silence": 1}]})
        unknown = call(runtime, {"agent": "nobody", "script": [{"silence": 1}]})
        gevent.sleep(0.2)
        by_uuid = {r["uuid"]: r for r in records(runtime)}
    assert any(a.startswith("speak flite|kal|Ventes") for a in sent(sales, "speak"))
    assert by_uuid[sales.uuid]["agent"] == "sales"
    assert by_uuid[unknown.uuid]["agent"] == "support"


def test_the_caller_hears_the_greeting_with_call_variables(tmp_path, session_redis):
    agent = BASE_AGENT.replace('greeting: "Bonjour, que puis-je faire pour vous ?"',
                               'greeting: "Bonjour {{ caller_name }}, vous appelez du {{ caller_number }}."')
    with running(write_config(tmp_path, {"support": agent}), session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "caller": {"number": "+33612345678", "name": "Jean ${x}"},
                             "script": [{"silence": 1}]})
    assert sent(rec, "speak") == ["speak flite|kal|Bonjour Jean x, vous appelez du +33612345678."]


def test_a_missing_tts_module_disables_speech_out_instead_of_hanging_the_caller_up(config, session_redis):
    modules = ["mod_dptools", "mod_commands", "mod_sofia", "mod_unimrcp"]
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "modules": modules, "script": [{"silence": 1}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert sent(rec, "speak") == []
    assert record["hangup_by"] == "caller"
    assert "mod_flite" in record["missing_modules"]
    assert "api module_exists mod_flite" in sent(rec)


def test_modules_are_checked_once_per_freeswitch_not_once_per_call(config, session_redis):
    with running(config, session_redis) as runtime:
        first = call(runtime, {"agent": "support", "script": [{"silence": 0.5}]})
        second = call(runtime, {"agent": "support", "script": [{"silence": 0.5}]})
    assert any(c.startswith("api module_exists") for c in sent(first))
    assert not any(c.startswith("api module_exists") for c in sent(second))


def test_a_call_gone_during_its_module_checks_leaves_them_unanswered_and_the_next_call_checks_and_speaks(
        config, session_redis):
    """The caller hangs up while FreeSWITCH is slow to answer `module_exists`; the session's linger ends before
    the first answer. Unanswered checks are no answers: cached as missing, they muted every later call."""
    with running(config, session_redis) as runtime:
        gone = call(runtime, {"agent": "support", "max_duration_s": 1, "api_delays": {"module_exists": 40}})
        second = call(runtime, {"agent": "support", "script": [{"silence": 0.5}]})
    assert [c for c in sent(gone) if c.startswith("api module_exists")] == ["api module_exists mod_avmd"]
    assert "api module_exists mod_flite" in sent(second)
    assert sent(second, "speak")


def test_calls_over_max_connections_are_refused_counted_and_the_others_served(tmp_path, session_redis):
    config = write_config(tmp_path, max_connections=1)
    with running(config, session_redis) as runtime:
        long_call = gevent.spawn(call, runtime, {"agent": "support", "script": [{"silence": 20}]})
        gevent.sleep(0.3)
        refused = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        assert runtime.listener.refused == 1 and runtime.store.counters()["calls:refused"] == 1
        long_call.join(timeout=10)
    assert sent(refused)[-1] == "exit"
    assert "answer" not in sent(refused, "answer")
    assert "answer" in sent(long_call.value, "answer")  # the call in progress was served to its end


def test_a_malformed_frame_ends_that_call_and_the_controller_serves_the_next(config, session_redis):
    with running(config, session_redis) as runtime:
        call(runtime, {"agent": "support", "malformed": {"event": "CHANNEL_ANSWER", "fault": "missing_length"},
                       "script": [{"silence": 1}]})
        good = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        gevent.sleep(0.2)
        uuids = [r["uuid"] for r in records(runtime)]
    assert good.uuid in uuids
    assert "answer" in sent(good, "answer")


def test_the_call_state_lives_in_redis_with_a_ttl_while_the_call_runs(config, session_redis):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"silence": 1}]})
        state = runtime.store.call_state(rec.uuid)
        ttl = runtime.store.call_ttl(rec.uuid)
    assert state["agent"] == "support" and state["state"] == "ended"
    assert 0 < ttl <= 600
