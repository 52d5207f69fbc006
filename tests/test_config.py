"""Configuration loading: the example loads, and every kind of mistake is reported precisely, all at once."""
import shutil
from pathlib import Path

import pytest

from controller.config.checks import check_summary, config_warnings
from controller.config.errors import ConfigError, ConfigIssue
from controller.config.load import load_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "agent.yaml"
CONFIGS = ROOT / "tests" / "configs"

BASE = """\
smtp: {host: 127.0.0.1, port: 8025, from: bot@example.com}
default_agent: support
sip_connections:
  trunk: {gateway: trunk_main}
knowledge_sources:
  faq: {index_dir: knowledge/faq, language: fr}
classifications:
  transferred: {description: Transferred calls, when: {transferred: true}}
  other: {description: Everything else, fallback: true}
agents:
  support:
    language: fr
    number: "+33184808080"
    actions:
      during_call:
        - type: transfer
          name: to_advisor
          description: Transfer to an advisor.
          max_ring_s: 20
          schedule:
            timezone: Europe/Paris
            windows:
              - {days: [Monday-Friday], hours: "09:00-18:00"}
          sip_headers:
            - {name: X-Reason, value: support}
          destinations:
            - {country: FR, number: "01 70 36 39 50", description: Advisors}
            - {agent: sales, description: Sales agent}
        - type: rag
          name: faq_answer
          description: Answer questions from the FAQ.
          source: faq
        - type: keypad
          name: carrier_menu
          description: Press keys in an IVR.
          digits: "1w2#"
      after_call:
        - type: email
          name: summary
          description: Email a summary.
          subject: "Call from {{ caller }}"
          to: [support@example.com]
          template: {text: "Summary: {{ classification }}"}
          when_classified: [transferred]
  sales:
    language: fr
    extension: "2002"
    context: default
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def variant(old: str, new: str, base: str = BASE) -> str:
    assert old in base, f"the base config no longer contains {old!r}"
    return base.replace(old, new, 1)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def line_of(text: str, needle: str) -> int:
    return 1 + next(i for i, line in enumerate(text.splitlines()) if needle in line)


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def test_the_example_loads_with_every_action_type():
    cfg = load_config(EXAMPLE)
    assert check_summary(cfg) == ("OK: 2 agents, 14 actions (before 1, during 11, after 2), "
                                  "1 SIP connection, 1 knowledge source")
    types = {(moment, action.type) for agent in cfg.agents.values() for moment, action in agent.actions.all()}
    assert types == {("before_call", "workflow"), ("during_call", "transfer"), ("during_call", "workflow"),
                     ("during_call", "hangup"), ("during_call", "rag"), ("during_call", "keypad"),
                     ("during_call", "wait"), ("after_call", "email"), ("after_call", "workflow")}
    # index_dir and state_dir warnings depend on what earlier local runs left on disk, not on the file
    assert [w for w in config_warnings(cfg) if "index_dir" not in w and "server.state_dir" not in w] == []


def test_the_example_resolves_paths_numbers_and_defaults():
    cfg = load_config(EXAMPLE)
    assert cfg.path == EXAMPLE and cfg.base_dir == EXAMPLE.parent
    assert cfg.numbers_dir == EXAMPLE.parent / "numbers"
    assert cfg.server.state_dir == EXAMPLE.parent / "state"
    assert cfg.knowledge_sources["faq"].index_dir == EXAMPLE.parent / "state" / "knowledge" / "faq"
    support = cfg.agent("support")
    advisor = support.actions.get("to_advisor")
    assert [d.number for d in advisor.destinations] == ["+33170363950", "+33472103030", "+3225138940"]
    assert [d.id for d in advisor.destinations] == ["conseillers_ile_de_france", "conseillers_lyon", "bruxelles"]
    assert support.actions.get("to_sales").sip_connection is None  # a hand-off dials no number
    assert support.actions.get("call_summary").template.html == "templates/call_summary.html"
    assert support.actions.get("lookup_customer").request.method == "GET"
    assert support.actions.get("crm_webhook").request.method == "POST"
    assert cfg.agent("sales").brain.embedder.backend == "use-m3"
    assert cfg.agent("nobody") is None and cfg.agent(None) is None
    assert cfg.smtp.from_address == "standard@example.com"


def test_the_minimal_config_fills_every_default(tmp_path):
    cfg = load_config(CONFIGS / "minimal.yaml")
    assert cfg.default_agent == "support"
    assert (cfg.server.host, cfg.server.port, cfg.server.max_connections) == ("127.0.0.1", 8084, 200)
    assert (cfg.redis.url, cfg.redis.call_ttl_s, cfg.redis.stream) == (None, 86400, "calls")
    agent = cfg.agent("support")
    assert agent.brain.embedder.backend == "minilm"  # English
    assert (agent.limits.max_call_s, agent.ring_budget_s, agent.speech.tts.voice) == (1800, 3, "kal")
    assert (agent.brain.threshold, agent.brain.margin) == (None, None)  # the embedder's calibrated values apply
    assert cfg.server.run_worker is True


def test_a_request_without_method_posts_its_body_and_gets_otherwise(tmp_path):
    text = variant("    context: default\n", """    context: default
    actions:
      before_call:
        - {type: workflow, name: fetch, description: d, request: {url: "http://127.0.0.1:8099/a"}}
        - {type: workflow, name: send, description: d, request: {url: "http://127.0.0.1:8099/b", body: {a: 1}}}
      after_call:
        - {type: workflow, name: hook, description: d, request: {url: "http://127.0.0.1:8099/c"}}
