"""Transfers to numbers end to end: the simulator (real ESL over TCP) against the real controller and Redis."""
from __future__ import annotations

import gevent
import pytest
import yaml

from tests.support.controller import call, records, running
from tests.support.peers import Reply
from tests.support.transfer import (ASKS_FOR_ADVISOR, agent_yaml, apis, is_event, is_execute, seconds_between,
                                    transfer_config, transfer_entry, wire)

PARIS = "+33170363950"
GREETED = {"wait_for": {"app": "speak"}}
ASK = {"say": ASKS_FOR_ADVISOR}
BRIDGED = {"wait_for": {"app": "bridge"}}


def play(config, session_redis, targets, script=None, **scenario):
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "targets": targets,
                             "script": [GREETED, *(script or [ASK, BRIDGED, {"silence": 2}])], **scenario})
        gevent.sleep(0.2)
        [record] = records(runtime)
        counters = runtime.store.counters()
    return rec, record, counters


def test_a_transfer_sets_the_caller_leg_once_then_bridges_with_the_ring_limit_on_the_wire(tmp_path, session_redis):
    rec, record, _ = play(transfer_config(tmp_path), session_redis, {PARIS: {"answer_after_s": 2, "talk_s": 3}})
    [multiset] = wire(rec, "multiset")
    assert multiset == ("continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false "
                        "transfer_ringback=%(1500,3500,440)")
    [bridge] = wire(rec, "bridge")
    peer = transfer_entry(record)["detail"]["origination_uuid"]
    assert bridge == f"{{ignore_early_media=true,origination_uuid={peer}}}[leg_timeout=20]sofia/gateway/trunk_main/{PARIS}"
    apps = [c.app for c in rec.commands if c.name == "sendmsg" and c.app]
    assert apps.index("multiset") < apps.index("bridge")
    assert wire(rec, "detect_speech")[-1] == "pause"
    assert not [a for a in wire(rec, "set") if a.startswith("sip_h_")]


def test_an_answered_transfer_is_recorded_and_the_agent_hangs_up_when_it_ends(tmp_path, session_redis):
    rec, record, counters = play(transfer_config(tmp_path), session_redis,
                                 {PARIS: {"answer_after_s": 2, "talk_s": 3}}, end="wait")
    entry = transfer_entry(record)
    assert entry["result"] == "answered" and record["transferred"] is True
    detail = entry["detail"]
    assert (detail["destination"], detail["number"], detail["disposition"]) == ("conseillers_paris", PARIS, "SUCCESS")
    assert 1.5 <= detail["ring_s"] <= 3 and 2.5 <= detail["talk_s"] <= 4
    assert record["hangup_by"] == "agent" and rec.hangup_by == "controller"
    assert counters["action:support.to_advisor:answered"] == 1


