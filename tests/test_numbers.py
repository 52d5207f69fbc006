"""`switchboard numbers import|list`: good, bad, hostile and oversize files; the action dials imported numbers."""
from __future__ import annotations

import json

import gevent
import pytest
from click.testing import CliRunner

from controller.transfer.directory import MAX_BYTES, NumbersError, check_csv, load_numbers
from controller.cli.numbers import numbers
from tests.support.controller import call, records, running
from tests.support.transfer import ASKS_FOR_ADVISOR, agent_yaml, transfer_config, transfer_entry, wire

GOOD = "phone,description\n+33472103030,Agence de Lyon\n+33556006600,Agence de Bordeaux\n"


@pytest.fixture
def config(tmp_path):
    """A config whose only transfer destinations are imported (`check` refuses it until they are)."""
    return transfer_config(tmp_path, agents={"support": agent_yaml({"destinations": []})})


def csv_file(tmp_path, text: str | bytes, name: str = "numbers.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def run(*args):
    result = CliRunner().invoke(numbers, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_valid_file_is_imported_next_to_the_config_and_the_yaml_is_never_rewritten(config, tmp_path):
    before = config.read_bytes()
    source = csv_file(tmp_path, "\ufeff" + GOOD.replace("\n", "\r\n") + "+33472103030,\n\n")
    code, output = run("import", "support.to_advisor", source, "--config", config)
    written = tmp_path / "numbers" / "support.to_advisor.csv"
    assert code == 0 and "imported 2 numbers" in output and "1 duplicate merged" in output
    assert written.read_text(encoding="utf-8") == GOOD and config.read_bytes() == before
    assert [p.name for p in written.parent.iterdir()] == ["support.to_advisor.csv"]


def test_a_description_column_is_optional_and_duplicates_keep_the_first_description(tmp_path):
    report = check_csv(csv_file(tmp_path, "phone\n+33472103030\n+33472103030\n"))
    assert [(r.phone, r.description) for r in report.rows] == [("+33472103030", "")] and report.merged == 1
    report = check_csv(csv_file(tmp_path, "description,phone\n,+33472103030\nLyon,+33472103030\n", "b.csv"))
    assert [(r.phone, r.description) for r in report.rows] == [("+33472103030", "Lyon")]


def test_every_bad_line_is_reported_and_nothing_is_written(config, tmp_path):
    source = csv_file(tmp_path, GOOD + "0472103030,Sans indicatif\n+3347210,Trop court\n+33472103031,=HYPERLINK(\"x\")\n"
                                       "+33 4 72 10 30 30,Espaces\n+33472103032,a,b\n+33472103033,\"x\ny\"\n")
    code, output = run("import", "support.to_advisor", source, "--config", config)
    assert code == 2 and "nothing written: 6 bad lines" in output
    lines = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith(str(source))]
    assert lines[0].startswith("line 4: 0472103030: must be E.164")
    assert lines[1].startswith("line 5: +3347210: ")
    assert lines[2] == "line 6: =HYPERLINK(\"x\"): description starts with '=', which a spreadsheet would run as a formula"
    assert lines[3].startswith("line 7: +33 4 72 10 30 30: must be E.164")
    assert lines[4] == "line 8: +33472103032,a,b: has 3 columns; the header has 2"
    assert lines[5] == "line 9: x\\ny: description contains the control character '\\n'"
    assert not (tmp_path / "numbers").exists()


def test_skip_invalid_imports_the_good_lines_and_lists_the_others(config, tmp_path):
    source = csv_file(tmp_path, GOOD + "+33999,Faux\n")
    code, output = run("import", "support.to_advisor", source, "--config", config, "--skip-invalid")
    assert code == 0 and "line 4: +33999:" in output and "(1 bad line skipped)" in output
    rows, skipped = load_numbers(tmp_path / "numbers" / "support.to_advisor.csv")
    assert [r.phone for r in rows] == ["+33472103030", "+33556006600"] and skipped == 0


@pytest.mark.parametrize("name, content, message", [
    ("numbers.txt", GOOD, "only .csv files are imported"),
    ("numbers.csv", b"phone,description\n+33472103030,Caf\xe9\n", "line 2: not UTF-8 (byte 0xe9)"),
    ("numbers.csv", "number,label\n+33472103030,x\n", "line 1: header 'number,label'"),
    ("numbers.csv", "phone,phone\n+33472103030,+33472103030\n", "line 1: header"),
    ("numbers.csv", "", "line 1: no header row"),
    ("numbers.csv", "phone,description\n", "has no valid number"),
    ("numbers.csv", "phone,description\n+33472103030,\"unterminated\n", "unexpected end of data"),
    ("numbers.csv", "phone,description\n+33472103030,a\x00b\n", "line 2:"),
    ("numbers.csv", "phone,description\n+33472103030,${destroy}\n", "would expand"),
    ("numbers.csv", "phone,description\n+33472103030," + "x" * 201 + "\n", "201 characters long; at most 200"),
    ("numbers.csv", "phone,description\n\u202e+33472103030,x\n", "line 2: \\u202e+33472103030: must be E.164"),
])
def test_hostile_or_broken_files_are_refused_with_the_line_and_the_reason(config, tmp_path, name, content, message):
    code, output = run("import", "support.to_advisor", csv_file(tmp_path, content, name), "--config", config)
    assert code == 2 and message in output
    assert not (tmp_path / "numbers").exists()


def test_a_file_over_5_mb_is_refused_before_it_is_read(config, tmp_path):
    row = "+33472103030,Agence de Lyon avec une description assez longue pour remplir le fichier\n"
    big = csv_file(tmp_path, "phone,description\n" + row * (MAX_BYTES // len(row) + 1))
    code, output = run("import", "support.to_advisor", big, "--config", config)
    assert code == 2 and "at most 5 MB" in output
    with pytest.raises(NumbersError):
        check_csv(big)


def test_an_unknown_action_lists_the_transfer_actions(config, tmp_path):
    code, output = run("import", "support.end_call", csv_file(tmp_path, GOOD), "--config", config)
    assert code == 2 and "transfer actions: support.to_advisor" in output


def test_list_shows_inline_then_imported_destinations(tmp_path):
    config = transfer_config(tmp_path)
    run("import", "support.to_advisor", csv_file(tmp_path, GOOD + "+33170363950,Doublon\n"), "--config", config)
    code, output = run("list", "support.to_advisor", "--config", config, "--json")
    listed = json.loads(output)
    assert code == 0 and [(d["id"], d["source"]) for d in listed["destinations"]] == [
        ("conseillers_paris", "inline"), ("n33472103030", "imported"), ("n33556006600", "imported")]
    code, output = run("list", "support.to_advisor", "--config", config)
    assert output.splitlines()[0].startswith("support.to_advisor: 1 inline, 2 imported from ")
    assert "+33556006600  Agence de Bordeaux" in output


def test_the_action_dials_an_imported_number_chosen_by_its_description(config, tmp_path, session_redis):
    code, _ = run("import", "support.to_advisor", csv_file(tmp_path, GOOD), "--config", config)
    assert code == 0
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "targets": {"+33556006600": "busy"}, "script": [
            {"wait_for": {"app": "speak"}}, {"say": ASKS_FOR_ADVISOR + " à Bordeaux"},
            {"wait_for": {"app": "bridge"}}, {"silence": 2}]})
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert wire(rec, "bridge")[0].endswith("sofia/gateway/trunk_main/+33556006600")
    assert transfer_entry(record)["detail"]["destination"] == "n33556006600"


def test_a_new_import_is_picked_up_by_a_running_controller(config, tmp_path, session_redis):
    run("import", "support.to_advisor", csv_file(tmp_path, GOOD), "--config", config)
    with running(config, session_redis) as runtime:
        run("import", "support.to_advisor", csv_file(tmp_path, "phone,description\n+33388609090,Agence de Strasbourg\n",
                                                     "new.csv"), "--config", config)
        rec = call(runtime, {"agent": "support", "targets": {"+33388609090": "busy"}, "script": [
            {"wait_for": {"app": "speak"}}, {"say": ASKS_FOR_ADVISOR}, {"wait_for": {"app": "bridge"}},
            {"silence": 2}]})
    assert wire(rec, "bridge")[0].endswith("/+33388609090")
