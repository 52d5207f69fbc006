"""Shared fixtures; real peers live in tests.support.peers."""
from tests.support.peers import http_server, redis_settings, smtp_outage, smtp_server, state_dir, store  # noqa: F401

import pytest  # noqa: E402

from tests.support.controller import SessionRedis  # noqa: E402


@pytest.fixture(scope="session")
def session_redis():
    """One real redis-server for the controller integration tests (each test has its own key prefix)."""
    server = SessionRedis()
    yield server
    server.stop()
