"""Keys chosen from the menus of a simulated IVR tree, on a call the agent places (`switchboard call` through the
simulator's inbound event socket to the real controller): the path taken, the silence after the keys, the mode."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import gevent
import gevent.subprocess
import pytest

from fssim import Scenario
from fssim.inbound import InboundServer
from fssim.scenario import ScenarioError
from tests.support.controller import TIME_SCALE, records, running, write_config

BIN = str(Path(sys.executable).with_name("switchboard"))
AGENT = """
language: fr
brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}
speech:
  asr: {module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}
  greeting: "Bonjour."
  no_input_s: 4
actions:
  during_call:
    - type: keypad
      name: ivr_menu
      description: Choisir l'option du serveur vocal qui mène au service voulu.
      goal: faire une réclamation sur une facture
      listen_after_s: 20
"""
TRUNK = """
sip_connections:
  trunk: {gateway: carrier_main, dtmf: info}
default_sip_connection: trunk
"""
TREE = {
    "timeout_s": 6, "max_failures": 2,
    "menus": {
        "main": {"prompt": "Bienvenue. Pour le suivi de votre colis, tapez 1. Pour une réclamation, tapez 2.",
                 "options": {"1": "suivi", "2": "reclamation"}},
        "suivi": {"prompt": "Tapez 1 pour un colis en retard.", "options": {"1": {"goal": "retard"}}},
        "reclamation": {"prompt": "Pour une réclamation sur un colis, tapez 1. Sur une facture, tapez 2.",
                        "options": {"1": {"goal": "reclamation_colis"},
                                    "2": {"goal": "reclamation_facture", "say": "Service facturation, bonjour."}}},
    }}


def _place(tmp_path: Path, session_redis, tree: dict, agent: str = AGENT, trunk: str = TRUNK):
    config = write_config(tmp_path, {"support": agent}, extra=trunk)
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": "ivr", "ivr": tree}), TIME_SCALE)
    with running(config, session_redis) as runtime:
        (tmp_path / "cli").mkdir()
        cli = write_config(tmp_path / "cli", {"support": agent}, port=runtime.listener.port,
                           extra=trunk + f"freeswitch: {{port: {inbound.start()}}}\n")
        try:
            placed = gevent.subprocess.run(
                [BIN, "--log-text", "call", "+33612345678", "--agent", "support", "--config", str(cli)],
                env={**os.environ, "FREESWITCH_ESL_PASSWORD": "ClueCon"}, capture_output=True, text=True, timeout=60)
            [rec] = inbound.recordings()
        finally:
            inbound.stop()
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert placed.returncode == 0, placed.stderr
    return inbound, rec, record


def test_a_two_level_tree_is_reached_with_the_keys_its_menus_state_and_no_prompt_between_menus(tmp_path,
                                                                                                session_redis):
    inbound, rec, record = _place(tmp_path, session_redis, TREE)
    assert (rec.ivr.goal, rec.ivr.ended, rec.ivr.path) == ("reclamation_facture", "goal", ["main", "reclamation"])
    assert rec.ivr.keys == [("main", "2", "option"), ("reclamation", "2", "option")]
    assert rec.dtmf_sent == ["2@100", "2@100"]  # the same key twice: each read from its own menu
    assert rec.dtmf_received == [("2", "info"), ("2", "info")]  # dtmf: info on the SIP connection
    assert "dtmf_type=info" in inbound.originates[0]
    assert rec.spoken == []  # detection heard an IVR: no greeting over its menu, no "Êtes-vous toujours là ?"
    keypads = [a for a in record["actions"] if a["name"] == "ivr_menu" and a["result"] == "sent"]
    assert [a["detail"]["option"] for a in keypads] == ["pour une reclamation", "sur une facture"]


def test_an_ivr_silent_longer_than_no_input_s_after_the_keys_gets_no_prompt_and_inband_tones(tmp_path,
                                                                                             session_redis):
    """no_input_s is 4, listen_after_s 20: the IVR thinks 8 s before its next menu; the agent waits, then answers it."""
    tree = {**TREE, "menus": {**TREE["menus"], "reclamation": {**TREE["menus"]["reclamation"], "pause_s": 8}}}
    inbound, rec, record = _place(tmp_path, session_redis, tree, trunk=TRUNK.replace("dtmf: info", "dtmf: inband"))
    assert (rec.ivr.goal, rec.ivr.path) == ("reclamation_facture", ["main", "reclamation"])
    assert rec.spoken == []  # detection heard an IVR: no greeting over its menu, no prompt either
    assert "dtmf_type=none,execute_on_answer=start_dtmf_generate" in inbound.originates[0]
    assert [mode for _, mode in rec.dtmf_received] == ["inband", "inband"]


def test_an_ivr_without_the_goal_loops_and_hangs_up_after_its_failures_and_no_key_is_pressed(tmp_path,
                                                                                             session_redis):
    tree = {"timeout_s": 2, "max_failures": 2, "menus": {"main": {
        "prompt": "Pour les ventes tapez 1. Pour le support tapez 3.", "options": {"1": {"goal": "ventes"},
                                                                                    "3": {"goal": "support"}}}}}
    _, rec, record = _place(tmp_path, session_redis, tree)
    assert (rec.ivr.goal, rec.ivr.ended) == (None, "failures")
    assert rec.ivr.keys == [("main", "", "timeout"), ("main", "", "timeout")] and rec.dtmf_sent == []
    assert {a["detail"].get("reason") for a in record["actions"] if a["name"] == "ivr_menu"} == {"no_option_matches"}


def test_a_bad_ivr_tree_is_refused_with_the_field_path():
    bad = {"menus": {"main": {"prompt": "Tapez 1.", "options": {"1": "nowhere"}}}}
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"name": "x", "ivr": bad}, "ivr.yaml")
    assert str(caught.value).startswith("ivr.yaml: ivr.menus.main.options.1: 'nowhere' is not a menu")
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"name": "x", "ivr": {"menus": {"main": {"prompt": "x", "options": {"x": "main"}}}}}, "a")
    assert "ivr.menus.main.options.x: 'x' is not one key" in str(caught.value)
