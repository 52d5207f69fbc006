"""systemd's notify protocol, heard on a real AF_UNIX datagram socket from real `switchboard serve` and
`switchboard worker` processes: READY, RELOADING around SIGHUP, STOPPING at SIGTERM, and watchdog pings that
stop while Redis is gone (so systemd would restart the process) and come back with it."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from controller.ops.systemd import Notifier
from controller.state.embedded_redis import EmbeddedRedis
from tests.support.controller import write_config

BIN = str(Path(sys.executable).with_name("switchboard"))
WATCHDOG_USEC = 400_000  # a ping every 0.2 s


class NotifySocket:
    """What systemd listens on: a datagram socket at a path, or at an abstract `@name`."""

    def __init__(self, directory: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = f"@switchboard-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind(b"\0" + self.name[1:].encode())
        else:
            self.name = str(directory / "notify")
            self.sock.bind(self.name)
        self.seen: list[dict[str, str]] = []

    def next(self, timeout_s: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.seen.append(message)
        return message

    def wait_for(self, key: str, timeout_s: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and key in message:
                return message
        raise AssertionError(f"no {key} within {timeout_s} s; heard {self.seen}")

    def quiet_for(self, key: str, seconds: float) -> list[dict[str, str]]:
        """Every message heard for `seconds`; fails if one carries `key`."""
        heard, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None:
                assert key not in message, f"{key} while it should be silent: {heard + [message]}"
                heard.append(message)
        return heard

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sb-n-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class RedisServer:
    """A redis-server of its own (the session's is shared) that the test can take down whoever is connected."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server = EmbeddedRedis(directory).start()

    @property
    def url(self) -> str:
        return self.server.url

    def down(self) -> None:
        os.kill(self.server.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.server.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.server.alive()

    def up(self) -> None:
        self.server = EmbeddedRedis(self.dir).start()


@pytest.fixture
def redis_server(short_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(short_dir / "redis")
    yield server
    if server.server.alive():
        os.kill(server.server.pid, signal.SIGKILL)


def start(command: str, config: Path, notify: NotifySocket, redis_url: str) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": str(WATCHDOG_USEC), "REDIS_URL": redis_url}
    args = [BIN, "--log-json", command, "--config", str(config)] + (["--port", "0"] if command == "serve" else [])
    log = open(config.parent / f"{command}.log", "wb")
    try:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def stopped(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait(20)


def test_serve_says_ready_pings_the_watchdog_while_healthy_reloads_and_stops(short_dir, redis_server):
    config = write_config(short_dir, run_worker=False, drain_timeout_s=1)
    notify = NotifySocket(short_dir)
    proc = start("serve", config, notify, redis_server.url)
    try:
        ready = notify.wait_for("READY")
        assert ready["READY"] == "1" and ready["STATUS"].startswith("accepting calls on 127.0.0.1:")
        notify.wait_for("WATCHDOG")

        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING")
        assert abs(int(reloading["MONOTONIC_USEC"]) - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 30e6
        assert "configuration version 1" in notify.wait_for("READY")["STATUS"]

        redis_server.down()  # the health check fails: no more pings, systemd would restart the process
        notify.wait_for("STATUS")
        assert notify.seen[-1]["STATUS"] == "unhealthy: redis"
        notify.quiet_for("WATCHDOG", 1.5)  # 7 ping intervals

        redis_server.up()  # back: the pings resume
        notify.wait_for("WATCHDOG", timeout_s=30)

        proc.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING")["STATUS"].startswith("draining live calls")
        assert proc.wait(30) == 0
    finally:
        stopped(proc)
        notify.close()


def test_worker_says_ready_once_it_holds_its_consumer_group_and_reloads_and_stops(short_dir, redis_server):
    config = write_config(short_dir, run_worker=False)
    notify = NotifySocket(short_dir, abstract=True)
    proc = start("worker", config, notify, redis_server.url)
    try:
        assert notify.wait_for("READY")["STATUS"].startswith("consuming ")
        assert redis_server.server.client().xinfo_groups("switchboard:calls")[0]["name"] == b"after-call"
        notify.wait_for("WATCHDOG")

        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING")
        notify.wait_for("READY")
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        assert proc.wait(30) == 0
    finally:
        stopped(proc)
        notify.close()
    log = (short_dir / "worker.log").read_text()
    assert "configuration reloaded from" in log and "Traceback" not in log


def test_without_notify_socket_nothing_is_sent_and_a_foreign_watchdog_pid_is_not_ours():
    assert not Notifier({}).enabled and Notifier({}).notify(READY=1) is False
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000"}).watchdog_s == 1.0
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled is False
