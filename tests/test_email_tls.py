"""`smtp.security`: implicit TLS (`tls`) and STARTTLS (`starttls`) against a real aiosmtpd speaking TLS with a
certificate made for the test, checked against `ca_file`; a relay the client cannot verify is refused for good."""
from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from controller.aftercall.email import send_email
from controller.delivery import DeliveryError
from tests.support.peers import Mailbox, free_port

ACTION = SimpleNamespace(name="summary", subject="Appel", to=["ops@example.com"], cc=[], bcc=[],
                         template=SimpleNamespace(html=None, text="Bonjour"), when_classified=[])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "relay.pem", where / "relay.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _relay(certificate: tuple[Path, Path], implicit: bool) -> tuple[Controller, Mailbox, int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    mailbox, port = Mailbox(), free_port()
    if implicit:
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context)
    else:
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    return controller, mailbox, port


def _smtp(port: int, **settings) -> dict:
    return {"host": "127.0.0.1", "port": port, "username": None, "password_env": None, "security": "none",
            "ca_file": None, "from_address": "bot@example.test", "timeout_s": 5, **settings}


@pytest.mark.parametrize("implicit, security", [(True, "tls"), (False, "starttls")])
def test_mail_goes_over_tls_to_a_relay_verified_with_ca_file(certificate, implicit, security):
    controller, mailbox, port = _relay(certificate, implicit)
    try:
        send_email(ACTION, {}, _smtp(port, security=security, ca_file=certificate[0]), uuid="u-1")
        with pytest.raises(DeliveryError) as unverified:  # the same relay without its CA: refused, never retried
            send_email(ACTION, {}, _smtp(port, security=security), uuid="u-2")
    finally:
        controller.stop()
    assert len(mailbox.messages) == 1 and mailbox.messages[0].message["Subject"] == "Appel"
    assert "certificate rejected" in str(unverified.value) and unverified.value.permanent


def test_plain_smtp_to_a_relay_that_requires_starttls_says_so(certificate):
    controller, mailbox, port = _relay(certificate, implicit=False)
    try:
        with pytest.raises(DeliveryError) as refused:
            send_email(ACTION, {}, _smtp(port), uuid="u-3")
    finally:
        controller.stop()
    assert "530" in str(refused.value) and mailbox.messages == []
