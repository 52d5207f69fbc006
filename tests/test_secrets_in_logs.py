"""No secret reaches a log line or an error message: the ESL password (right, wrong, with a line break), the SMTP
password (accepted and refused), and an API key in a workflow header, with every logger at DEBUG.

Real peers: the simulator's inbound event socket with `switchboard call` as a process, aiosmtpd with AUTH, a real
HTTP server on 127.0.0.1.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import gevent.subprocess
import pytest

from controller.aftercall.email import send_email
from controller.delivery import DeliveryError
from controller.workflow.run import run_workflow
from fssim import Scenario
from fssim.inbound import InboundServer
from tests.support.controller import TIME_SCALE, running, write_config
from tests.support.peers import Reply

BIN = str(Path(sys.executable).with_name("switchboard"))
ESL_SECRET = "Esl-S3cret-7f2a"
SMTP_SECRET = "Smtp-S3cret-91c4"
API_SECRET = "Api-S3cret-d0e5"
TRUNK = "sip_connections:\n  trunk: {gateway: carrier_main}\ndefault_sip_connection: trunk\n"


def _call(config: Path, password: str) -> str:
    env = {**os.environ, "FREESWITCH_ESL_PASSWORD": password}
    done = gevent.subprocess.run([BIN, "--log-level", "DEBUG", "--log-json", "call", "+33612345678", "--agent",
                                  "support", "--config", str(config)], env=env, capture_output=True, text=True,
                                 timeout=60)
    return done.stdout + done.stderr


def test_the_esl_password_is_never_printed_right_wrong_or_malformed(tmp_path, session_redis, caplog):
    caplog.set_level(logging.DEBUG)
    inbound = InboundServer(ESL_SECRET, Scenario.from_dict({"name": "callee", "end_after_s": 1}), TIME_SCALE)
    with running(write_config(tmp_path, extra=TRUNK), session_redis) as runtime:
        (tmp_path / "cli").mkdir()
        cli = write_config(tmp_path / "cli", port=runtime.listener.port,
                           extra=TRUNK + f"freeswitch: {{port: {inbound.start()}}}\n")
        try:
            outputs = [_call(cli, ESL_SECRET), _call(cli, ESL_SECRET + "-wrong"), _call(cli, ESL_SECRET + "\nstatus")]
        finally:
            inbound.stop()
    assert "answered: call" in outputs[0] and "refused the password" in outputs[1]
    for text in outputs + [caplog.text]:
        assert ESL_SECRET not in text


def test_the_smtp_password_is_never_in_a_log_line_or_a_delivery_error(smtp_server, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    action = SimpleNamespace(name="summary", subject="Appel", to=["ops@example.com"], cc=[], bcc=[],
                             template=SimpleNamespace(html=None, text="Bonjour"), when_classified=[])
    monkeypatch.setenv("SB_TEST_SMTP_PASSWORD", SMTP_SECRET)
    smtp_server.users["robot"] = SMTP_SECRET
    send_email(action, {}, smtp_server.settings(username="robot", password_env="SB_TEST_SMTP_PASSWORD"), uuid="u-1")
    monkeypatch.setenv("SB_TEST_SMTP_PASSWORD", SMTP_SECRET + "-wrong")
    with pytest.raises(DeliveryError) as refused:
        send_email(action, {}, smtp_server.settings(username="robot", password_env="SB_TEST_SMTP_PASSWORD"),
                   uuid="u-2")
    assert "535" in str(refused.value) and SMTP_SECRET not in str(refused.value)
    assert SMTP_SECRET not in caplog.text


def test_an_api_key_in_a_workflow_header_is_not_logged_when_the_request_fails(http_server, caplog):
    caplog.set_level(logging.DEBUG)
    http_server.then(Reply(status=401, body={"error": "bad key"}))
    action = SimpleNamespace(name="lookup", timeout_s=2, keep={}, request=SimpleNamespace(
        method="GET", url=http_server.url + "/crm?token=" + API_SECRET, headers={"Authorization": f"Bearer {API_SECRET}"},
        body=None))
    result = run_workflow(action, {}, uuid="u-3")
    assert not result.ok and "401" in result.error
    assert http_server.requests[0].headers["Authorization"] == f"Bearer {API_SECRET}"  # it was sent
    assert API_SECRET not in result.error and API_SECRET not in caplog.text  # the query is left out of logs too