""")
    actions = load_config(write(tmp_path, text)).agent("sales").actions
    assert [actions.get(n).request.method for n in ("fetch", "send", "hook")] == ["GET", "POST", "POST"]
    bad = variant('request: {url: "http://127.0.0.1:8099/b",', 'request: {method: get, url: "http://127.0.0.1:8099/b",',
                  text)
    assert 'before_call[1] (workflow "send").request.body: a GET request cannot carry a body' in \
        only_problem(write(tmp_path, bad))


def test_a_ring_time_of_60_seconds_names_the_field_and_the_allowed_range(tmp_path):
    text = variant("max_ring_s: 20 ", "max_ring_s: 60 ", EXAMPLE.read_text(encoding="utf-8"))
    shutil.copytree(EXAMPLE.parent / "templates", tmp_path / "templates")
    path = write(tmp_path, text)
    line = line_of(text, "max_ring_s: 60")
    assert only_problem(path) == (
        f'{path}:{line}: agents.support.actions.during_call[0] (transfer "to_advisor").max_ring_s: '
        "60 is out of range; allowed: 5..45 seconds (default 20)")


def test_an_issue_carries_file_line_path_problem_and_allowed(tmp_path):
    path = write(tmp_path, variant("max_ring_s: 20", "max_ring_s: 4"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.issues == [ConfigIssue(
        str(path), 'agents.support.actions.during_call[0] (transfer "to_advisor").max_ring_s',
        "4 is out of range", "5..45 seconds (default 20)", line_of(BASE, "max_ring_s"))]


def test_every_problem_is_reported_at_once_in_line_order():
    found = problems(CONFIGS / "many_problems.yaml")
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines) and len(found) == 14
    expected = ["server.port: 99999 is out of range", "server.hots: unknown key 'hots' (did you mean 'host'?)",
                "agents.support.number: YAML read this phone number", "barge_in: expected true or false",
                "greeting: is not a valid Jinja template", "max_ring_s: 60 is out of range",
                "unknown IANA timezone 'Europe/Pariss'", "'9:00-25:00' has an impossible time",
                "value: contains ','", "'0123' too short for FR", "unknown agent 'marketing'",
                "name 'to_sales' is already used by actions.during_call[0]", "unknown knowledge source 'faq'",
                "type 'teleport' is not allowed here"]
    for text, problem in zip(expected, found):
        assert text in problem


def test_unknown_keys_say_which_keys_are_allowed(tmp_path):
    path = write(tmp_path, variant("    number: \"+33184808080\"", "    numbr: \"+33184808080\""))
    problem = only_problem(path)
    assert f"{path}:13: agents.support.numbr: unknown key 'numbr' (did you mean 'number'?)" in problem
    assert "allowed: keys language, number, extension, context, brain, speech" in problem


def test_malformed_yaml_gives_the_line_and_column():
    problem = only_problem(CONFIGS / "malformed.yaml")
    assert problem.startswith(f"{CONFIGS / 'malformed.yaml'}:8: malformed YAML:")
    assert "(column 10)" in problem


def test_a_missing_file_is_one_clear_problem(tmp_path):
    assert only_problem(tmp_path / "nope.yaml").startswith(f"{tmp_path / 'nope.yaml'}: file not found; allowed:")


def test_an_unreadable_path_is_one_clear_problem(tmp_path):
    assert only_problem(tmp_path) == (f"{tmp_path}: is a directory, not a file; "
                                      "allowed: the path of a YAML file such as examples/agent.yaml")
    blocker = write(tmp_path, "x: 1", "plain.yaml")
    assert only_problem(blocker / "agent.yaml").startswith(f"{blocker / 'agent.yaml'}: cannot be read: ")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"agents:\n  \xff\xfe: {}\n")
    assert "is not UTF-8 text" in only_problem(binary)


def test_an_empty_file_or_a_list_is_not_a_configuration(tmp_path):
    assert "the file is empty, not a mapping" in only_problem(write(tmp_path, "", "empty.yaml"))
    assert "the file is a list, not a mapping" in only_problem(write(tmp_path, "- a\n", "list.yaml"))


@pytest.mark.parametrize("old,new,expected", [
    ("max_ring_s: 20", "max_ring_s: soon", "max_ring_s: expected a whole number, got 'soon'; allowed: 5..45 seconds"),
    ("    language: fr\n    number", "    language: [fr]\n    number",
     "agents.support.language: expected text, got a list"),
    ("digits: \"1w2#\"", "digits: [1]", "digits: expected text, got a list"),
    ("name: carrier_menu", "name: carrier_menu\n          tone_ms: loud",
     "tone_ms: expected a whole number, got 'loud'; allowed: 40..1000 milliseconds (default 100)"),
    ("default_agent: support", 'server: {peers: ["10.0.0.2"]}\ndefault_agent: support',
     "server.peers[0]: '10.0.0.2' is not host:port; allowed: another Switchboard host's socket, e.g. 10.0.0.2:8084"),
])
def test_wrong_types_name_what_was_expected(tmp_path, old, new, expected):
    assert expected in only_problem(write(tmp_path, variant(old, new)))


@pytest.mark.parametrize("old,new,expected", [
    ('"01 70 36 39 50"', '"01 70 36"', "destinations[0].number: '01 70 36' too short for FR"),
    ('"01 70 36 39 50"', '"0899123456789"', "'0899123456789' too long for FR"),
    ("country: FR", "country: ZZ", "destinations[0].country: 'ZZ' is not an ISO 3166 alpha-2 country code"),
    ('number: "+33184808080"', 'number: "+33 1 84"', "agents.support.number: '+33 1 84' must be E.164"),
    ('number: "+33184808080"', "number: +33184808080", "YAML read this phone number as the number 33184808080"),
])
def test_bad_numbers_say_why(tmp_path, old, new, expected):
    assert expected in only_problem(write(tmp_path, variant(old, new)))


def test_duplicate_action_names_name_both_places(tmp_path):
    text = variant("name: carrier_menu", "name: to_advisor")
    path = write(tmp_path, text)
    line = line_of(text, "- type: keypad") + 1
    assert only_problem(path) == (
        f'{path}:{line}: agents.support.actions.during_call[2] (keypad "to_advisor").name: '
        "name 'to_advisor' is already used by actions.during_call[0]; "
        "allowed: a name unique within the agent across before_call, during_call and after_call")


def test_a_name_is_unique_across_moments(tmp_path):
    path = write(tmp_path, variant("name: summary", "name: faq_answer"))
    assert "after_call[0] (email \"faq_answer\").name: name 'faq_answer' is already used by actions.during_call[1]" \
        in only_problem(path)


@pytest.mark.parametrize("old,new,expected", [
    ("{agent: sales,", "{agent: marketing,",
     "destinations[1].agent: unknown agent 'marketing'; allowed: one of sales, support"),
    ("source: faq", "source: wiki", "source: unknown knowledge source 'wiki'; allowed: one of faq"),
    ("when_classified: [transferred]", "when_classified: [angry]",
     "when_classified[0]: unknown classification 'angry'; allowed: one of other, transferred"),
    ("max_ring_s: 20", "max_ring_s: 20\n          sip_connection: backup",
     "sip_connection: unknown SIP connection 'backup'; allowed: one of trunk"),
    ("default_agent: support", "default_agent: boss",
     "default_agent: unknown agent 'boss'; allowed: one of sales, support"),
    ("default_agent: support", "# no default agent", "default_agent: is required when there are several agents"),
])
def test_references_to_unknown_names_list_the_known_ones(tmp_path, old, new, expected):
    assert expected in only_problem(write(tmp_path, variant(old, new)))


def test_a_hand_off_needs_an_agent_with_extension_and_context(tmp_path):
    text = variant("{agent: sales,", "{agent: billing,") + "  billing: {language: fr}\n"
    assert only_problem(write(tmp_path, text)).endswith(
        "destinations[1].agent: agent 'billing' has no extension and context, so no call can be handed to it; "
        "allowed: add extension and context to agents.billing")


def test_a_self_hand_off_is_refused(tmp_path):
    text = variant("    context: default\n", "    context: default\n    actions:\n      during_call:\n"
                   "        - {type: transfer, name: loop, description: d,\n"
                   "           destinations: [{agent: sales, description: x}]}\n")
    assert "agents.sales.actions.during_call[0] (transfer \"loop\").destinations[0].agent: " \
           "an agent cannot hand a call to itself" in only_problem(write(tmp_path, text))


def test_numbers_without_any_sip_connection_are_refused(tmp_path):
    text = variant("sip_connections:\n  trunk: {gateway: trunk_main}\n", "")
    assert "(transfer \"to_advisor\").sip_connection: numbers need a SIP connection and none is set" \
        in only_problem(write(tmp_path, text))


def test_a_transfer_without_destinations_needs_an_imported_numbers_file(tmp_path):
    text = variant("          destinations:\n            - {country: FR, number: \"01 70 36 39 50\", "
                   "description: Advisors}\n            - {agent: sales, description: Sales agent}\n", "")
    path = write(tmp_path, text)
    assert f"has no destinations and no imported numbers file {tmp_path}/numbers/support.to_advisor.csv" \
        in only_problem(path)
    (tmp_path / "numbers").mkdir()
    (tmp_path / "numbers" / "support.to_advisor.csv").write_text("phone,description\n+33170363950,Advisors\n")
    assert load_config(path).agent("support").actions.get("to_advisor").sip_connection == "trunk"


@pytest.mark.parametrize("old,new,expected", [
    ('subject: "Call from {{ caller }}"', 'subject: "Call from {{ caller"',
     "subject: is not a valid Jinja template (template syntax error at template line 1"),
    ("value: support}", "value: \"{{ customer_id }\"}",
     "sip_headers[0] (\"X-Reason\").value: is not a valid Jinja template"),
    ("language: fr\n    number", "language: fr\n    speech: {greeting: \"Hi {% if x %}\"}\n    number",
     "agents.support.speech.greeting: is not a valid Jinja template"),
    ("template: {text: \"Summary: {{ classification }}\"}", "template: {text: missing.txt}",
     f"template.text: template file {{tmp}}/missing.txt does not exist"),
])
def test_bad_templates_name_the_field(tmp_path, old, new, expected):
    assert expected.replace("{tmp}", str(tmp_path)) in only_problem(write(tmp_path, variant(old, new)))


def test_a_template_file_is_loaded_and_checked(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "bad.html").write_text("<p>{% for x in y %}</p>\n")
    path = write(tmp_path, variant("template: {text: \"Summary: {{ classification }}\"}",
                                   "template: {html: templates/bad.html}"))
    assert (f"template.html: template file {tmp_path}/templates/bad.html: is not a valid Jinja template "
            "(template syntax error") in only_problem(path)


@pytest.mark.parametrize("old,new,expected", [
    ("timezone: Europe/Paris", "timezone: Mars/Olympus",
     "schedule.timezone: unknown IANA timezone 'Mars/Olympus' (e.g. Europe/Paris); allowed: an IANA timezone"),
    ('hours: "09:00-18:00"', 'hours: "9h-18h"', "windows[0].hours: '9h-18h' is not HH:MM-HH:MM; allowed: HH:MM-HH:MM"),
    ('hours: "09:00-18:00"', 'hours: "09:75-18:00"', "windows[0].hours: '09:75-18:00' has an impossible time"),
    ("days: [Monday-Friday]", "days: [Lundi]", "windows[0].days: 'Lundi' is not a day name (Monday..Sunday)"),
])
def test_bad_schedules_name_the_field(tmp_path, old, new, expected):
    assert expected in only_problem(write(tmp_path, variant(old, new)))


@pytest.mark.parametrize("old,new,expected", [
    ("digits: \"1w2#\"", "digits: \"1x\"",
     "digits: '1x' is not a DTMF sequence; allowed: 1..99 of 0-9 * # A B C D w W, optionally @ms (e.g. 12@200)"),
    ("digits: \"1w2#\"", "digits: 0123", "digits: YAML read this digit sequence as the number 83; write it in quotes"),
    ("to: [support@example.com]", "to: [support.example.com]", "to[0]: 'support.example.com' is not an email address"),
    ("to: [support@example.com]", "to: []", "to: needs at least 1 item(s)"),
    ("{name: X-Reason, value: support}", "{name: Reason, value: support}",
     "sip_headers[0] (\"Reason\").name: 'Reason' must be X-"),
    ("{name: X-Reason, value: support}", "{name: X-Reason, value: \"a|b\"}",
     "value: contains '|', which a dial string does not allow"),
    ("gateway: trunk_main", "gateway: \"trunk main\"", "sip_connections.trunk.gateway: 'trunk main' must be 1..64"),
    ("- type: rag", "- type: ragg",
     "during_call[1] (ragg \"faq_answer\"): type 'ragg' is not allowed here (did you mean 'rag'?)"),
    ("- type: email", "- type: transfer", "after_call[0] (transfer \"summary\"): type 'transfer' is not allowed here"),
])
def test_bad_values_say_what_is_allowed(tmp_path, old, new, expected):
    assert expected in only_problem(write(tmp_path, variant(old, new)))


def test_a_key_written_twice_is_reported_with_both_lines(tmp_path):
    path = write(tmp_path, variant("default_agent: support\n", "default_agent: support\ndefault_agent: sales\n"))
    assert only_problem(path) == (f"{path}:3: default_agent: is written twice (lines 2 and 3); "
                                  "YAML would keep only the last; allowed: each key once")


def test_email_actions_need_an_smtp_section(tmp_path):
    path = write(tmp_path, variant("smtp: {host: 127.0.0.1, port: 8025, from: bot@example.com}\n", ""))
    assert "after_call[0] (email \"summary\"): sends email but the file has no smtp section" in only_problem(path)


def test_warnings_point_at_configurations_that_will_surprise(tmp_path):
    workflow = """tone_ms: 100
        - type: workflow
          name: order_status
          description: Order status.
          request: {url: "http://127.0.0.1:8099/o/{{ order_id }}"}
          arguments: {type: object, properties: {order_id: {}}, required: [order_id]}
