"""Operator templates cannot stall the process, change call data, or slip past `check`.

The hostile-template test runs a real `switchboard serve` (monkey-patched, `run_worker: true`, as in production):
in this unpatched test process the in-process worker's blocking Redis reads would stall the hub by themselves.
"""
from __future__ import annotations

import signal
import time
from types import SimpleNamespace

import gevent
import pytest
from click.testing import CliRunner

from controller.aftercall.queue import dead_letters
from controller.aftercall.worker import Worker
from controller.cli.main import main
from controller.config.load import load_config
from controller.state.store import Store
from controller.templating import TemplateError, TemplateLimitError, render
from fssim import Scenario, Simulator
from tests.support.controller import BASE_AGENT, write_config
from tests.test_process import SCALE, Serve, short_dir  # noqa: F401 (short_dir is a fixture)

# Each iteration builds and scans a 1 MB string: few operations, so it is the time limit that stops it.
HEAVY = ("{% for i in range(100000) %}{% for j in range(100000) %}{% if 'yx' in 'y' * 1000000 %}{% endif %}"
         "{% endfor %}{% endfor %}")
NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"


def _email_agent(smtp_port: int) -> tuple[str, str]:
    agent = BASE_AGENT + """  after_call:
    - type: email
      name: summary
      description: Compte rendu de l'appel
      subject: "Appel de {{ caller }}"
      to: [support@example.com]
      template: {text: summary.txt}
"""
    smtp = f"smtp: {{host: 127.0.0.1, port: {smtp_port}, from: switchboard@example.com, timeout_s: 5}}\n"
    return agent, smtp


def _call(seconds: float) -> Scenario:
    return Scenario.from_dict({"name": "call", "agent": "support", "script": [{"silence": seconds}]})


def test_an_email_template_over_its_time_limit_does_not_stop_serve_from_answering_calls(short_dir, smtp_server):
    agent, smtp = _email_agent(smtp_server.port)
    config = write_config(short_dir, {"support": agent}, smtp, time_scale=SCALE, run_worker=True)
    template = short_dir / "summary.txt"
    template.write_text("Appel de {{ caller }}\n", encoding="utf-8")
    loaded = load_config(config)  # the template passes the checks; HEAVY would not
    serve = Serve(config)
    store = None
    try:
        template.write_text(HEAVY, encoding="utf-8")  # edited while serve runs: read at send time
        sim = Simulator(("127.0.0.1", serve.port), time_scale=SCALE)
        sim.run(_call(1))  # its record reaches the worker, which starts rendering HEAVY for 2 s
        gevent.sleep(0.3)
        rec = sim.run(_call(6))
        connect = next((f for f in rec.frames if f.direction == "in" and f.raw.startswith(b"connect")), None)
        assert connect is not None and connect.t * SCALE < 1.0, "serve sent no `connect` within a second"
        store = Store(loaded.redis, loaded.server.state_dir).start(maintain=False)
        assert dead_letters(store) == []  # the whole second call was served while the email was still rendering
        letters, deadline = [], time.monotonic() + 15
        while not letters and time.monotonic() < deadline:
            gevent.sleep(0.05)
            letters = dead_letters(store)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(20) == 0
    finally:
        if store is not None:
            store.close()
        serve.stop()
    assert rec.hangup_by == "caller"
    [letter] = letters
    assert "email summary: template.text (summary.txt): rendering stopped at the time limit of 2 s" in letter.reason
    assert letter.failures[0]["permanent"] is True and smtp_server.mailbox.messages == []


def test_nested_loops_over_large_ranges_stop_at_the_operation_limit():
    with pytest.raises(TemplateLimitError, match="limit of 1000000 operations"):
        render(NESTED_RANGES, {})


def test_an_empty_loop_body_still_pays_for_its_iterations():
    with pytest.raises(TemplateLimitError, match="operations"):
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})


@pytest.mark.parametrize("source, limit", [
    ("{{ 'x' * 10000000 }}", "output limit of 1000000 characters"),
    ("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", "output limit of 1000000 characters"),
    ("{{ 7 ** 100000 }}", "4096-bit"),
    ("{{ range(10**9) | length }}", "100000 items"),
])
def test_a_huge_value_or_output_is_refused_naming_the_limit(source, limit):
    with pytest.raises(TemplateLimitError, match=limit):
        render(source, {})


