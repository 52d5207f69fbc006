"""Machine detection through the simulator: avmd per direction, the greeting classifier, the voicemail message,
the record's answered_by and the classification an email is sent for."""
from __future__ import annotations

import gevent
import pytest

from controller.aftercall.worker import build_worker
from controller.config.load import load_config
from tests.support.controller import BASE_AGENT, call, records, running, sent, write_config

ISSUE_GREETING = "Bonjour, vous êtes bien chez Paul, laissez un message après le bip"
MESSAGE = "Bonjour, ici la pharmacie du centre, votre commande est prête."
VOICEMAIL_ACTION = f"""    - type: hangup
      name: voicemail
      description: Laisser un message sur un répondeur.
      answered_by: [machine]
      leave_message: "{MESSAGE}"
"""
CLASSIFICATIONS = """classifications:
  voicemail:
    description: Un répondeur a décroché
    when: {answered_by: machine}
  other:
    description: Le reste
    fallback: true
"""


LISTENING = {"wait_for": {"app": "detect_speech"}}  # the callee speaks once the recogniser runs


def outbound(*script, **extra):
    """A call the agent placed (answered on connect, capture 13), the callee playing `script`."""
    return {"agent": "support", "direction": "outbound", "answered": True, "script": [LISTENING, *script], **extra}


def machine_greeting(text=ISSUE_GREETING):
    return {"say": text, "after": 0.3, "talk_over": True}


def record_of(runtime, rec):
    for _ in range(50):
        found = [r for r in records(runtime) if r["uuid"] == rec.uuid]
        if found:
            return found[0]
        gevent.sleep(0.05)
    raise AssertionError("no record")


def test_a_voicemail_gets_the_message_after_the_beep_then_the_hangup_and_only_it_gets_the_email(
        tmp_path, session_redis, smtp_server):
    (tmp_path / "summary.txt").write_text("{{ record.answered_by }} {{ classification }}", encoding="utf-8")
    agent = BASE_AGENT + VOICEMAIL_ACTION + """  after_call:
    - type: email
      name: voicemail_mail
      description: Un répondeur a eu le message
      subject: "Répondeur {{ destination }}"
      to: [support@example.com]
      template: {text: summary.txt}
      when_classified: [voicemail]
"""
    smtp = f"smtp: {{host: 127.0.0.1, port: {smtp_server.port}, from: switchboard@example.com, timeout_s: 5}}\n"
    config = write_config(tmp_path, {"support": agent}, smtp + CLASSIFICATIONS)
    with running(config, session_redis) as runtime:
        machine = call(runtime, outbound(machine_greeting(), {"beep": True, "after": 0.5}, {"silence": 20},
                                         end="wait"))
        human = call(runtime, outbound({"say": "Allô ?"}, {"say": "Oui, c'est pour quoi ?", "after": 1}))
        record, other = record_of(runtime, machine), record_of(runtime, human)
        worker = build_worker(load_config(config), runtime.store, runtime.clock)
        for _ in range(20):
            worker.process_once(block_ms=20)
    commands = sent(machine)
    assert commands.index("event plain CUSTOM avmd::beep avmd::start avmd::stop") < commands.index(
        "avmd_start inbound_channel=0,outbound_channel=1")
    assert sent(machine, "speak") == [f"speak flite|kal|{MESSAGE}"]
    assert "avmd_stop" in commands
    assert record["answered_by"] == "machine" and record["answered_detail"]["how"] in ("phrase", "length")
    assert record["hangup_by"] == "agent" and machine.hangup_by == "controller"
    [action] = [a for a in record["actions"] if a["name"] == "voicemail"]
    assert action["result"] == "message_left" and action["detail"]["waited_for"] == "beep"
    whats = [t["text"] for t in record["transcript"]]
    assert whats.index("beep") < whats.index(MESSAGE)
    assert other["answered_by"] == "human"
    [mail] = smtp_server.mailbox.messages
    assert mail.message["Subject"] == f"Répondeur {record['destination']}"
    assert "machine voicemail" in mail.message.get_content()


def test_a_person_saying_allo_gets_the_greeting_then_the_conversation(tmp_path, session_redis):
    config = write_config(tmp_path, {"support": BASE_AGENT + VOICEMAIL_ACTION})
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound({"say": "Allô ?"}, {"say": "Merci pour tout, au revoir", "after": 1},
                                     end="wait"))
        record = record_of(runtime, rec)
    assert record["answered_by"] == "human" and record["answered_detail"]["how"] == "short_greeting"
    assert record["answered_detail"]["avmd_events"] == ["avmd::start"]
    lines = [(t["who"], t["text"]) for t in record["transcript"]]
    assert lines[:2] == [("caller", "Allô ?"), ("agent", "Bonjour, que puis-je faire pour vous ?")]
    assert [a["result"] for a in record["actions"] if a["name"] == "end_call"] == ["hung_up"]
    assert not [a for a in record["actions"] if a["name"] == "voicemail"]