"""
    text = "server: {host: 0.0.0.0}\n" + variant("digits: \"1w2#\"\n", workflow)
    warnings = config_warnings(load_config(write(tmp_path, text)))
    path = tmp_path / "agent.yaml"
    assert f"{path}: server.host: 0.0.0.0 is not loopback; the outbound socket has no authentication, " \
           "so only expose it on a trusted network" in warnings
    assert any("(keypad \"carrier_menu\").goal: the keys come from the menu heard" in w for w in warnings)
    assert any("(workflow \"order_status\").arguments: the semantic brain cannot fill arguments (order_id)" in w
               for w in warnings)
    assert any("knowledge_sources.faq.index_dir" in w and "switchboard knowledge index faq" in w for w in warnings)


@pytest.mark.parametrize("given", ["../outside.txt", "templates/../../outside.txt", "templates/link.txt"])
def test_a_relative_template_path_may_not_lead_out_of_the_config_directory(tmp_path, given):
    config_dir = tmp_path / "conf"
    (config_dir / "templates").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret {{ caller }}\n")
    (config_dir / "templates" / "link.txt").symlink_to(tmp_path / "outside.txt")
    path = write(config_dir, variant("template: {text: \"Summary: {{ classification }}\"}",
                                     f"template: {{text: {given}}}"))
    problem = only_problem(path)
    assert f"template.text: {given} leads out of the configuration directory {config_dir}" in problem
    assert "write an absolute path to use a file elsewhere on purpose" in problem
    absolute = write(config_dir, variant("template: {text: \"Summary: {{ classification }}\"}",
                                         f"template: {{text: {tmp_path / 'outside.txt'}}}"))
    assert load_config(absolute)  # the operator's absolute path is taken as meant


def test_an_email_template_swapped_for_a_symlink_after_load_is_not_read(tmp_path):
    from controller.aftercall.email import template_source
    from controller.delivery import DeliveryError
    config_dir = tmp_path / "conf"
    (config_dir / "templates").mkdir(parents=True)
    (config_dir / "templates" / "body.txt").write_text("Bonjour {{ caller }}\n")
    assert template_source("templates/body.txt", config_dir) == "Bonjour {{ caller }}\n"
    (tmp_path / "outside.txt").write_text("secret\n")
    (config_dir / "templates" / "body.txt").unlink()
    (config_dir / "templates" / "body.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(DeliveryError, match="leads out of the configuration directory") as refused:
        template_source("templates/body.txt", config_dir)
    assert refused.value.permanent


def test_check_warns_on_workflows_that_leave_the_host_unsigned_or_lack_their_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("SB_TEST_MISSING_SECRET", raising=False)
    text = variant("    context: default\n", """    context: default
    actions:
      after_call:
        - {type: workflow, name: crm, description: d, request: {url: "https://crm.example.com/calls"}}
        - {type: workflow, name: local, description: d, request: {url: "http://127.0.0.1:8099/c"}}
        - {type: workflow, name: signed, description: d, request: {url: "https://crm.example.com/c"},
           secret_env: SB_TEST_MISSING_SECRET}
