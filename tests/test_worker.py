"""The after-call worker on a real Redis, SMTP server and HTTP server; and the classification rules."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.event
import pytest
from click.testing import CliRunner

from controller.aftercall import queue as jobs
from controller.aftercall.classify import classify
from controller.cli.main import main
from controller.state.store import Store
from controller.aftercall.worker import Worker, build_worker
from tests.support.peers import Reply, ScriptedHttp, SmtpPeer

CLASSIFICATIONS = {
    "transferred": {"description": "handed to a person", "when": {"transferred": True}},
    "lead": {"description": "asked for a quote", "when": {"transcript_contains": ["quote", "price"],
                                                          "min_duration_s": 20}},
    "hung_up_early": {"description": "caller left fast", "when": {"hangup_by": "caller", "max_duration_s": 10}},
    "other": {"description": "everything else", "fallback": True},
}


def _email(**overrides: Any) -> SimpleNamespace:
    fields = dict(type="email", name="summary", subject="{{ classification }} call from {{ caller }}",
                  to=["sales@example.test"], cc=[], bcc=[], template={"text": "{{ transcript | length }} turns"},
                  when_classified=None)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def _webhook(url: str, **overrides: Any) -> SimpleNamespace:
    fields = dict(type="workflow", name="crm", request=SimpleNamespace(method="POST", url=url + "/hook",
                                                                       headers={}, body=None),
                  timeout_s=2, keep={}, when_classified=None)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def _record(uuid: str = "u-1", **overrides: Any) -> dict:
    record = {"uuid": uuid, "agent": "sales", "caller": "+33612345678", "duration_s": 42, "hangup_by": "caller",
              "transcript": [{"role": "caller", "text": "What is the price?"}], "actions": [], "variables": {}}
    record.update(overrides)
    return record


def _worker(store: Store, smtp: SmtpPeer, actions: list, **kwargs: Any) -> Worker:
    kwargs.setdefault("min_idle_ms", 60_000)
    kwargs.setdefault("reclaim_interval_s", 0)
    return Worker(store, lambda agent: actions, CLASSIFICATIONS, smtp.settings(), consumer="w-1", **kwargs)


def _drain(worker: Worker, rounds: int = 200) -> None:
    """process_once until nothing is pending for the group (bounded)."""
    for _ in range(rounds):
        worker.process_once(block_ms=20)
        if worker.store.redis.xpending(worker.store.stream_key, worker.group)["pending"] == 0 \
                and worker.store.redis.xlen(worker.store.stream_key) == 0:
            return
        gevent.sleep(0.01)


def _dead(store: Store) -> list[dict]:
    entries = store.redis.xrange(store.dead_letter_key)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def test_a_record_is_classified_emailed_then_acknowledged_and_deleted(store: Store, smtp_server: SmtpPeer) -> None:
    store.append_record(_record())  # appended before any worker existed: the group starts at 0
    worker = _worker(store, smtp_server, [_email()])

    assert worker.process_once(block_ms=100) == 1

    (mail,) = smtp_server.mailbox.messages
    assert mail.message["Subject"] == "lead call from +33612345678"
    assert store.redis.xlen(store.stream_key) == 0
    assert store.redis.xpending(store.stream_key, worker.group)["pending"] == 0
    assert _dead(store) == []


def test_an_email_only_goes_out_when_the_call_is_classified_as_listed(store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email(when_classified=["transferred"])])
    store.append_record(_record("u-lead"))
    store.append_record(_record("u-transfer", transferred=True))

    _drain(worker)

    (mail,) = smtp_server.mailbox.messages
    assert mail.message["Subject"] == "transferred call from +33612345678"
    assert store.redis.xlen(store.stream_key) == 0


def test_a_failing_action_is_retried_with_backoff_then_dead_lettered_with_the_reason(
        store: Store, smtp_server: SmtpPeer, http_server: ScriptedHttp) -> None:
    http_server.default = Reply(status=500, body={"error": "crm down"})
    worker = _worker(store, smtp_server, [_webhook(http_server.url)])
    entry_id = store.append_record(_record())

    _drain(worker)

    assert len(http_server.requests) == 3  # max_attempts
    (dead,) = _dead(store)
    assert dead["entry_id"] == entry_id and dead["attempts"] == "3" and dead["classification"] == "lead"
    assert dead["reason"].startswith("crm: workflow crm: HTTP 500")
    assert json.loads(dead["record"])["uuid"] == "u-1"
    assert store.redis.xlen(store.stream_key) == 0
    assert store.redis.xpending(store.stream_key, worker.group)["pending"] == 0


def test_a_retry_does_not_send_again_the_email_that_already_went(
        store: Store, smtp_server: SmtpPeer, http_server: ScriptedHttp) -> None:
    http_server.then(Reply(status=502), Reply(status=502))
    worker = _worker(store, smtp_server, [_email(), _webhook(http_server.url)])
    store.append_record(_record())

    _drain(worker)

    assert len(smtp_server.mailbox.messages) == 1
    assert len(http_server.requests) == 3 and http_server.requests[-1].json()["uuid"] == "u-1"
    assert _dead(store) == [] and store.redis.xlen(store.stream_key) == 0
    deliveries = {k: v for k, v in store.counters().items() if k.startswith("delivery:")}
    assert deliveries == {"delivery:email:ok": 1, "delivery:workflow:failed": 2, "delivery:workflow:ok": 1}


def test_a_failing_email_is_retried_and_sent_once_it_goes_through(store: Store, smtp_server: SmtpPeer) -> None:
    smtp_server.mailbox.fail_next = 2
    worker = _worker(store, smtp_server, [_email(name="first"), _email(name="second", subject="second")])
    store.append_record(_record())

    _drain(worker)

    subjects = [m.message["Subject"] for m in smtp_server.mailbox.messages]
    assert sorted(subjects) == ["lead call from +33612345678", "second"]


def test_a_permanent_failure_goes_to_the_dead_letter_stream_at_once(store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email(subject="Re: {{ variables.name }}")])
    store.append_record(_record(variables={"name": "x\r\nBcc: victim@example.test"}))

    _drain(worker)

    (dead,) = _dead(store)
    assert dead["attempts"] == "1" and "header injection" in dead["reason"]
    assert smtp_server.mailbox.messages == []


def test_a_pending_record_of_a_dead_consumer_is_reclaimed_and_processed(store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email()], min_idle_ms=50)
    worker.ensure_group()
    store.append_record(_record())
    store.redis.xreadgroup(worker.group, "dead-host:4242", {store.stream_key: ">"}, count=10)  # read, then died
    assert store.redis.xpending(store.stream_key, worker.group)["consumers"][0]["name"] == b"dead-host:4242"
    gevent.sleep(0.1)

    _drain(worker)

    assert len(smtp_server.mailbox.messages) == 1
    assert store.redis.xlen(store.stream_key) == 0


def test_the_take_over_of_a_dead_consumers_records_shrinks_with_the_time_scale(store: Store, smtp_server: SmtpPeer) -> None:
    config = SimpleNamespace(agents={"sales": SimpleNamespace(actions=SimpleNamespace(after_call=[_email()]))},
                             classifications=CLASSIFICATIONS, smtp=smtp_server.settings())
    worker = build_worker(config, store, consumer="w-1")  # the store's clock runs at 0.01: 60 s idle is 0.6 s
    worker.ensure_group()
    store.append_record(_record())
    store.redis.xreadgroup(worker.group, "dead-host:4242", {store.stream_key: ">"}, count=10)  # read, then died
    worker.process_once(block_ms=20)
    assert smtp_server.mailbox.messages == []  # not idle long enough yet
    gevent.sleep(0.7)

    _drain(worker)

    assert len(smtp_server.mailbox.messages) == 1


def test_the_same_record_replayed_twice_is_emailed_once(store: Store, smtp_server: SmtpPeer) -> None:
    record = _record(record_id="r-spooled-then-replayed")
    store.append_record(record)
    store.append_record(record)
    worker = _worker(store, smtp_server, [_email()])

    _drain(worker)

    assert len(smtp_server.mailbox.messages) == 1
    assert store.redis.xlen(store.stream_key) == 0


def test_a_second_copy_of_a_dead_lettered_record_is_dropped_not_tried_again(
        store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email(subject="Re: {{ variables.name }}")])
    record = _record(record_id="r-dead", variables={"name": "x\r\nBcc: victim@example.test"})
    store.append_record(record)
    _drain(worker)

    store.append_record(record)  # the spool adds it again after a Redis restart
    _drain(worker)

    assert len(_dead(store)) == 1 and store.redis.xlen(store.stream_key) == 0
    assert store.redis.hget(store.key("after", "r-dead"), "attempts") == b"1"


def test_an_unreadable_entry_goes_to_the_dead_letter_stream(store: Store, smtp_server: SmtpPeer) -> None:
    store.redis.xadd(store.stream_key, {"record": "{not json"})
    worker = _worker(store, smtp_server, [_email()])

    _drain(worker)

    (dead,) = _dead(store)
    assert "unreadable record" in dead["reason"] and dead["record"] == "{not json"


def test_run_processes_records_until_stopped(store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email()])
    stop = gevent.event.Event()
    runner = gevent.spawn(worker.run, stop, 20)
    store.append_record(_record())
    for _ in range(200):
        if smtp_server.mailbox.messages:
            break
        gevent.sleep(0.02)

    stop.set()
    runner.join(timeout=5)

    assert runner.dead and len(smtp_server.mailbox.messages) == 1


def test_classification_takes_the_first_matching_rule_then_the_fallback() -> None:
    assert classify(_record(transferred=True), CLASSIFICATIONS) == "transferred"
    assert classify(_record(), CLASSIFICATIONS) == "lead"
    assert classify(_record(duration_s=5), CLASSIFICATIONS) == "hung_up_early"
    assert classify(_record(duration_s=15, hangup_by="agent"), CLASSIFICATIONS) == "other"
    assert classify(_record(), {}) is None
    placed = {"placed": {"when": {"direction": "outbound"}}, **CLASSIFICATIONS}
    assert classify(_record(direction="outbound"), placed) == "placed" and classify(_record(), placed) == "lead"


def test_classification_reads_actions_and_timestamps_when_flags_are_absent() -> None:
    rules = {"booked": {"when": {"action_called": ["book_visit"], "min_duration_s": 60}},
             "handed_over": {"when": {"transferred": True}}}
    record = _record(actions=[{"name": "to_desk", "type": "transfer", "result": "no_answer"},
                              {"name": "to_desk", "type": "transfer", "result": "bridged"}])
    booked = _record(actions=[{"name": "book_visit", "type": "workflow", "result": "ok"}], duration_s=None,
                     started_at="2026-01-05T10:00:00+00:00", ended_at="2026-01-05T10:02:00+00:00")

    assert classify(record, rules) == "handed_over"
    assert classify(_record(actions=record["actions"][:1]), rules) is None
    assert classify(booked, rules) == "booked"
    assert classify({**booked, "ended_at": "2026-01-05T10:00:30+00:00"}, rules) is None


def test_a_worker_built_from_a_loaded_configuration_runs_each_agents_after_call_actions(
        tmp_path, store: Store, smtp_server: SmtpPeer, http_server: ScriptedHttp) -> None:
    from controller.config.load import load_config

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "summary.html").write_text("<p>{{ caller }}: {{ transcript[0].text }}</p>")
    (tmp_path / "switchboard.yaml").write_text(f"""
