"""Actions as tools: slugs, tool schemas, and the JSON-schema subset every action call is checked against."""
from __future__ import annotations

from controller.brain.base import ActionCall, ActionSpec
from controller.brain.tools import (SLUG_PATTERN, build_toolset, check_call, refused_turn, slugify,
                                    validate_arguments)

TRANSFER = ActionSpec("Transfert ventes / été", "transfer", "Transférer aux ventes.",
                      {"type": "object", "properties": {"destination": {"type": "string", "minLength": 2}},
                       "required": ["destination"], "additionalProperties": False},
                      state="closed", next_opening="2026-03-02T09:00:00+01:00", fillable=("destination",))
HANGUP = ActionSpec("hangup", "hangup", "End the call when the caller says goodbye.", {})


def test_a_name_with_accents_spaces_and_slashes_becomes_a_valid_tool_name():
    assert slugify("Transfert ventes / été") == "Transfert_ventes_ete"
    assert SLUG_PATTERN.match(slugify("x" * 100))
    assert slugify("!!!") == "action"


def test_two_actions_whose_names_fold_to_the_same_slug_get_distinct_tools_that_map_back():
    twin = ActionSpec("Transfert ventes - été", "transfer", "Autre.", {})
    other = ActionSpec("Transfert_ventes_ete", "transfer", "Encore.", {})
    toolset = build_toolset([TRANSFER, twin, other])
    names = [tool["function"]["name"] for tool in toolset.tools]
    assert len(set(names)) == 3 and all(SLUG_PATTERN.match(n) for n in names)
    assert [toolset.by_slug[n].name for n in names] == [TRANSFER.name, twin.name, other.name]
    assert toolset.slug_of(other.name) == names[2]


def test_a_closed_transfer_is_offered_with_its_next_opening_and_an_argumentless_action_gets_an_empty_schema():
    toolset = build_toolset([TRANSFER, HANGUP])
    transfer, hangup = (tool["function"] for tool in toolset.tools)
    assert transfer["description"].startswith("Transférer aux ventes.")
    assert "Closed now" in transfer["description"] and "2026-03-02T09:00:00+01:00" in transfer["description"]
    assert transfer["parameters"] == TRANSFER.parameters
    assert hangup["description"] == HANGUP.description
    assert hangup["parameters"] == {"type": "object", "properties": {}, "additionalProperties": False}


def test_valid_arguments_pass():
    schema = {"type": "object", "required": ["digits", "count"], "additionalProperties": False, "properties": {
        "digits": {"type": "string", "pattern": "^[0-9*#]{1,8}$"},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "ratio": {"type": "number"},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
    }}
    assert validate_arguments(schema, {"digits": "12#", "count": 2, "ratio": 0.5, "urgent": True,
                                       "tags": ["a", "b"]}) == []
    assert validate_arguments(schema, {"digits": "1", "count": 3.0}) == []


def test_each_broken_rule_is_reported_with_the_field_and_what_is_allowed():
    schema = {"type": "object", "required": ["digits", "count"], "additionalProperties": False, "properties": {
        "digits": {"type": "string", "pattern": "^[0-9*#]{1,8}$", "maxLength": 8},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "name": {"type": "string", "minLength": 2},
        "tags": {"type": "array", "items": {"type": "string"}},
    }}
    errors = validate_arguments(schema, {"digits": "12ab", "mode": "turbo", "name": "x", "tags": ["ok", 3],
                                         "extra": 1})
    assert "arguments.count: required field missing" in errors
    assert any(e.startswith("arguments.digits: '12ab' does not match the pattern") for e in errors)
    assert "arguments.mode: 'turbo' is not one of ['fast', 'slow']" in errors
    assert "arguments.name: needs at least 2 characters, got 1" in errors
    assert "arguments.tags[1]: expected string, got integer 3" in errors
    assert "arguments.extra: unknown field (allowed: digits, count, mode, name, tags)" in errors
    assert validate_arguments(schema, {"digits": "1", "count": 9}) == ["arguments.count: 9 is above the maximum 3"]
    assert validate_arguments(schema, {"digits": "1", "count": 0}) == ["arguments.count: 0 is below the minimum 1"]
    assert validate_arguments(schema, {"digits": "1" * 9, "count": 1}) == [
        "arguments.digits: allows at most 8 characters, got 9",
        "arguments.digits: '111111111' does not match the pattern ^[0-9*#]{1,8}$"]


def test_booleans_are_not_numbers_and_arguments_must_be_an_object():
    schema = {"type": "object", "properties": {"count": {"type": "integer"}, "ratio": {"type": "number"}}}
    assert validate_arguments(schema, {"count": True, "ratio": False}) == [
        "arguments.count: expected integer, got boolean True", "arguments.ratio: expected number, got boolean False"]
    assert validate_arguments(schema, ["not", "an", "object"]) == [
        "arguments: expected object, got array ['not', 'an', 'object']"]
    assert validate_arguments({"type": ["string", "null"]}, None) == []


def test_an_action_spec_is_validated_against_its_own_parameters():
    assert validate_arguments(TRANSFER, {"destination": "sales"}) == []
    assert validate_arguments(TRANSFER, {}) == ["arguments.destination: required field missing"]
    assert validate_arguments(HANGUP, {}) == []


def test_a_call_to_an_unknown_action_is_refused_and_the_refusal_turn_says_why():
    errors = check_call(ActionCall("fly_to_the_moon"), [TRANSFER, HANGUP])
    assert errors == ["unknown action 'fly_to_the_moon' (this agent may call: Transfert ventes / été, hangup)"]
    errors = check_call(ActionCall(TRANSFER.name, {"destination": 3}), [TRANSFER, HANGUP])
    assert errors == ["arguments.destination: expected string, got integer 3"]
    turn = refused_turn(ActionCall(TRANSFER.name, {"destination": 3}), errors)
    assert turn.kind == "refused"
    assert turn.result == {"action": TRANSFER.name, "arguments": {"destination": 3},
                           "reason": "arguments.destination: expected string, got integer 3"}