def test_a_legitimate_email_over_a_long_transcript_renders_well_within_the_limits():
    record = {"caller": "+33612345678", "transcript": [{"who": "caller", "text": "Bonjour, ma commande"}] * 2000,
              "actions": [{"name": "to_advisor", "type": "transfer", "result": "answered"}] * 20}
    source = ("{{ caller }}{% for a in actions %}{{ a.name }} {{ a.result }}{% endfor %}"
              "{% for t in transcript %}{{ loop.index }} {{ t.who }}: {{ t.text | upper }}\n{% endfor %}")
    started = time.monotonic()
    assert render(source, record).count("MA COMMANDE") == 2000
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("source", [
    "{{ variables.update({'customer_id': 'forged'}) }}",
    "{% set _ = transcript.append({'who': 'agent', 'text': 'forged'}) %}done",
    "{{ variables.pop('customer_id') }}",
    "{{ transcript.pop() }}",
])
def test_a_template_that_changes_call_data_fails_and_changes_nothing(source):
    variables = {"variables": {"customer_id": "C-42"}, "transcript": [{"who": "caller", "text": "bonjour"}]}
    with pytest.raises(TemplateError, match="the sandbox refused: (dict|list).(update|append|pop) is not available"):
        render(source, variables)
    assert variables == {"variables": {"customer_id": "C-42"}, "transcript": [{"who": "caller", "text": "bonjour"}]}


def test_an_unsafe_attribute_fails_the_render_instead_of_rendering_empty():
    with pytest.raises(TemplateError, match="str.__class__ is not available"):
        render("{{ ''.__class__ }}", {})


def test_an_email_that_tries_to_change_the_record_is_dead_lettered_and_the_webhook_gets_the_record_unchanged(
        store, smtp_server, http_server):
    forging = SimpleNamespace(type="email", name="summary", subject="Appel de {{ caller }}", to=["a@example.test"],
                              cc=[], bcc=[], when_classified=None,
                              template={"text": "{{ variables.update({'vip': true}) }}{{ record.transcript.clear() }}"})
    webhook = SimpleNamespace(type="workflow", name="crm", timeout_s=2, keep={}, when_classified=None,
                              request=SimpleNamespace(method="POST", url=http_server.url + "/hook", headers={},
                                                      body=None))
    record = {"uuid": "u-1", "agent": "support", "caller": "+33612345678", "duration_s": 42, "hangup_by": "caller",
              "transcript": [{"who": "caller", "text": "Ma commande n'est pas arrivée"}], "actions": [],
              "variables": {"customer_id": "C-42"}}
    store.append_record(record)
    worker = Worker(store, lambda agent: [forging, webhook], {}, smtp_server.settings(), consumer="w-1",
                    reclaim_interval_s=0)

    worker.process_once(block_ms=100)

    [request] = http_server.requests
    sent = request.json()
    assert sent["variables"] == {"customer_id": "C-42"} and sent["transcript"] == record["transcript"]
    [letter] = dead_letters(store)
    assert "summary: email summary: template.text: the sandbox refused: dict.update is not available" in letter.reason
    assert smtp_server.mailbox.messages == []


CHECKED = """\
smtp: {host: 127.0.0.1, port: 8025, from: bot@example.com}
sip_connections:
  trunk: {gateway: trunk_main}
agents:
  support:
    language: fr
    speech:
      greeting: "@greeting@"
    actions:
      before_call:
        - type: workflow
          name: lookup
          description: Fiche client.
          request:
            method: POST
            url: "http://127.0.0.1:8099/customers/@url@"
            headers: {X-Call: "@http_header@"}
            body: {phone: "@body@"}
          keep: {customer_id: id}
      during_call:
        - type: transfer
          name: to_advisor
          description: Transférer à un conseiller.
          sip_headers:
            - {name: X-Customer-Id, value: "@sip_header@"}
          messages: {transferring: "@message@"}
          destinations:
            - {country: FR, number: "01 70 36 39 50", description: Conseillers}
        - type: workflow
          name: order_status
          description: Suivi de commande.
          request: {url: "http://127.0.0.1:8099/orders"}
          say_result: "@say_result@"
      after_call:
        - type: email
          name: summary
          description: Compte rendu.
          subject: "@subject@"
          to: ["@to@"]
          cc: ["@cc@"]
          bcc: ["@bcc@"]
          template:
            text: "@text@"
            html: templates/summary.html
"""
BENIGN = {"greeting": "Bonjour {{ customer_name }}", "url": "{{ caller_number | urlencode }}",
          "http_header": "{{ uuid }}", "body": "{{ caller_number }}", "sip_header": "{{ customer_id }}",
          "message": "Je vous transfère, {{ caller_name }}.", "say_result": "Votre commande est {{ status }}.",
          "subject": "[{{ classification }}] Appel de {{ caller }}", "to": "support@example.com",
          "cc": "{{variables.customer_id}}@example.com", "bcc": "audit@example.com",
          "text": "{% for turn in transcript %}{{ turn.who }} : {{ turn.text }}\n{% endfor %}"}