def test_after_bridge_resume_gives_the_caller_back_to_the_agent(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"after_bridge": "resume", "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]})
    rec, record, _ = play(config, session_redis, {PARIS: {"answer_after_s": 1, "talk_s": 2}},
                          [ASK, BRIDGED, {"say": "merci au revoir", "after": 4}], end="wait")
    assert transfer_entry(record)["result"] == "answered"
    asr = wire(rec, "detect_speech")
    assert asr[asr.index("pause") + 1] == "resume"
    assert any("autre chose" in text for text in rec.spoken)
    assert record["hangup_by"] == "agent" and any(t["text"] == "merci au revoir" for t in record["transcript"])


@pytest.mark.parametrize("target, result, cause, message", [
    ("no_answer", "no_answer", "ALLOTTED_TIMEOUT", "Personne ne répond"),
    ("busy", "busy", "USER_BUSY", "occupée"),
    ("reject", "rejected", "CALL_REJECTED", "occupée"),
    ("gateway_down", "failed", "NETWORK_OUT_OF_ORDER", "n'a pas abouti"),
])
def test_when_nobody_takes_the_call_the_agent_takes_it_back_says_why_and_goes_on(
        tmp_path, session_redis, target, result, cause, message):
    rec, record, counters = play(transfer_config(tmp_path), session_redis, {PARIS: target})
    entry = transfer_entry(record)
    assert (entry["result"], entry["detail"]["cause"]) == (result, cause)
    assert message in entry["detail"]["said"] and any(message in text for text in rec.spoken)
    assert rec.hangup_by == "caller" and record["hangup_by"] == "caller"
    assert wire(rec, "detect_speech")[-2:] == ["pause", "resume"]
    assert counters[f"action:support.to_advisor:{result}"] == 1
    assert counters[f"transfer:support.to_advisor:{result}:{cause}"] == 1  # switchboard_transfers_total's source


def test_the_ring_limit_goes_on_the_wire_unscaled_and_the_caller_is_taken_back_within_a_second(
        tmp_path, session_redis):
    config = transfer_config(tmp_path, {"max_ring_s": 5, "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]}, time_scale=0.1)
    rec, record, _ = play(config, session_redis, {PARIS: "no_answer"})
    assert "[leg_timeout=5]" in wire(rec, "bridge")[0]
    assert 5 <= rec.bridges[0].leg_timeout_s and rec.bridges[0].disposition == "ALLOTTED_TIMEOUT"
    back = seconds_between(rec, is_event("CHANNEL_EXECUTE_COMPLETE", "bridge"), is_execute("speak"))
    assert back < 1.0


def test_a_caller_who_hangs_up_while_it_rings_abandons_the_transfer(tmp_path, session_redis):
    rec, record, counters = play(transfer_config(tmp_path), session_redis, {PARIS: {"caller_hangs_up_after_s": 3}},
                                 end="wait")
    entry = transfer_entry(record)
    assert entry["result"] == "abandoned" and entry["detail"]["destination"] == "conseillers_paris"
    assert record["hangup_by"] == "caller" and rec.bridges[0].disposition == "ORIGINATOR_CANCEL"
    assert counters["action:support.to_advisor:abandoned"] == 1


def test_a_freeswitch_that_never_reports_is_cut_by_the_guard_with_uuid_kill(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"max_ring_s": 5, "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]})
    rec, record, _ = play(config, session_redis, {PARIS: "stuck"})
    entry = transfer_entry(record)
    peer = entry["detail"]["origination_uuid"]
    assert f"uuid_kill {peer} ALLOTTED_TIMEOUT" in apis(rec)
    assert (entry["result"], entry["detail"]["guard_fired"]) == ("no_answer", True)
    assert 10 <= entry["detail"]["ring_s"] <= 12  # max_ring_s + the 5 s margin


def test_confirm_asks_whoever_answers_to_press_the_key_before_the_caller_is_connected(tmp_path, session_redis):
    config = transfer_config(tmp_path, {
        "confirm": {"key": "1", "prompt": "Appel du service client, appuyez sur 1 pour le prendre."},
        "destinations": [{"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]})
    rec, record, _ = play(config, session_redis, {PARIS: {"answer_after_s": 2, "talk_s": 2, "presses": "1"}},
                          end="wait")
    bridge = wire(rec, "bridge")[0]
    assert ("group_confirm_key=1,group_confirm_file=say:Appel du service client appuyez sur 1 pour le prendre.,"
            "group_confirm_cancel_timeout=false,tts_engine=flite,tts_voice=kal}") in bridge
    assert transfer_entry(record)["result"] == "answered"


def test_with_confirm_a_voicemail_that_answers_counts_as_no_answer(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"confirm": {"key": "1", "prompt": "Appuyez sur 1."}, "destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]})
    rec, record, _ = play(config, session_redis, {PARIS: {"answer_after_s": 3, "talk_s": 30}})
    entry = transfer_entry(record)
    assert (entry["result"], entry["detail"]["cause"]) == ("no_answer", "ALLOTTED_TIMEOUT")
    assert 19 <= entry["detail"]["ring_s"] <= 22


def test_headers_and_the_gateway_go_in_the_dial_string_and_a_bad_rendered_value_is_dropped(tmp_path, session_redis):
    extra = """
    sip_connections:
      trunk: {gateway: carrier.example, number_format: e164_no_plus, caller_id: agent, codecs: "PCMU,PCMA"}
    """
    config = transfer_config(tmp_path, {
        "copy_caller_headers": True,
        "sip_headers": [{"name": "X-Call-Reason", "value": "support"},
                        {"name": "X-Customer-Id", "value": "{{ sip_headers['X-Customer-Id'] }}"},
                        {"name": "X-Caller-Name", "value": "{{ caller_name }}"}],
        "destinations": [{"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]},
        extra=extra)
    config.write_text(config.read_text().replace("language: fr", 'language: fr\n    number: "+33184808080"'))
    rec, record, _ = play(config, session_redis, {"33170363950": "busy"},
                          caller={"number": "+33612345678", "name": "Jean, ${x}"},
                          sip_headers={"X-Customer-Id": "42"})
    [bridge] = wire(rec, "bridge")
    assert bridge.startswith("{ignore_early_media=true,origination_uuid=")
    assert bridge.endswith(",origination_caller_id_number=+33184808080,absolute_codec_string=^^:PCMU:PCMA}"
                           "[leg_timeout=20,sip_h_X-Call-Reason=support,sip_h_X-Customer-Id=42]"
                           "sofia/gateway/carrier.example/33170363950")
    assert wire(rec, "multiset")[0].split()[2] == "sip_copy_custom_headers=true"
    detail = transfer_entry(record)["detail"]
    assert detail["dropped_headers"] == ["X-Caller-Name"] and transfer_entry(record)["result"] == "busy"


def test_a_header_whose_value_is_none_for_an_unknown_customer_is_left_out_of_the_bridge(tmp_path, session_redis,
                                                                                       http_server):
    http_server.then(Reply(body={"customer": {"id": None}}))  # the CRM does not know this caller
    agent = yaml.safe_load(agent_yaml({
        "sip_headers": [{"name": "X-Call-Reason", "value": "support"},
                        {"name": "X-Customer-Id", "value": "{{ customer_id }}"}],
        "destinations": [{"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"}]},
        ring_budget_s=3))
    agent["actions"]["before_call"] = [{
        "type": "workflow", "name": "lookup", "description": "Fiche client", "timeout_s": 2,
        "request": {"url": http_server.url + "/customers?phone={{ caller_number | urlencode }}"},
        "keep": {"customer_id": "customer.id"}}]
    config = transfer_config(tmp_path, agents={"support": yaml.safe_dump(agent, allow_unicode=True)})
    rec, record, _ = play(config, session_redis, {PARIS: "busy"})
    assert record["variables"]["customer_id"] is None
    [bridge] = wire(rec, "bridge")
    assert "X-Customer-Id" not in bridge and "None" not in bridge
    assert bridge.endswith(f"[leg_timeout=20,sip_h_X-Call-Reason=support]sofia/gateway/trunk_main/{PARIS}")
    detail = transfer_entry(record)["detail"]
    assert detail["headers"] == ["X-Call-Reason"] and detail["dropped_headers"] == []


def test_several_destinations_are_told_apart_by_their_description(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"},
        {"country": "FR", "number": "04 72 10 30 30", "description": "Conseillers Lyon"}]})
    rec, record, _ = play(config, session_redis, {"+33472103030": "busy"},
                          [{"say": "je voudrais parler à un conseiller à Lyon"}, BRIDGED, {"silence": 2}])
    assert wire(rec, "bridge")[0].endswith("sofia/gateway/trunk_main/+33472103030")
    assert transfer_entry(record)["detail"]["destination"] == "conseillers_lyon"


def test_an_ambiguous_request_dials_nothing_and_the_agent_asks_which_destination(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"},
        {"country": "FR", "number": "04 72 10 30 30", "description": "Conseillers Lyon"}]})
    rec, record, counters = play(config, session_redis, {}, [{"say": "je voudrais parler à un conseiller 0612345678"},
                                                             {"wait_for": {"app": "speak", "count": 2}},
                                                             {"silence": 2}])
    assert wire(rec, "bridge") == [] and wire(rec, "multiset") == []
    entry = transfer_entry(record)
    assert entry["result"] == "refused" and entry["detail"]["choices"] == ["conseillers_paris", "conseillers_lyon"]
    assert any("Conseillers Paris ou Conseillers Lyon" in text for text in rec.spoken)
    assert counters["action:support.to_advisor:refused"] == 1


def test_the_callers_answer_to_which_one_completes_the_transfer(tmp_path, session_redis):
    config = transfer_config(tmp_path, {"destinations": [
        {"country": "FR", "number": "01 70 36 39 50", "description": "Conseillers Paris"},
        {"country": "FR", "number": "04 72 10 30 30", "description": "Conseillers Lyon"}]})
    rec, record, _ = play(config, session_redis, {"+33472103030": "busy"}, [
        ASK, {"wait_for": {"app": "speak", "count": 2}}, {"say": "Lyon", "after": 1}, BRIDGED, {"silence": 2}])
    assert wire(rec, "bridge")[0].endswith("sofia/gateway/trunk_main/+33472103030")
    entries = [a for a in record["actions"] if a["name"] == "to_advisor"]
    assert [(a["result"], a["detail"].get("reason")) for a in entries] == [("refused", "ambiguous"), ("busy", None)]
    assert entries[1]["detail"]["destination"] == "conseillers_lyon"