smtp: {{host: 127.0.0.1, port: {smtp_server.port}, from: switchboard@example.test}}
classifications:
  lead: {{description: asked for a price, when: {{transcript_contains: [price]}}}}
  other: {{description: everything else, fallback: true}}
agents:
  sales:
    language: en
    actions:
      after_call:
        - type: email
          name: summary
          description: Tell sales about the lead.
          subject: "New {{{{ classification }}}} from {{{{ caller }}}}"
          to: sales@example.test
          template: {{html: templates/summary.html}}
          when_classified: [lead]
        - type: workflow
          name: crm
          description: Push the call to the CRM.
          request: {{url: "{http_server.url}/calls"}}
""")
    config = load_config(tmp_path / "switchboard.yaml")
    worker = build_worker(config, store, consumer="w-1", reclaim_interval_s=0)
    store.append_record(_record("u-lead"))
    store.append_record(_record("u-chat", transcript=[{"who": "caller", "text": "hello"}]))
    store.append_record(_record("u-ghost", agent="gone"))

    _drain(worker)

    (mail,) = smtp_server.mailbox.messages
    assert mail.message["Subject"] == "New lead from +33612345678"
    assert "+33612345678: What is the price?" in mail.message.get_body(("html",)).get_content()
    assert sorted(r.json()["uuid"] for r in http_server.requests) == ["u-chat", "u-lead"]
    (dead,) = _dead(store)
    assert dead["uuid"] == "u-ghost" and "agent 'gone' is not in" in dead["reason"]


def test_a_record_that_cannot_be_classified_is_dead_lettered_not_retried(store: Store, smtp_server: SmtpPeer) -> None:
    store.append_record(_record(duration_s="forty"))
    worker = _worker(store, smtp_server, [_email()])

    _drain(worker)

    (dead,) = _dead(store)
    assert "cannot be classified" in dead["reason"] and dead["attempts"] == "1"


def test_a_dead_letter_retried_once_its_cause_is_fixed_runs_only_the_actions_that_never_went(
        store: Store, smtp_server: SmtpPeer, http_server: ScriptedHttp) -> None:
    http_server.default = Reply(status=503)  # the CRM is down for longer than the retries last
    worker = _worker(store, smtp_server, [_email(), _webhook(http_server.url)])
    store.append_record(_record())
    _drain(worker)
    [letter] = jobs.dead_letters(store)
    assert letter.attempts == 3 and letter.reason.startswith("crm: workflow crm: HTTP 503") and letter.uuid == "u-1"

    http_server.default = Reply(body={"ok": True})  # the CRM is back
    [(old, _)] = jobs.retry(store, [letter.id])
    _drain(worker)

    assert old == letter.id and store.redis.xrange(store.dead_letter_key) == []
    assert len(smtp_server.mailbox.messages) == 1  # the email had gone before the record died
    assert len(http_server.requests) == 4 and http_server.requests[-1].json()["uuid"] == "u-1"
    assert jobs.dead_letters(store) == [] and jobs.queue_state(store).queued == 0


def test_jobs_refuse_unknown_ids_before_touching_anything(store: Store, smtp_server: SmtpPeer) -> None:
    store.redis.xadd(store.stream_key, {"record": "{not json"})
    _drain(_worker(store, smtp_server, [_email()]))
    [letter] = jobs.dead_letters(store)

    for bad, message in (("1-0", "no dead letter 1-0"), ("abc", "'abc' is not a stream id")):
        with pytest.raises(jobs.JobsError, match=message):
            jobs.drop(store, [letter.id, bad])
    assert jobs.queue_state(store).dead == 1 and letter.record is None and letter.raw == "{not json"

    assert jobs.drop(store, [letter.id]) == 1 and jobs.queue_state(store).dead == 0


def test_the_jobs_command_lists_shows_and_retries_dead_letters(
        store: Store, smtp_server: SmtpPeer, tmp_path) -> None:
    smtp_server.mailbox.fail_next, smtp_server.mailbox.fail_code = 1, "550 5.1.1 no such mailbox"
    store.append_record(_record(uuid="u-dead"))
    _drain(_worker(store, smtp_server, [_email()]))
    config = tmp_path / "sb.yaml"
    config.write_text(f"server: {{state_dir: {tmp_path / 'state'}}}\n"
                      f"redis: {{url: '{store.embedded.url}', key_prefix: t}}\n"
                      "agents:\n  sales: {language: en}\n", encoding="utf-8")

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["jobs", *args, "--config", str(config)], catch_exceptions=False)

    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert "dead letters: 1" in listed.stdout and "call u-dead" in listed.stdout and "550" in listed.stdout
    [letter] = jobs.dead_letters(store)
    shown = run("show", letter.id)
    assert shown.exit_code == 0 and "summary: " in shown.stdout and '"uuid": "u-dead"' in shown.stdout
    assert run("retry").exit_code == 2 and run("show", "9-9").exit_code == 2
    retried = run("retry", "--all")
    assert retried.exit_code == 0 and "1 record(s) back in the queue" in retried.stdout
    state = jobs.queue_state(store)
    assert state.queued == 1 and state.dead == 0 and 0 <= state.oldest_s < 60
    assert "queued: 1, the oldest 0.0 min old" in run("list").stdout


def test_a_resent_email_and_webhook_carry_the_same_ids_so_the_receiver_knows_the_repeat(
        store: Store, smtp_server: SmtpPeer, http_server: ScriptedHttp) -> None:
    """The first attempts were delivered but their replies lost (451 after the message was kept, 500 after the
    webhook was taken): the retries are real repeats, and each carries the first attempt's id."""
    smtp_server.mailbox.fail_next, smtp_server.mailbox.keep_failed = 1, True
    http_server.then(Reply(status=500), Reply(status=200))
    worker = _worker(store, smtp_server, [_email(), _webhook(http_server.url)])
    store.append_record(_record(uuid="7c1e2f0a-1111-4222-8333-944445555666"))

    _drain(worker)

    ids = [m.message["Message-ID"] for m in smtp_server.mailbox.messages]
    assert ids == ["<7c1e2f0a-1111-4222-8333-944445555666.summary@example.test>"] * 2
    keys = [r.headers["Idempotency-Key"] for r in http_server.requests]
    assert keys == ["7c1e2f0a-1111-4222-8333-944445555666.crm"] * 2