PATHS = {"greeting": "agents.support.speech.greeting",
         "url": 'agents.support.actions.before_call[0] (workflow "lookup").request.url',
         "http_header": 'agents.support.actions.before_call[0] (workflow "lookup").request.headers.X-Call',
         "body": 'agents.support.actions.before_call[0] (workflow "lookup").request.body.phone',
         "sip_header": 'agents.support.actions.during_call[0] (transfer "to_advisor").sip_headers[0] ("X-Customer-Id")'
                       '.value',
         "message": 'agents.support.actions.during_call[0] (transfer "to_advisor").messages.transferring',
         "say_result": 'agents.support.actions.during_call[1] (workflow "order_status").say_result',
         "subject": 'agents.support.actions.after_call[0] (email "summary").subject',
         "to": 'agents.support.actions.after_call[0] (email "summary").to[0]',
         "cc": 'agents.support.actions.after_call[0] (email "summary").cc[0]',
         "bcc": 'agents.support.actions.after_call[0] (email "summary").bcc[0]',
         "text": 'agents.support.actions.after_call[0] (email "summary").template.text'}
REFUSED = "allowed: a self-contained template that reads call data"
OVER = "allowed: a template that loops over call data, not over large ranges"


def _checked(tmp_path, html: str = "<p>{{ caller }}</p>", **templates: str):
    """`switchboard check` on CHECKED with `templates` in place of the benign ones: (result, path, line of each)."""
    text = CHECKED
    for name, benign in BENIGN.items():
        text = text.replace(f"@{name}@", templates.get(name, benign).replace('"', '\\"').replace("\n", "\\n"))
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "summary.html").write_text(html, encoding="utf-8")
    lines = {name: next(i for i, line in enumerate(CHECKED.splitlines(), 1) if f"@{name}@" in line) for name in BENIGN}
    lines["html"] = next(i for i, line in enumerate(CHECKED.splitlines(), 1) if "summary.html" in line)
    return CliRunner().invoke(main, ["--log-text", "check", str(path)]), path, lines


def test_check_accepts_templates_that_read_the_call(tmp_path):
    result, _, _ = _checked(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 1 agent")


@pytest.mark.parametrize("field", sorted(BENIGN))
def test_check_tries_every_kind_of_template_on_the_sample_call_and_names_the_option_line(tmp_path, field):
    escape = "{{''.__class__}}@example.com" if field in ("to", "cc", "bcc") else "{{ ''.__class__.__mro__ }}"
    result, path, lines = _checked(tmp_path, **{field: escape})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (f"{path}:{lines[field]}: {PATHS[field]}: cannot be rendered safely: the sandbox refused: "
            "str.__class__ is not available") in result.stderr
    assert REFUSED in result.stderr


@pytest.mark.parametrize("template, problem, fix", [
    ("{{ variables.update({'customer_id': 'x'}) }}", "the sandbox refused: dict.update is not available", REFUSED),
    ("{% set _ = transcript.append(1) %}", "the sandbox refused: list.append is not available", REFUSED),
    ("{{ cycler.__init__.__globals__ }}", "is not available: templates read call data", REFUSED),
    ("{% include 'header.txt' %}", "{% include %} at template line 1 is not available", REFUSED),
    ("{% import 'macros.txt' as m %}", "{% import %} at template line 1 is not available", REFUSED),
    ("{% extends 'base.txt' %}", "{% extends %} at template line 1 is not available", REFUSED),
    ("{{ range(10**9) | length }}", "goes over the template limits on the sample call: range(1000000000) is longer "
                                    "than the sandbox's 100000 items", OVER),
    (NESTED_RANGES, "goes over the template limits on the sample call: rendering stopped at the limit of 1000000 "
                    "operations", OVER),
])
def test_check_refuses_sandbox_escapes_template_loading_and_templates_over_the_limits(tmp_path, template, problem,
                                                                                       fix):
    result, path, lines = _checked(tmp_path, greeting=template)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}:{lines['greeting']}: {PATHS['greeting']}: " in result.stderr
    assert problem in result.stderr and fix in result.stderr


def test_check_renders_an_email_template_file_and_names_the_option_that_points_to_it(tmp_path):
    result, path, lines = _checked(tmp_path, html="<p>{{ caller }}</p>\n{% include 'footer.html' %}\n")
    assert result.exit_code == 2
    assert (f"{path}:{lines['html']}: agents.support.actions.after_call[0] (email \"summary\").template.html: "
            f"template file {path.parent}/templates/summary.html: cannot be rendered safely: {{% include %}} at "
            "template line 2 is not available") in result.stderr


@pytest.mark.parametrize("html", [False, True])
def test_none_and_undefined_values_render_empty_not_as_the_word_none(html):
    variables = {"customer_id": None, "variables": {"customer_name": None}}
    assert render("id={{ customer_id }} nom={{ variables.customer_name }} tier={{ customer_tier }}", variables,
                  html=html) == "id= nom= tier="
