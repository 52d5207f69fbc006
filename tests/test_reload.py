"""Reloading the configuration in a running controller: new calls take it, a live call keeps what it began with."""
from __future__ import annotations

import json
import time

import gevent

from tests.support.controller import ALIAS_BOMB_AGENT, TIME_SCALE, call, records, running, write_config
from tests.support.transfer import (ASKS_FOR_ADVISOR, CONNECTIONS, SALES, agent_yaml, transfer_config, transfer_entry,
                                    wire)

GREETED = {"wait_for": {"app": "speak"}}
GOODBYE = {"say": "merci au revoir", "after": 1}


def test_a_live_call_keeps_its_actions_while_new_calls_get_the_reloaded_ones(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        live = gevent.spawn(call, runtime, {"agent": "support", "script": [
            {"wait_for": {"app": "speak"}}, {"silence": 20}, GOODBYE, {"silence": 3}]})
        gevent.sleep(0.3)  # the live call has begun
        config.write_text(config.read_text().replace("type: hangup", "type: wait")
                          .replace("condition: L'appelant prend congé.", "max_wait_s: 60"))
        taken, message = runtime.reload()
        new = call(runtime, {"agent": "support", "script": [{"wait_for": {"app": "speak"}}, GOODBYE, {"silence": 3}]})
        old = live.get(timeout=60)
        gevent.sleep(0.2)
        by_uuid = {r["uuid"]: r for r in records(runtime)}
        status = json.loads((tmp_path / "state" / "reload.json").read_text())
    assert taken and "configuration reloaded" in message and status["ok"]
    assert [(a["name"], a["type"]) for a in by_uuid[old.uuid]["actions"]] == [("end_call", "hangup")]
    assert by_uuid[old.uuid]["hangup_by"] == "agent"
    assert ("end_call", "wait") in [(a["name"], a["type"]) for a in by_uuid[new.uuid]["actions"]]


def test_a_file_that_no_longer_validates_changes_nothing(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        before = runtime.version
        config.write_text(config.read_text().replace("language: fr", "language: 42"))
        taken, message = runtime.reload()
        assert runtime.version is before
    assert not taken and "reload refused, the running configuration stays" in message and "language" in message


def test_a_yaml_alias_bomb_is_refused_at_once_and_the_next_good_reload_is_taken(tmp_path, session_redis):
    """Expanded, the aliases would pin a core in the reload thread and every later SIGHUP would queue behind it."""
    config = write_config(tmp_path)
    good = config.read_text()
    with running(config, session_redis) as runtime:
        before = runtime.version
        write_config(tmp_path, agents={"support": ALIAS_BOMB_AGENT})
        started = time.monotonic()
        taken, message = gevent.spawn(runtime.reload).get(timeout=5)
        refused_in = time.monotonic() - started
        refused_version = runtime.version
        config.write_text(good.replace("digits: \"1\"", "digits: \"2\""))
        retaken, remessage = gevent.spawn(runtime.reload).get(timeout=10)
        keypad = runtime.version.agents["support"].actions["menu_choice"]
    assert not taken and refused_version is before and refused_in < 1
    assert "reload refused, the running configuration stays" in message and "YAML alias *l0" in message
    assert retaken and "configuration reloaded" in remessage and keypad.config.digits == "2"


ADVISORS = {"sip_connection": "trunk", "destinations": [{"country": "FR", "number": "01 70 36 39 50",
                                                          "description": "Conseillers Paris"}]}
TO_SALES = {"name": "to_sales", "destinations": [{"agent": "sales", "description": "Agent commercial"}]}
PAUSE = {"silence": 14}  # call seconds (two no-input reprompts, not three): the reload happens while the live calls wait here


def test_a_reload_during_calls_changes_nothing_for_them_and_applies_to_the_next_call(tmp_path, session_redis):
    """Live calls keep every setting of the version they started under (here the SIP connection's gateway and an
    agent to hand off to); the next call gets the reloaded ones."""
    before = {"support": agent_yaml(ADVISORS), "desk": agent_yaml(TO_SALES), "sales": SALES}
    config = transfer_config(tmp_path, agents=before)
    after = transfer_config(tmp_path, agents={"support": agent_yaml(ADVISORS), "desk": agent_yaml(
        {"name": "to_sales", "sip_connection": "trunk", "destinations": [
            {"country": "FR", "number": "01 70 36 39 51", "description": "Ventes"}]})},
        extra=CONNECTIONS.replace("trunk_main", "trunk_new")).read_text()
    config.write_text(before_text := transfer_config(tmp_path, agents=before).read_text())
    bridged = [GREETED, PAUSE, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "bridge"}}, {"silence": 2}]
    busy = {"+33170363950": "busy"}
    with running(config, session_redis) as runtime:
        started = time.monotonic()
        live_bridge = gevent.spawn(call, runtime, {"agent": "support", "targets": busy, "script": bridged})
        live_handoff = gevent.spawn(call, runtime, {
            "agent": "desk", "handoffs": {"2002": "sales"}, "end": "wait", "script": [
                GREETED, PAUSE, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "speak", "count": 2}},
                {"silence": 1}, {"say": "merci au revoir", "after": 1}]})
        gevent.sleep(0.15)  # both calls are in their pause
        config.write_text(after)
        taken, message = runtime.reload()
        reloaded_after_s = time.monotonic() - started
        old_bridge, old_handoff = live_bridge.get(timeout=60), live_handoff.get(timeout=60)
        new_bridge = call(runtime, {"agent": "support", "targets": busy, "script": bridged[:1] + bridged[2:]})
        gevent.sleep(0.2)
        by_uuid = {r["uuid"]: r for r in records(runtime)}
    assert before_text != after and taken and "live calls keep the version they started with" in message
    # both live calls reached their transfer after the reload was in place (call seconds scaled to real ones)
    for rec, command in ((old_bridge, "sendmsg"), (old_handoff, "api")):
        first = next(c for c in rec.commands if c.name == command and (c.app == "bridge" or "uuid_transfer" in c.arg))
        assert first.t * TIME_SCALE > reloaded_after_s
    assert [a.split("]")[-1] for a in wire(old_bridge, "bridge")] == ["sofia/gateway/trunk_main/+33170363950"]
    assert [a.split("]")[-1] for a in wire(new_bridge, "bridge")] == ["sofia/gateway/trunk_new/+33170363950"]
    assert transfer_entry(by_uuid[old_bridge.uuid])["result"] == "busy"
    handed = by_uuid[old_handoff.uuid]
    assert f"uuid_transfer {old_handoff.uuid} 2002 XML default" in [c.arg for c in old_handoff.commands
                                                                      if c.name == "api"]
    assert transfer_entry(handed, "to_sales")["result"] == "handed_off" and handed["hangup_by"] != "system"
    # the reloaded configuration has no agent `sales`: the default agent continues the same record
    assert handed["agent"] == "support" and [t["text"] for t in handed["transcript"] if t["who"] == "caller"][:1] \
        == [ASKS_FOR_ADVISOR]