def test_worker_drain_processes_the_queue_then_exits_saying_what_is_left(store: Store, smtp_server: SmtpPeer,
                                                                         tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path
    config = tmp_path / "sb.yaml"
    config.write_text(f"server: {{state_dir: {store.state_dir}, time_scale: 0.01}}\n"
                      f"redis: {{url: '{store.embedded.url}', key_prefix: {store.settings.key_prefix}}}\n"
                      f"smtp: {{host: 127.0.0.1, port: {smtp_server.port}, from: bot@example.test}}\n"
                      "agents:\n  sales:\n    language: en\n    actions:\n      after_call:\n"
                      "        - {type: email, name: summary, description: d, subject: 'Call {{ caller }}',\n"
                      "           to: [sales@example.test], template: {text: 'Bonjour'}}\n", encoding="utf-8")
    switchboard = str(Path(sys.executable).with_name("switchboard"))

    def drain() -> subprocess.CompletedProcess:
        return subprocess.run([switchboard, "--log-text", "worker", "--drain", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)

    for uuid in ("u-1", "u-2", "u-3"):
        store.append_record(_record(uuid=uuid))
    clean = drain()
    assert clean.returncode == 0, clean.stderr
    assert "drained: 3 delivered, 0 to the dead letters" in clean.stdout and len(smtp_server.mailbox.messages) == 3

    smtp_server.mailbox.fail_next, smtp_server.mailbox.fail_code = 1, "550 5.1.1 no such mailbox"
    store.append_record(_record(uuid="u-4"))
    store.append_record(_record(uuid="u-5"))
    dirty = drain()
    assert dirty.returncode == 1 and "drained: 1 delivered, 1 to the dead letters" in dirty.stdout
    assert len(_dead(store)) == 1 and store.redis.xlen(store.stream_key) == 0


def test_a_call_matching_several_classifications_gets_the_actions_of_each(store: Store, smtp_server: SmtpPeer) -> None:
    """Transferred and a lead at once: the email for leads goes too, and templates see both names."""
    for_leads = _email(name="to_sales", subject="{{ classifications | join('+') }}", when_classified=["lead"])
    for_transfers = _email(name="to_ops", subject="ops {{ classification }}", when_classified=["transferred"])
    for_others = _email(name="to_archive", subject="other", when_classified=["other"])
    worker = _worker(store, smtp_server, [for_leads, for_transfers, for_others])
    store.append_record(_record(transferred=True))

    _drain(worker)

    subjects = sorted(m.message["Subject"] for m in smtp_server.mailbox.messages)
    assert subjects == ["ops transferred", "transferred+lead"]  # the fallback is not one of them


def test_an_email_without_a_template_sends_the_built_in_call_summary(store: Store, smtp_server: SmtpPeer) -> None:
    worker = _worker(store, smtp_server, [_email(template=None)])
    store.append_record(_record(transcript=[{"who": "caller", "text": "<script>alert(1)</script> a quote"}],
                                actions=[{"name": "to_sales", "type": "transfer", "result": "bridged"}],
                                hangup_cause="NORMAL_CLEARING", started_at="2026-12-03T09:00:00+00:00"))

    _drain(worker)

    [sent] = smtp_server.mailbox.messages
    text = sent.message.get_body(("plain",)).get_content()
    html = sent.message.get_body(("html",)).get_content()
    assert "Call u-1: transferred, lead" in text and "Caller: +33612345678 for agent sales" in text
    assert "Duration: 42 s" in text and "caller: <script>alert(1)</script> a quote" in text
    assert "to_sales (transfer): bridged" in text and "Ended by: caller (NORMAL_CLEARING)" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
