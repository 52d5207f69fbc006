"""Reloading the configuration in a running controller: new calls take it, a live call keeps what it began with."""
from __future__ import annotations

import json

import gevent

from tests.support.controller import BASE_AGENT, call, records, running, write_config

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
