"""`switchboard call` beyond one answered call: before-call workflows, records of unanswered calls, --var, the
per-agent cap and batches. The command runs as a real process against the simulated inbound event socket, the
real controller (serve) and the session's real Redis; workflows reach a real HTTP server."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import gevent
import gevent.socket
import gevent.subprocess
import pytest

from controller.aftercall.classify import classify
from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.esl.frames import FrameReader
from fssim import Scenario
from fssim.inbound import InboundServer
from tests.support.controller import BASE_AGENT, TIME_SCALE, records, running, write_config
from tests.support.peers import Reply

BIN = str(Path(sys.executable).with_name("switchboard"))
TRUNK = """
sip_connections:
  trunk: {gateway: carrier_main}
default_sip_connection: trunk
"""
# An agent that lets a silent callee be for 20 minutes of call time (a minute here): the test ends such calls.
LONG_CALLS = BASE_AGENT.replace("  greeting:", "  no_input_s: 60\n  greeting:") + (
    "limits: {max_consecutive_silences: 20}\n")
OUTCOMES = {"+33612345601": "busy", "+33612345602": "reject", "+33612345603": "no_answer",
            "+33612345604": "gateway_down"}


def _callee(script: list | None = None, end_after_s: float = 1) -> Scenario:
    return Scenario.from_dict({"name": "callee", "end_after_s": end_after_s, "targets": dict(OUTCOMES),
                               "script": script or [{"silence": 1}]})


def _cli_config(tmp_path: Path, runtime, inbound_port: int, agent: str = BASE_AGENT, extra: str = "") -> Path:
    """The controller's configuration as `switchboard call` reads it: the same agents and Redis (and key prefix),
    the simulated event socket."""
    (tmp_path / "cli").mkdir(exist_ok=True)
    store = runtime.store.settings
    return write_config(tmp_path / "cli", {"support": agent}, port=runtime.listener.port,
                        extra=TRUNK + f"freeswitch: {{port: {inbound_port}}}\n"
                        f"redis: {{url: '{runtime.store.url}', key_prefix: {store.key_prefix}}}\n" + extra)


def _run(config: Path, *args: str) -> gevent.subprocess.CompletedProcess:
    env = {**os.environ, "FREESWITCH_ESL_PASSWORD": "ClueCon"}
    return gevent.subprocess.run([BIN, "--log-text", *args, "--config", str(config)], env=env,
                                 capture_output=True, text=True, timeout=90)


def _wait_records(runtime, count: int) -> list[dict]:
    for _ in range(200):
        found = records(runtime)
        if len(found) >= count:
            return found
        gevent.sleep(0.05)
    return records(runtime)


def test_an_outbound_before_call_workflow_is_spoken_in_the_greeting_with_the_vars(tmp_path, session_redis,
                                                                                   http_server):
    http_server.then(Reply(body={"customer": {"name": "Camille Martin"}}))
    agent = BASE_AGENT.replace('greeting: "Bonjour, que puis-je faire pour vous ?"',
                               'greeting: "Bonjour {{ customer_name }}, au sujet de {{ order_ref }}."')
    agent = agent.replace("actions:\n", f"""number: "+33100000000"
actions:
  before_call:
    - type: workflow
      name: lookup
      description: Fiche client
      request: {{url: "{http_server.url}/customers?phone={{{{ destination | urlencode }}}}&from={{{{ caller_number | urlencode }}}}&ref={{{{ order_ref | urlencode }}}}&dir={{{{ direction }}}}"}}
      keep: {{customer_name: customer.name}}
