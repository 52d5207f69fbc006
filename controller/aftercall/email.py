"""The after-call email: subject, addresses and bodies rendered from the call record, sent over SMTP.

Call data (what the caller said, variables from webhooks) reaches the subject and maybe the addresses, so
every header value is checked after rendering: a line break there would let a caller add headers or
recipients, and the message is refused instead (a permanent failure: it goes to the dead-letter stream).
HTML bodies are rendered with autoescaping. Bcc recipients get the message through the envelope only.

Bodies come from `template.html` / `template.text`: template source, or a single-line path (relative to
the config's base dir) to a `.html`, `.htm`, `.txt`, `.j2` or `.jinja` file, read at send time so an edited
template applies to the next email. Either may be absent, not both; an action with no template at all sends
the built-in call summary (summary_email.py). Every part renders off the hub within
templating.LIMITS; a part that fails or goes over a limit fails the email for good, and the reason names it.
"""
from __future__ import annotations

import os
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from functools import lru_cache
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from pathlib import Path
from typing import Any, Mapping, Optional

from controller.clock import Clock
from controller.aftercall.summary_email import SUMMARY
from controller.config.base import inside, looks_like_path
from controller.delivery import DeliveryError
from controller.log import call_logger
from controller.templating import TemplateError, render

_HEADER_BREAKS = ("\r", "\n", "\0")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def template_source(value: Optional[str], base_dir: Optional[Path]) -> Optional[str]:
    """The template text: `value` itself, or the file it names (config_types.looks_like_path, the check's rule)."""
    if not value or not looks_like_path(value):
        return value
    path = inside(base_dir, Path(value)) if base_dir else Path(value)
    if path is None:  # checked at load; a symlink changed since then must not reach another file either
        raise DeliveryError(f"email template {value} leads out of the configuration directory {base_dir}; "
                            "keep it inside, or write an absolute path", permanent=True)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeliveryError(f"email template {path}: {exc.strerror}", permanent=True) from None


def _render(name: str, field: str, source: str, variables: dict[str, Any], html: bool = False) -> str:
    """One part of the message; a template that fails (over its limits, too) fails the email for good, naming
    the part."""
    try:
        return render(source, variables, html=html)
    except TemplateError as exc:
        raise DeliveryError(f"email {name}: {field}: {exc}", permanent=True) from None


def _header(name: str, field: str, source: str, variables: dict[str, Any]) -> str:
    value = _render(name, field, source, variables).strip()
    if any(c in value for c in _HEADER_BREAKS):
        raise DeliveryError(f"email {name}: {field} contains a line break after rendering "
                            "(refused: header injection from call data)", permanent=True)
    return value


def _addresses(name: str, field: str, sources: list[str], variables: dict[str, Any]) -> list[tuple[str, str]]:
    rendered = [_header(name, field, source, variables) for source in sources]
    pairs = [(display, addr) for display, addr in getaddresses([r for r in rendered if r]) if addr]
    for _, addr in pairs:
        local, at, domain = addr.rpartition("@")
        if not (local and at and domain):
            raise DeliveryError(f"email {name}: {field} address {addr!r} is not local@domain", permanent=True)
    return pairs


def _body(name: str, kind: str, template: Any, variables: dict[str, Any], base_dir: Optional[Path]) -> Optional[str]:
    """`template.html` or `template.text` rendered, or None when the action has no such body."""
    value = _get(template, kind)
    source = template_source(value, base_dir)
    if not source:
        return None
    field = f"template.{kind}" + (f" ({value})" if looks_like_path(value) else "")
    return _render(name, field, source, variables, html=kind == "html")


def build_message(action: Any, variables: dict[str, Any], smtp: Any, *, clock: Optional[Clock] = None,
                  base_dir: Optional[Path] = None, uuid: Optional[str] = None) -> tuple[EmailMessage, list[str]]:
    """The message (multipart/alternative when both bodies exist) and its envelope recipients (To+Cc+Bcc).

    With the call's `uuid`, the Message-ID is `<uuid>.<action name>@<sender's domain>`: the same on every retry,
    requeue and worker restart, so a mail system (or a person) sees a resend as the same message.
    """
    clock = clock or Clock()
    name = _get(action, "name", "?")
    template = _get(action, "template") or SUMMARY  # no template: the built-in call summary
    if smtp is None:
        raise DeliveryError(f"email {name}: the configuration has no smtp section", permanent=True)
    subject = _header(name, "subject", _get(action, "subject") or "", variables)
    to = _addresses(name, "to", _as_list(_get(action, "to")), variables)
    cc = _addresses(name, "cc", _as_list(_get(action, "cc")), variables)
    bcc = _addresses(name, "bcc", _as_list(_get(action, "bcc")), variables)
    text = _body(name, "text", template, variables, base_dir)
    html = _body(name, "html", template, variables, base_dir)
    if not to:
        raise DeliveryError(f"email {name}: 'to' rendered to no address", permanent=True)
    if text is None and html is None:
        raise DeliveryError(f"email {name}: template needs html, text, or both", permanent=True)
    sender = _get(smtp, "from_address")
    if not sender or "@" not in sender:
        raise DeliveryError(f"smtp.from_address {sender!r} must be an address (local@domain)", permanent=True)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(formataddr(pair) for pair in to)
    if cc:
        msg["Cc"] = ", ".join(formataddr(pair) for pair in cc)
    msg["Date"] = format_datetime(clock.now())
    domain = sender.rpartition("@")[2].strip(">")
    stable = uuid and re.fullmatch(r"[A-Za-z0-9-]{1,64}", uuid) and re.fullmatch(r"[a-z0-9_]{1,48}", name)
    msg["Message-ID"] = f"<{uuid}.{name}@{domain}>" if stable else make_msgid(domain=domain)
    msg.set_content(text if text is not None else "This message has an HTML version only.\n")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg, [addr for _, addr in to + cc + bcc]