def test_the_greeting_from_the_issue_is_a_machine_not_a_request_to_rephrase(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound(machine_greeting(), {"silence": 2}))
        record = record_of(runtime, rec)
    assert record["answered_by"] == "machine" and record["answered_detail"]["how"] in ("phrase", "length")
    assert not any("reformuler" in line for line in sent(rec, "speak"))
    assert not any("que puis-je faire" in line for line in sent(rec, "speak"))


def test_inbound_calls_are_not_detected_by_default(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": ISSUE_GREETING}]})
        record = record_of(runtime, rec)
    assert not [c for c in sent(rec) if "avmd" in c and not c.startswith("api module_exists")]
    assert record["answered_by"] is None
    assert sent(rec, "speak")[0] == "speak flite|kal|Bonjour, que puis-je faire pour vous ?"


def test_with_detection_on_all_calls_avmd_gets_the_inbound_argument(tmp_path, session_redis):
    agent = BASE_AGENT.replace("actions:\n", "machine_detection: {enabled: all}\nactions:\n", 1)
    config = write_config(tmp_path, {"support": agent})
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": "Allô ?"}]})
        record = record_of(runtime, rec)
    assert "avmd_start inbound_channel=1,outbound_channel=0" in sent(rec)
    assert record["answered_by"] == "human"
    assert record["answered_detail"]["avmd_events"] == ["avmd::start"]  # the copy with channel data deduped


def test_without_mod_avmd_the_classifier_decides_and_the_message_follows_the_end_of_the_greeting(
        tmp_path, session_redis, caplog):
    config = write_config(tmp_path, {"support": BASE_AGENT + VOICEMAIL_ACTION})
    modules = ["mod_dptools", "mod_commands", "mod_flite", "mod_unimrcp", "mod_event_socket", "mod_sofia"]
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound(machine_greeting("Hello, you have reached Paul, please leave a message"),
                                     {"silence": 20}, modules=modules, end="wait"))
        record = record_of(runtime, rec)
    assert not [c for c in sent(rec) if "avmd" in c and not c.startswith("api")]
    assert record["answered_by"] == "machine" and record["answered_detail"]["avmd_events"] == []
    [action] = [a for a in record["actions"] if a["name"] == "voicemail"]
    assert action["result"] == "message_left" and action["detail"]["waited_for"] == "silence"
    assert sent(rec, "speak") == [f"speak flite|kal|{MESSAGE}"]
    assert len([r for r in caplog.records if "mod_avmd not loaded" in r.getMessage()]) == 1


def test_an_ivr_menu_reaches_the_brain_as_speech_and_the_keypad_follows(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound({"say": "Bienvenue chez TransExpress. Pour le suivi de votre colis, tapez 1.",
                                      "after": 0.3, "talk_over": True},
                                     {"silence": 2}))
        record = record_of(runtime, rec)
    assert record["answered_by"] == "ivr"  # a long menu: taken for a machine by its length, then by its words
    assert [a["name"] for a in record["actions"] if a["moment"] == "during_call"][:1] == ["menu_choice"]
    assert "send_dtmf 1@100" in sent(rec)


@pytest.mark.parametrize("answered_by, how", [("machine", "beep")])
def test_a_beep_alone_decides_machine(tmp_path, session_redis, answered_by, how):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound({"wait_for": {"app": "avmd_start"}}, {"beep": True, "after": 0.3},
                                     {"silence": 2}))
        record = record_of(runtime, rec)
    assert (record["answered_by"], record["answered_detail"]["how"]) == (answered_by, how)


def test_a_person_who_says_more_than_hello_gets_the_greeting_then_an_answer_to_those_words(tmp_path, session_redis):
    config = write_config(tmp_path)
    with running(config, session_redis) as runtime:
        rec = call(runtime, outbound({"say": "Merci pour tout, au revoir"}, end="wait"))
        record = record_of(runtime, rec)
    assert (record["answered_by"], record["answered_detail"]["how"]) == ("human", "pause")
    lines = [(t["who"], t["text"]) for t in record["transcript"]]
    assert lines[:2] == [("caller", "Merci pour tout, au revoir"), ("agent", "Bonjour, que puis-je faire pour vous ?")]
    assert [a["result"] for a in record["actions"] if a["name"] == "end_call"] == ["hung_up"]
