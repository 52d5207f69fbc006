"""The workflow action and its HTTP client against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from controller.delivery import DeliveryError
from controller.workflow.run import extract, run_after_call, run_workflow
from controller.workflow.http import HttpError, request
from tests.support.peers import Reply, ScriptedHttp, free_port


def _action(base: str, **request_overrides) -> SimpleNamespace:
    spec = dict(method="POST", url=base + "/crm/{{ caller | urlencode }}",
                headers={"Authorization": "Bearer {{ variables.token }}"},
                body={"phone": "{{ caller }}", "tags": ["{{ agent }}", "inbound"]})
    spec.update(request_overrides)
    return SimpleNamespace(name="lookup", request=SimpleNamespace(**spec), timeout_s=2,
                           keep={"customer": "data.customers.0.name", "vip": "data.customers.0.vip",
                                 "missing": "data.nothing.here"}, when_classified=None)


VARS = {"caller": "+33 6 12", "agent": "sales", "variables": {"token": "abc"}}


def test_a_workflow_renders_its_request_and_keeps_response_fields(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(body={"data": {"customers": [{"name": "Zoé", "vip": True}]}}))

    result = run_workflow(_action(http_server.url), VARS, uuid="u-1")

    assert result.ok and result.status == 200 and result.error is None
    assert result.variables == {"customer": "Zoé", "vip": True, "missing": None}
    (sent,) = http_server.requests
    assert sent.method == "POST" and sent.path == "/crm/%2B33%206%2012"
    assert sent.headers["Authorization"] == "Bearer abc"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {"phone": "+33 6 12", "tags": ["sales", "inbound"]}


def test_a_non_2xx_reply_is_a_failure_that_carries_the_status(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(status=503, body={"error": "maintenance"}), Reply(status=404, body=b"no such route"))

    unavailable = run_workflow(_action(http_server.url), VARS, uuid="u-1")
    not_found = run_workflow(_action(http_server.url), VARS, uuid="u-1")

    assert not unavailable.ok and unavailable.status == 503 and "HTTP 503" in unavailable.error
    assert not unavailable.permanent
    assert not not_found.ok and "HTTP 404" in not_found.error and "no such route" in not_found.error
    assert not_found.permanent


def test_a_slow_server_is_cut_off_at_the_timeout(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(delay_s=2.0))
    action = _action(http_server.url)
    action.timeout_s = 0.2

    result = run_workflow(action, VARS, uuid="u-1")

    assert not result.ok and "no complete response within 0.2 s" in result.error and not result.permanent


def test_a_response_over_the_size_cap_is_refused(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(body=b"x" * 5000))

    with pytest.raises(HttpError, match="over 4096 bytes"):
        request("GET", http_server.url + "/big", timeout_s=2, max_body=4096)


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(http_server: ScriptedHttp) -> None:
    evil = {**VARS, "variables": {"token": "abc\r\nX-Admin: yes"}}

    result = run_workflow(_action(http_server.url), evil, uuid="u-1")

    assert not result.ok and result.permanent and "Authorization contains a line break" in result.error
    assert http_server.requests == []


def test_a_server_that_is_not_there_is_a_retryable_failure() -> None:
    result = run_workflow(_action(f"http://127.0.0.1:{free_port()}"), VARS, uuid="u-1")

    assert not result.ok and result.status is None and not result.permanent
    assert "ConnectionRefusedError" in result.error


def test_a_non_json_reply_keeps_nothing_but_is_still_a_success(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(body=b"<html>ok</html>", headers={"Content-Type": "text/html"}))

    result = run_workflow(_action(http_server.url), VARS, uuid="u-1")

    assert result.ok and result.variables == {"customer": None, "vip": None, "missing": None}


def test_the_after_call_webhook_posts_the_record_as_json(http_server: ScriptedHttp) -> None:
    record = {"uuid": "u-1", "agent": "sales", "transcript": [{"role": "caller", "text": "bye"}]}
    action = _action(http_server.url, url=http_server.url + "/hooks/calls", body=None, headers={})
    action.keep = {}

    run_after_call(action, record, {**record, "classification": "lead"}, uuid="u-1")

    (sent,) = http_server.requests
    assert sent.method == "POST" and sent.path == "/hooks/calls" and sent.json() == record


def test_an_after_call_webhook_failure_raises_with_the_reason(http_server: ScriptedHttp) -> None:
    http_server.then(Reply(status=500, body={"error": "boom"}))
    action = _action(http_server.url, body=None)

    with pytest.raises(DeliveryError, match="HTTP 500") as failed:
        run_after_call(action, {"uuid": "u-1"}, VARS, uuid="u-1")

    assert not failed.value.permanent


def test_keep_paths_follow_dict_keys_and_list_indexes() -> None:
    data = {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}

    assert extract(data, "a.b.1.c") == (True, 2)
    assert extract(data, "a.b.-1.c") == (True, 2)
    assert extract(data, "n") == (True, None)
    assert extract(data, "a.b.2.c") == (False, None)
    assert extract(data, "a.x") == (False, None)
    assert extract([10, 20], "1") == (True, 20)


def test_a_signed_workflow_carries_a_timestamp_and_an_hmac_the_receiver_can_check(http_server, monkeypatch):
    import hashlib
    import hmac
    import time
    monkeypatch.setenv("SB_TEST_HOOK_SECRET", "whsec-42")
    http_server.then(Reply(body={"data": {}}))
    action = _action(http_server.url)
    action.secret_env = "SB_TEST_HOOK_SECRET"
    assert run_workflow(action, VARS, uuid="u-1").ok
    (sent,) = http_server.requests
    timestamp, signature = sent.headers["X-Switchboard-Timestamp"], sent.headers["X-Switchboard-Signature"]
    # the receiver's check, as the README shows it
    expected = hmac.new(b"whsec-42", timestamp.encode() + b"." + sent.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, "sha256=" + expected) and abs(time.time() - int(timestamp)) < 300


def test_a_signed_workflow_whose_secret_is_missing_is_not_sent_at_all(http_server, monkeypatch):
    monkeypatch.delenv("SB_TEST_HOOK_SECRET", raising=False)
    action = _action(http_server.url)
    action.secret_env = "SB_TEST_HOOK_SECRET"
    result = run_workflow(action, VARS, uuid="u-1")
    assert not result.ok and result.permanent and "SB_TEST_HOOK_SECRET (secret_env) is not set" in result.error
    assert http_server.requests == []


def test_call_data_in_the_path_and_query_is_encoded_so_it_cannot_add_segments_or_parameters(
        http_server: ScriptedHttp) -> None:
    http_server.then(Reply(body={}), Reply(body={}))
    action = _action(http_server.url, method="GET", body=None,
                     url=http_server.url + "/orders/{{ order }}?q={{ words }}&tag={{ tag | urlencode }}")
    hostile = {**VARS, "order": "../admin/x?role=root#", "words": "où est ma commande & co", "tag": "a b"}

    assert run_workflow(action, hostile, uuid="u-1").ok
    assert run_workflow(action, {**VARS, "order": "A-42", "words": None, "tag": "x"}, uuid="u-1").ok

    first, second = (r.path for r in http_server.requests)
    assert first == ("/orders/..%2Fadmin%2Fx%3Frole%3Droot%23?q=o%C3%B9%20est%20ma%20commande%20%26%20co"
                     "&tag=a%20b")  # `| urlencode` still works: an encoded value is not encoded twice
    assert second == "/orders/A-42?q=&tag=x"