# Open SMTP sessions kept between emails (a relay's EHLO, TLS and AUTH cost more than the message): taken out
# while in use, so two senders never share one; one not used for IDLE_S is closed rather than reused.
IDLE_S = 10.0
_idle: dict[tuple, tuple[smtplib.SMTP, float]] = {}


def _open_session(key: tuple) -> smtplib.SMTP:
    host, port, security, ca_file, username, password, timeout = key
    context = _tls_context(ca_file or None) if security != "none" else None
    server = (smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) if security == "tls"
              else smtplib.SMTP(host, port, timeout=timeout))
    try:
        server.ehlo()
        if security == "starttls":
            server.starttls(context=context)
            server.ehlo()
        if username:
            server.login(username, password)
    except BaseException:
        server.close()
        raise
    return server


def _send_over_session(key: tuple, msg: EmailMessage, recipients: list[str]) -> dict:
    """Send on the session kept for these settings, or a new one; a kept session the relay has closed meanwhile
    is replaced once, at once (nothing of the message was accepted on it)."""
    server, used_at = _idle.pop(key, (None, 0.0))
    if server is not None and time.monotonic() - used_at > IDLE_S:
        _quit(server)
        server = None
    reused = server is not None
    server = server or _open_session(key)
    try:
        try:
            refused = server.send_message(msg, from_addr=msg["From"], to_addrs=recipients)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            if not reused:
                raise
            server.close()
            server = _open_session(key)
            refused = server.send_message(msg, from_addr=msg["From"], to_addrs=recipients)
    except BaseException:
        server.close()
        raise
    _idle[key] = (server, time.monotonic())
    return refused


def _quit(server: smtplib.SMTP) -> None:
    try:
        server.quit()
    except (smtplib.SMTPException, OSError):
        server.close()


@lru_cache(maxsize=8)
def _tls_context(ca_file: Optional[str]) -> ssl.SSLContext:
    """One verifying context per CA file: loading the system's CAs takes about 20 ms, per email it capped the
    worker at 30 emails per second (bench/after_call.py)."""
    return ssl.create_default_context(cafile=ca_file)


def send_email(action: Any, variables: dict[str, Any], smtp: Any, *, uuid: str, clock: Optional[Clock] = None,
               base_dir: Optional[Path] = None) -> str:
    """Build and send; returns the Message-ID. Raises DeliveryError (permanent or not) when nothing was sent."""
    log = call_logger(uuid, "switchboard.email", action=_get(action, "name"))
    msg, recipients = build_message(action, variables, smtp, clock=clock, base_dir=base_dir, uuid=uuid)
    username, password = _get(smtp, "username"), None
    if username:
        env = _get(smtp, "password_env") or "SMTP_PASSWORD"
        password = os.environ.get(env)
        if password is None:
            raise DeliveryError(f"smtp.username is set but environment variable {env} (smtp.password_env) is not",
                                permanent=True)
    host, port = _get(smtp, "host"), int(_get(smtp, "port") or 25)
    security, ca_file = _get(smtp, "security") or "none", _get(smtp, "ca_file")
    timeout = float(_get(smtp, "timeout_s") or 30)
    key = (host, port, security, str(ca_file or ""), username or "", password or "", timeout)
    try:
        refused = _send_over_session(key, msg, recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"SMTP {host}:{port} refused every recipient: {exc.recipients}",
                            permanent=all(code >= 500 for code in codes)) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {host}:{port} answered {exc.smtp_code}: {exc.smtp_error!r}",
                            permanent=exc.smtp_code >= 500) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"SMTP {host}:{port}: {exc} (check smtp.security / smtp.username)",
                            permanent=True) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"SMTP {host}:{port}: certificate rejected: {exc.verify_message}", permanent=True) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from None
    if refused:
        log.warning("some recipients were refused: %s", refused)
    log.info("email sent", extra={"message_id": msg["Message-ID"], "recipients": len(recipients) - len(refused)})
    return msg["Message-ID"]