""")
    config = write_config(tmp_path, {"support": agent}, extra=TRUNK)
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start(), agent)
        try:
            placed = _run(cli, "call", "06 12 34 56 78", "--country", "FR", "--agent", "support",
                          "--var", "order_ref=A-12 bis")
            [rec] = inbound.recordings()
        finally:
            inbound.stop()
        [record] = _wait_records(runtime, 1)
    assert placed.returncode == 0, placed.stderr
    speaks = [c.app_arg for c in rec.commands if c.app == "speak"]
    assert speaks[0] == "flite|kal|Bonjour Camille Martin, au sujet de A-12 bis."
    assert http_server.requests[0].path == "/customers?phone=%2B33612345678&from=%2B33100000000&ref=A-12%20bis&dir=outbound"
    [originate] = inbound.originates
    assert "A-12" not in originate and "order_ref" not in originate  # call variables, not channel variables
    assert record["uuid"] == rec.uuid and record["answered"] is True
    assert record["variables"]["customer_name"] == "Camille Martin" and record["variables"]["order_ref"] == "A-12 bis"
    [lookup] = [a for a in record["actions"] if a["name"] == "lookup"]
    assert lookup["moment"] == "before_call" and lookup["result"] == "ok"
    assert list(record["moments"]) == ["before_call", "in_call", "ended"]
    assert runtime.store.outbound_in_flight("support") == 0  # serve released the slot at record time


def test_each_unanswered_outcome_has_one_record_with_its_cause(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start())
        try:
            jobs = [gevent.spawn(_run, cli, "call", number, "--agent", "support", "--var", f"row={i}", "--json")
                    for i, number in enumerate(OUTCOMES)]
            done = [job.get() for job in jobs]
        finally:
            inbound.stop()
        found = {r["destination"]: r for r in _wait_records(runtime, 4)}
        gevent.sleep(0.2)
        assert len(records(runtime)) == 4  # never twice
        listed = _run(cli, "jobs", "list")
        assert runtime.store.outbound_in_flight("support") == 0
    causes = {"+33612345601": ("USER_BUSY", "callee"), "+33612345602": ("CALL_REJECTED", "callee"),
              "+33612345603": ("NO_ANSWER", "callee"), "+33612345604": ("NETWORK_OUT_OF_ORDER", "system")}
    for (number, (cause, by)), result, i in zip(causes.items(), done, range(4)):
        assert result.returncode == 1 and f"not answered: {cause}" in result.stderr, result.stderr
        record = found[number]
        assert (record["hangup_cause"], record["hangup_by"], record["answered"]) == (cause, by, False)
        assert record["direction"] == "outbound" and record["agent"] == "support"
        assert record["record_id"] == f"call-{record['uuid']}" and record["uuid"] in result.stderr
        assert record["duration_s"] == 0 and list(record["moments"]) == ["before_call", "ended"]
        assert record["variables"]["row"] == str(i) and record["variables"]["direction"] == "outbound"
        assert json.loads(result.stdout) == {"number": number, "outcome": {"USER_BUSY": "busy", "NO_ANSWER": "no_answer"}
                                             .get(cause, "failed"), "cause": cause, "uuid": record["uuid"]}
    assert listed.returncode == 0 and "queued: 4" in listed.stdout
    assert inbound.recordings() == []  # nobody answered: no socket ever reached serve


def test_the_cap_refuses_the_third_call_and_frees_the_slots_once_calls_end(tmp_path, session_redis):
    agent = LONG_CALLS + "outbound: {max_concurrent: 2}\n"
    config = write_config(tmp_path, {"support": agent}, extra=TRUNK)
    inbound = InboundServer("ClueCon", _callee([{"silence": 3000}]), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start(), agent)
        try:
            first = [_run(cli, "call", f"+3361234570{i}", "--agent", "support") for i in range(3)]
            in_flight = runtime.store.outbound_in_flight("support")
            inbound.hang_up()  # the two answered calls end: serve writes their records and frees their slots
            _wait_records(runtime, 2)
            again = _run(cli, "call", "+33612345709", "--agent", "support")
            inbound.hang_up()
        finally:
            inbound.stop()
        assert len(_wait_records(runtime, 3)) == 3  # the refused call has no record
        assert runtime.store.outbound_in_flight("support") == 0
    assert [r.returncode for r in first] == [0, 0, 1], [r.stderr for r in first]
    assert in_flight == 2
    assert "agent support already has 2 outbound call(s) in progress" in first[2].stderr
    assert "max_concurrent: 2" in first[2].stderr and "Traceback" not in first[2].stderr
    assert again.returncode == 0, again.stderr
    assert len(inbound.originates) == 3


def test_var_names_and_values_are_checked_before_anything_is_placed(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start())
        try:
            bad = [_run(cli, "call", "+33612345678", "--agent", "support", "--var", var)
                   for var in ("Customer=x", "destination=+33999", "novalue", "note=" + "x" * 501)]
        finally:
            inbound.stop()
    assert [b.returncode for b in bad] == [2, 2, 2, 2]
    assert "use a lowercase name like customer_name" in bad[0].stderr
    assert "is set by the call itself" in bad[1].stderr
    assert "write it key=value" in bad[2].stderr
    assert "at most 500" in bad[3].stderr
    assert inbound.originates == []


def test_a_batch_places_every_row_within_the_concurrency_and_prints_a_summary(tmp_path, session_redis):
    agent = BASE_AGENT + "outbound: {max_concurrent: 2}\n"
    config = write_config(tmp_path, {"support": agent}, extra=TRUNK)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text(textwrap.dedent("""\
        number,country,customer_name
        06 12 34 56 11,FR,Alice
        +33612345601,,Bruno
        +33612345602,,Chloé
        0612345612,FR,"Dupont, Denis"
        +33612345603,,Emma
        +33612345604,,Farid
        """), encoding="utf-8")
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start(), agent)
        try:
            batch = _run(cli, "call", "--from-csv", str(campaign), "--agent", "support", "--concurrency", "3",
                         "--json")
            inbound.recordings()
        finally:
            inbound.stop()
        found = {r["destination"]: r for r in _wait_records(runtime, 6)}
    assert batch.returncode == 1, batch.stderr  # the gateway-down row failed for a system reason
    report = json.loads(batch.stdout)
    assert report["totals"] == {"calls": 6, "answered": 2, "no_answer": 1, "busy": 1, "failed": 2,
                                "system_failures": 1}
    rows = [(c["number"], c["outcome"], c["cause"]) for c in report["calls"]]
    assert rows == [("+33612345611", "answered", ""), ("+33612345601", "busy", "USER_BUSY"),
                    ("+33612345602", "failed", "CALL_REJECTED"), ("+33612345612", "answered", ""),
                    ("+33612345603", "no_answer", "NO_ANSWER"), ("+33612345604", "failed", "NETWORK_OUT_OF_ORDER")]
    assert all(c["uuid"] == found[c["number"]]["uuid"] for c in report["calls"])
    assert found["+33612345612"]["variables"]["customer_name"] == "Dupont, Denis"
    assert found["+33612345602"]["variables"]["customer_name"] == "Chloé"
    assert len(inbound.originates) == 6


def test_a_batch_prints_one_line_per_call_and_exits_0_when_only_callees_said_no(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text("number\n+33612345611\n+33612345601\n", encoding="utf-8")
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start())
        try:
            batch = _run(cli, "call", "--from-csv", str(campaign), "--agent", "support")
            inbound.recordings()
        finally:
            inbound.stop()
    assert batch.returncode == 0, batch.stderr
    lines = batch.stdout.strip().splitlines()
    assert lines[0].startswith("+33612345611  answered  -  ") and lines[1].startswith("+33612345601  busy  USER_BUSY  ")
    assert lines[-1] == "answered 1, no_answer 0, busy 1, failed 0 (2 calls)"


def test_a_bad_csv_is_refused_line_by_line_and_nothing_is_placed(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text("number,customer_name,Note\n+33612345611,Alice,ok\n12,Bruno,x\n+33612345612,Chloé\n"
                        "+33612345613,Denis,x\n", encoding="utf-8")
    missing = tmp_path / "nonumber.csv"
    missing.write_text("phone,customer_name\n+33612345611,Alice\n", encoding="utf-8")
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start())
        try:
            bad = _run(cli, "call", "--from-csv", str(campaign), "--agent", "support")
            no_number = _run(cli, "call", "--from-csv", str(missing), "--agent", "support")
        finally:
            inbound.stop()
        assert records(runtime) == []
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"{campaign}:1: column 'Note': variable name 'Note': use a lowercase name" in bad.stderr
    assert f"{campaign}:3: " in bad.stderr and f"{campaign}:4: 2 fields, the header has 3" in bad.stderr
    assert f"{campaign}:2:" not in bad.stderr and f"{campaign}:5:" not in bad.stderr
    assert "nothing was placed" in bad.stderr
    assert no_number.returncode == 2 and f"{missing}:1: the header row must name a `number` column" in no_number.stderr
    assert inbound.originates == []


def test_concurrent_originates_on_one_inbound_connection_each_get_their_background_job():
    """As mod_event_socket does: each bgapi is a job of its own; the BACKGROUND_JOB bodies are FreeSWITCH's
    `-ERR <cause>\\n` (capture 01's shape)."""
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    sock = gevent.socket.create_connection(("127.0.0.1", inbound.start()), timeout=10)
    reader = FrameReader(sock.makefile("rb"))
    try:
        def send(text: str, headers: str = "") -> None:
            sock.sendall(f"{text}\n{headers}\n".encode())

        send("auth ClueCon")
        send("event plain BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE")
        for i, number in enumerate(OUTCOMES):
            send(f"bgapi originate {{origination_uuid=0b130000-0000-4000-8000-00000000000{i}}}"
                 f"sofia/gateway/carrier_main/{number} &socket('127.0.0.1:9 async full')",
                 f"Job-UUID: 0b13aaaa-0000-4000-8000-00000000000{i}\n")
        bodies, replies, events, hangups = {}, [], [], {}
        while len(bodies) < 4:
            frame = reader.read()
            if frame.content_type == "command/reply":
                replies.append(frame.get("Reply-Text"))
            if frame.content_type != "text/event-plain":
                continue
            events.append(frame.get("Job-UUID") or frame.get("Unique-ID"))
            if frame.name == "BACKGROUND_JOB":
                bodies[frame.get("Job-UUID")] = frame.body
            else:
                hangups[frame.get("Unique-ID")] = frame.get("Hangup-Cause")
    finally:
        sock.close()
        inbound.stop()
    assert replies[:2] == ["+OK accepted", "+OK event listener enabled plain"]
    legs = [f"0b130000-0000-4000-8000-00000000000{i}" for i in range(4)]
    jobs = [f"0b13aaaa-0000-4000-8000-00000000000{i}" for i in range(4)]
    for leg, job in zip(legs[:3], jobs):  # each failed leg hangs up before its job reports; a down gateway has none
        assert events.index(leg) < events.index(job)
    assert hangups == {legs[0]: "USER_BUSY", legs[1]: "CALL_REJECTED", legs[2]: "NO_ANSWER"}
    assert sorted(replies[2:]) == [f"+OK Job-UUID: 0b13aaaa-0000-4000-8000-00000000000{i}" for i in range(4)]
    assert bodies == {"0b13aaaa-0000-4000-8000-000000000000": "-ERR USER_BUSY\n",
                      "0b13aaaa-0000-4000-8000-000000000001": "-ERR CALL_REJECTED\n",
                      "0b13aaaa-0000-4000-8000-000000000002": "-ERR NO_ANSWER\n",
                      "0b13aaaa-0000-4000-8000-000000000003": "-ERR NETWORK_OUT_OF_ORDER\n"}


def test_classification_rules_name_unanswered_outcomes():
    rules = {"no_answer": {"when": {"answered": False, "hangup_cause": ["NO_ANSWER", "ALLOTTED_TIMEOUT"]}},
             "busy": {"when": {"answered": False, "hangup_cause": ["USER_BUSY"]}},
             "talked": {"when": {"answered": True}}, "other": {"fallback": True}}
    assert classify({"answered": False, "hangup_cause": "NO_ANSWER"}, rules) == "no_answer"
    assert classify({"answered": False, "hangup_cause": "USER_BUSY"}, rules) == "busy"
    assert classify({"answered": True, "hangup_cause": "NORMAL_CLEARING"}, rules) == "talked"
    assert classify({"answered": False, "hangup_cause": "CALL_REJECTED"}, rules) == "other"


def test_a_cap_out_of_bounds_and_an_unknown_classification_cause_are_refused_naming_the_field(tmp_path):
    agent = BASE_AGENT + "outbound: {max_concurrent: 0}\n"
    extra = "classifications:\n  missed:\n    description: x\n    when: {answered: false, hangup_cause: [no answer]}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"support": agent}, extra=extra))
    text = str(caught.value)
    assert "agents.support.outbound.max_concurrent: 0 is out of range; allowed: 1..200 (default 4)" in text
    assert "classifications.missed.when.hangup_cause[0]: cause 'no answer' is not allowed" in text


def test_the_worker_runs_after_call_actions_for_a_busy_call_classified_by_its_cause(tmp_path, session_redis,
                                                                                     http_server):
    agent = BASE_AGENT + f"""  after_call:
    - type: workflow
      name: missed_call
      description: Tell the CRM nobody took the call.
      request: {{url: "{http_server.url}/missed"}}
      when_classified: [busy]
"""
    extra = TRUNK + """classifications:
  busy:
    description: the line was busy
    when: {direction: outbound, answered: false, hangup_cause: [USER_BUSY]}
  other: {description: everything else, fallback: true}
"""
    config = write_config(tmp_path, {"support": agent}, extra=extra)
    inbound = InboundServer("ClueCon", _callee(), TIME_SCALE)
    with running(config, session_redis, run_worker=True) as runtime:
        cli = _cli_config(tmp_path, runtime, inbound.start(), agent, extra=extra.replace(TRUNK, ""))
        try:
            busy = _run(cli, "call", "+33612345601", "--agent", "support")
        finally:
            inbound.stop()
        for _ in range(200):
            if http_server.requests:
                break
            gevent.sleep(0.05)
    assert busy.returncode == 1
    [request] = http_server.requests
    body = request.json()
    assert request.path == "/missed" and body["hangup_cause"] == "USER_BUSY" and body["answered"] is False
    assert body["destination"] == "+33612345601"