""")
    warnings = [w for w in config_warnings(load_config(write(tmp_path, text))) if "secret_env" in w]
    assert len(warnings) == 2
    assert 'after_call[0] (workflow "crm").secret_env: requests to crm.example.com are not signed' in warnings[0]
    assert "SB_TEST_MISSING_SECRET is not set: the requests will not be sent (never unsigned)" in warnings[1]


def test_smtp_security_replaces_the_starttls_flag_and_ca_file_must_exist(tmp_path):
    smtp = "smtp: {host: 127.0.0.1, port: 8025, from: bot@example.com}"
    assert "smtp.starttls: starttls is replaced by security; allowed: security: starttls" in only_problem(
        write(tmp_path, variant(smtp, "smtp: {host: 127.0.0.1, port: 8025, from: bot@example.com, starttls: true}")))
    problem = only_problem(write(tmp_path, variant(smtp, "smtp: {host: 127.0.0.1, from: b@example.com, "
                                                         "security: tls, ca_file: certs/ca.pem}")))
    assert f"smtp.ca_file: {tmp_path}/certs/ca.pem is not a file" in problem
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = load_config(write(tmp_path, variant(smtp, "smtp: {host: 127.0.0.1, from: b@example.com, security: tls, "
                                                    "ca_file: certs/ca.pem}")))
    assert cfg.smtp.security == "tls" and cfg.smtp.ca_file == tmp_path / "certs" / "ca.pem"
