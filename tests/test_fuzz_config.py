"""Fuzzing (hypothesis, derandomized) of what operators write: the config loader on mutated and random files, the
transfer-numbers CSV checker, email addresses and relative paths.

A loader answers with a validated object or its one error type (ConfigError, NumbersError) naming the file; never
a traceback. The CSV checker reports each bad line by number and keeps only valid E.164 rows; an address that
passes cannot inject a header; a relative path never resolves outside its base directory.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from controller.config.base import EmailAddress, inside
from controller.config.errors import ConfigError
from controller.config.load import load_config
from controller.esl.values import validate_e164
from controller.transfer.directory import NumbersError, check_csv
from tests.test_config import BASE

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
HOSTILE_TEXT = st.sampled_from(["${system id}", "{{ ''.__class__.__mro__ }}", "a,b=c", "\u202e", "x" * 5000,
                                "+33 1 23", "-1", "1e309", "NaN", "~", "../../etc/passwd", "\x00", "é", ""])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=40), HOSTILE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)
BASE_DATA = yaml.safe_load(BASE)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in the parsed base config."""
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _paths(value, prefix + (i,))
    return out


PATHS = _paths(BASE_DATA)[1:]


def _replaced(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], value)
    return copy


def _load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "switchboard.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(path) in str(exc) and "Traceback" not in str(exc)


@FUZZ
@given(st.sampled_from(PATHS), VALUES)
@example(("agents", "support", "number"), "+33184808080,x=1")
@example(("sip_connections", "trunk", "gateway"), "gw}evil")
@example(("agents", "support", "actions", "during_call", 0, "sip_headers", 0, "value"), "${system id}")
def test_a_config_with_any_one_value_replaced_loads_or_lists_its_problems(path, value):
    try:
        text = yaml.safe_dump(_replaced(BASE_DATA, path, value), allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return
    _load_text(text)


@FUZZ
@given(st.one_of(VALUES.map(lambda v: yaml.safe_dump(v, allow_unicode=True)), st.text(max_size=400)))
@example("agents: &a {x: *a}")
@example("agents:\n  support: {language: fr}\n  support: {language: en}\n")
@example("!!python/object/apply:os.system ['id']")
@example("\t- bad indentation\n  :")
@example("agents:\n  support: {language: fr\x08}\n")  # found by this test: a traceback before the fix
def test_any_file_loads_or_lists_its_problems(text):
    _load_text(text)


def test_a_control_character_in_the_file_is_named_with_its_line(tmp_path):
    path = tmp_path / "switchboard.yaml"
    path.write_text("server: {port: 8084}\nagents:\n  support: {language: fr\x08}\n", encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert f"{path}:3" in str(exc) and "control character 0x0008" in str(exc)
    else:
        raise AssertionError("loaded a file with a control character")


CSV_FIELD = st.one_of(st.text(max_size=25), st.sampled_from(["+33170363950", "01 70 36 39 50", "=cmd|' /C calc'!A0",
                                                             '"quoted, comma"', "+33170363950,extra", "\ufeffphone"]))


@FUZZ
@given(st.lists(st.lists(CSV_FIELD, min_size=1, max_size=3), max_size=12), st.booleans())
@example([["phone", "description"], ["+33170363950", "Advisors"], ["${x}", "y"]], True)
@example([["phone"], ["+33170363950\r\n+33999"]], True)
def test_a_numbers_csv_is_checked_line_by_line_and_keeps_only_valid_rows(rows, with_header):
    text = "\n".join(",".join(row) for row in ([["phone", "description"]] if with_header else []) + rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "numbers.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            report = check_csv(path)
        except NumbersError as exc:
            assert str(path) in str(exc) and "line " in str(exc)
            return
    for row in report.rows:
        assert validate_e164(row.phone) == row.phone
        assert "\n" not in row.description and "$" not in row.description
    assert all(problem.startswith("line ") for problem in report.problems)


EMAIL = TypeAdapter(EmailAddress)


@FUZZ
@given(st.one_of(st.emails().map(str), st.text(max_size=80)))
@example("support@example.com\r\nBcc: victim@example.com")
@example("a@b.c, evil@x.y")
@example("<evil@x.y>")
@example("{{ variables.manager }}@example.com")
def test_an_email_address_that_passes_cannot_add_a_header_or_a_recipient(value):
    try:
        out = EMAIL.validate_python(value)
    except ValidationError:
        return
    assert not set(out) & set("\r\n,<>;\0") and out.count("@") == 1


@FUZZ
@given(st.lists(st.sampled_from(["..", ".", "templates", "a", "b.html", "", "/", "~", "\\.."]), max_size=8))
def test_a_relative_path_never_resolves_outside_its_base(parts):
    relative = Path(*[p for p in parts if p]) if any(parts) else Path(".")
    base = Path(tempfile.gettempdir()) / "switchboard-fuzz-base"
    resolved = inside(base, relative)
    if relative.is_absolute():
        assert resolved == relative
    elif resolved is not None:
        assert resolved.is_relative_to(base.resolve())
