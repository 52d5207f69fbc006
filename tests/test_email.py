"""The after-call email against a real SMTP server (aiosmtpd on 127.0.0.1)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.aftercall.email import build_message, send_email
from controller.delivery import DeliveryError
from tests.support.peers import SmtpPeer


def _action(**overrides) -> SimpleNamespace:
    fields = dict(name="summary", subject="Call from {{ caller }} ({{ classification }})",
                  to=["sales@example.test"], cc=["{{ variables.account_manager }}"], bcc=["audit@example.test"],
                  template={"text": "Caller said: {{ transcript[0].text }}",
                            "html": "<p>Caller said: {{ transcript[0].text }}</p>"},
                  when_classified=None)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def _vars(**overrides) -> dict:
    record = {"uuid": "u-1", "agent": "sales", "caller": "+33612345678", "classification": "lead",
              "variables": {"account_manager": "Ann <ann@example.test>"},
              "transcript": [{"role": "caller", "text": "I'd like a quote <b>today</b>"}]}
    record.update(overrides)
    return record


def test_an_email_goes_out_as_multipart_alternative_with_bcc_only_in_the_envelope(smtp_server: SmtpPeer) -> None:
    message_id = send_email(_action(), _vars(), smtp_server.settings(), uuid="u-1")

    (received,) = smtp_server.mailbox.messages
    msg = received.message
    assert received.mail_from == "switchboard@example.test"
    assert sorted(received.rcpt_tos) == ["ann@example.test", "audit@example.test", "sales@example.test"]
    assert msg["Subject"] == "Call from +33612345678 (lead)"
    assert msg["To"] == "sales@example.test" and msg["Cc"] == "Ann <ann@example.test>"
    assert msg["Bcc"] is None and b"audit@example.test" not in received.raw
    assert msg["Message-ID"] == message_id and message_id.endswith("@example.test>")
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Caller said: I'd like a quote <b>today</b>"
    assert "&lt;b&gt;today&lt;/b&gt;" in msg.get_body(("html",)).get_content()


def test_a_subject_with_a_line_break_from_call_data_is_refused_and_nothing_is_sent(smtp_server: SmtpPeer) -> None:
    action = _action(subject="Lead: {{ variables.name }}")
    evil = _vars(variables={"name": "Bob\r\nBcc: victim@example.test", "account_manager": "ann@example.test"})

    with pytest.raises(DeliveryError, match="subject contains a line break") as refused:
        send_email(action, evil, smtp_server.settings(), uuid="u-1")

    assert refused.value.permanent
    assert smtp_server.mailbox.messages == []


def test_an_address_with_a_line_break_from_call_data_is_refused(smtp_server: SmtpPeer) -> None:
    evil = _vars(variables={"account_manager": "ann@example.test\nBcc: victim@example.test"})

    with pytest.raises(DeliveryError, match="cc contains a line break"):
        send_email(_action(), evil, smtp_server.settings(), uuid="u-1")

    assert smtp_server.mailbox.messages == []


def test_login_uses_the_password_from_the_environment(smtp_server: SmtpPeer, monkeypatch) -> None:
    monkeypatch.setenv("SB_TEST_SMTP_PASSWORD", "s3cret")

    send_email(_action(), _vars(), smtp_server.settings(username="robot", password_env="SB_TEST_SMTP_PASSWORD"),
               uuid="u-1")

    assert smtp_server.mailbox.logins == [("robot", "s3cret")]
    assert len(smtp_server.mailbox.messages) == 1


def test_a_missing_password_variable_is_a_permanent_error_that_names_it(smtp_server: SmtpPeer, monkeypatch) -> None:
    monkeypatch.delenv("SB_TEST_SMTP_PASSWORD", raising=False)

    with pytest.raises(DeliveryError, match="SB_TEST_SMTP_PASSWORD") as failed:
        send_email(_action(), _vars(), smtp_server.settings(username="robot", password_env="SB_TEST_SMTP_PASSWORD"),
                   uuid="u-1")

    assert failed.value.permanent


def test_a_wrong_password_is_a_permanent_error(smtp_server: SmtpPeer, monkeypatch) -> None:
    monkeypatch.setenv("SB_TEST_SMTP_PASSWORD", "wrong")

    with pytest.raises(DeliveryError, match="535") as failed:
        send_email(_action(), _vars(), smtp_server.settings(username="robot", password_env="SB_TEST_SMTP_PASSWORD"),
                   uuid="u-1")

    assert failed.value.permanent


def test_a_temporary_smtp_refusal_can_be_retried_and_a_permanent_one_cannot(smtp_server: SmtpPeer) -> None:
    smtp_server.mailbox.fail_next = 1
    with pytest.raises(DeliveryError, match="451") as temporary:
        send_email(_action(), _vars(), smtp_server.settings(), uuid="u-1")
    smtp_server.mailbox.fail_next, smtp_server.mailbox.fail_code = 1, "554 5.7.1 Rejected"
    with pytest.raises(DeliveryError, match="554") as permanent:
        send_email(_action(), _vars(), smtp_server.settings(), uuid="u-1")

    assert not temporary.value.permanent and permanent.value.permanent


def test_an_smtp_server_that_is_not_there_is_a_retryable_failure(smtp_server: SmtpPeer) -> None:
    from tests.support.peers import free_port

    with pytest.raises(DeliveryError) as failed:
        send_email(_action(), _vars(), smtp_server.settings(port=free_port()), uuid="u-1")

    assert not failed.value.permanent


def test_templates_can_be_files_relative_to_the_config_dir(tmp_path: Path, smtp_server: SmtpPeer) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "summary.txt").write_text("Agent {{ agent }} took the call.\n")
    action = _action(template={"text": "mail/summary.txt", "html": None})

    msg, recipients = build_message(action, _vars(), smtp_server.settings(), base_dir=tmp_path)

    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Agent sales took the call."
    assert "audit@example.test" in recipients


def test_an_undefined_variable_renders_empty_rather_than_failing(smtp_server: SmtpPeer) -> None:
    msg, _ = build_message(_action(subject="Call {{ nothing }}done"), _vars(), smtp_server.settings())

    assert msg["Subject"] == "Call done"


def test_the_built_in_summary_renders_on_the_sample_call_within_the_template_budget():
    from controller.aftercall.summary_email import SUMMARY
    from controller.config.sample import SAMPLE_VARIABLES
    from controller.templating import render
    text, html = render(SUMMARY["text"], SAMPLE_VARIABLES), render(SUMMARY["html"], SAMPLE_VARIABLES, html=True)
    assert "transferred" in text and SAMPLE_VARIABLES["caller"] in text and "Transcript:" in text
    assert "<h3>Transcript</h3>" in html


def test_the_kept_smtp_session_is_replaced_when_the_relay_restarted_meanwhile() -> None:
    """Emails reuse one SMTP session; a relay restarted between two emails closed it, and the next email opens
    a new one at once instead of failing (nothing was accepted on the dead one)."""
    from tests.support.peers import Mailbox, free_port, start_smtp
    peer = SmtpPeer("127.0.0.1", free_port(), Mailbox())
    relay = start_smtp(peer)
    try:
        first_id = send_email(_action(), _vars(), peer.settings(), uuid="u-1")
        relay.stop()
        peer.mailbox = Mailbox()
        relay = start_smtp(peer)
        second_id = send_email(_action(), _vars(), peer.settings(), uuid="u-2")
    finally:
        relay.stop()
    assert first_id != second_id and [m.message["Message-ID"] for m in peer.mailbox.messages] == [second_id]
