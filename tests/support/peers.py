"""Real peers on loopback for tests: the embedded Redis, an SMTP server (aiosmtpd), a scripted HTTP server.

Each fixture starts its peer on 127.0.0.1 (or a unix socket under a short /tmp dir) and stops it afterwards.
"""
from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from controller.clock import Clock
from controller.state.connection import StoreSettings
from controller.state.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short state dir (a unix socket path must fit in 107 bytes; pytest's tmp_path often does not)."""
    path = Path(tempfile.mkdtemp(prefix="sb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_settings() -> StoreSettings:
    return StoreSettings(key_prefix="t", call_ttl_s=600, max_attempts=3, retry_backoff_s=1.0)


@pytest.fixture
def store(state_dir: Path, redis_settings: StoreSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A Store on its own embedded Redis; background sync off so tests drive it, files deleted once held."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    s = Store(redis_settings, state_dir, Clock(time_scale=0.01), confirm_after_s=0).start(maintain=False)
    yield s
    s.close()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)


class Mailbox:
    """aiosmtpd handler: keeps what it accepts; `fail_next` answers 451 (or `fail_code`) to that many DATA; with
    `keep_failed` it keeps those messages too (delivered, but the sender never learnt it: a lost reply)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.fail_next = 0
        self.keep_failed = False
        self.fail_code = "451 4.3.0 Try again later"
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            if self.keep_failed:
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            return self.fail_code
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK"


@dataclass
class SmtpPeer:
    host: str
    port: int
    mailbox: Mailbox
    users: dict[str, str] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "username": None, "password_env": "SMTP_PASSWORD",
                "security": "none", "from_address": "switchboard@example.test", "timeout_s": 5, **overrides}


def start_smtp(peer: SmtpPeer) -> Controller:
    """An aiosmtpd server for `peer` on its port, started; the caller stops it."""
    mailbox = peer.mailbox

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        mailbox.logins.append((login, password))
        ok = peer.users.get(login) == password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    controller = Controller(mailbox, hostname=peer.host, port=peer.port, authenticator=authenticate,
                            auth_require_tls=False, auth_required=False)
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[SmtpPeer]:
    peer = SmtpPeer("127.0.0.1", free_port(), Mailbox(), {"robot": "s3cret"})
    controller = start_smtp(peer)
    yield peer
    controller.stop()


class SmtpOutage:
    """An SMTP relay that is down (nothing listens on its port: connection refused) until `up()`."""

    def __init__(self) -> None:
        self.peer = SmtpPeer("127.0.0.1", free_port(), Mailbox(), {"robot": "s3cret"})
        self._controller: Optional[Controller] = None

    def up(self) -> None:
        self._controller = start_smtp(self.peer)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


@pytest.fixture
def smtp_outage() -> Iterator[SmtpOutage]:
    outage = SmtpOutage()
    yield outage
    outage.stop()


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedHttp:
    """Answers with the queued replies in order, then with `default`; records every request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def then(self, *replies: Reply) -> "ScriptedHttp":
        self.replies.extend(replies)
        return self

    def start(self) -> "ScriptedHttp":
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                peer.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))
                reply = peer.replies.popleft() if peer.replies else peer.default
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def http_server() -> Iterator[ScriptedHttp]:
    server = ScriptedHttp().start()
    yield server
    server.stop()
