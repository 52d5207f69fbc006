"""`switchboard serve` as a real process: SIGTERM drains live calls; SIGKILL of it and of Redis loses no record."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
import pytest

from fssim import Scenario, Simulator
from tests.support.controller import BASE_AGENT, write_config
from tests.support.peers import Reply

SCALE = 0.05
BIN = str(Path(sys.executable).with_name("switchboard"))


class Serve:
    """A `switchboard serve` subprocess on an ephemeral port, its JSON log collected."""

    def __init__(self, config: Path, command: str = "serve") -> None:
        self.log = open(config.parent / f"{command}.log", "w+b")
        args = [BIN, "--log-json", command, "--config", str(config)] + (["--port", "0"] if command == "serve" else [])
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._wait_for_port() if command == "serve" else None

    def lines(self) -> list[dict]:
        out = []
        for raw in Path(self.log.name).read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.get("msg", "").startswith("listening for FreeSWITCH on"):
                    return int(line["msg"].rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {Path(self.log.name).read_text()}")
            gevent.sleep(0.1)
        raise AssertionError("serve did not start listening within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def short_dir():
    path = Path(tempfile.mkdtemp(prefix="sb-p-", dir="/tmp"))
    yield path
    pid_file = path / "state" / "redis" / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def scenario(seconds: float) -> Scenario:
    return Scenario.from_dict({"name": "long", "agent": "support", "script": [{"silence": seconds}]})


def _lose_the_record_from_the_aof(aof: Path) -> None:
    """What a SIGKILL does when Redis had replied to the XADD but postponed its AOF write (everysec, a busy
    fsync): the MULTI holding the XADD never reached the file. Waits for Redis's last write, then cuts it."""
    for _ in range(300):
        if b"XADD" in aof.read_bytes():
            break
        time.sleep(0.01)
    data = aof.read_bytes()
    if b"XADD" in data:
        with open(aof, "r+b") as fh:
            fh.truncate(data.rindex(b"MULTI", 0, data.rindex(b"XADD")) - len(b"*1\r\n$5\r\n"))


def test_sigterm_stops_new_calls_lets_live_calls_finish_and_exits_zero(short_dir):
    config = write_config(short_dir, time_scale=SCALE, drain_timeout_s=60, run_worker=False)
    serve = Serve(config)
    try:
        sim = Simulator(("127.0.0.1", serve.port), time_scale=SCALE)
        live = gevent.spawn(sim.run, scenario(12))  # the caller hangs up ~0.8 s (real) later
        gevent.sleep(0.4)
        serve.proc.send_signal(signal.SIGTERM)
        gevent.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", serve.port), timeout=2)
        rec = live.get(timeout=30)
        assert serve.proc.wait(30) == 0
    finally:
        serve.stop()
    assert rec.hangup_by == "caller"  # the live call ran to its natural end
    assert any(line["msg"].startswith("call ended") for line in serve.lines())


def test_sigterm_closes_calls_still_up_after_the_drain_timeout_for_the_dialplan_to_take(short_dir):
    config = write_config(short_dir, time_scale=SCALE, drain_timeout_s=1, run_worker=False)
    serve = Serve(config)
    try:
        sim = Simulator(("127.0.0.1", serve.port), time_scale=SCALE)
        live = gevent.spawn(sim.run, scenario(400))  # 20 s real, far past the drain timeout
        gevent.sleep(0.8)
        started = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(30) == 0
        assert time.monotonic() - started < 15
        rec = live.get(timeout=30)
    finally:
        serve.stop()
    assert any("connection" in note or "closed" in note for _, note in rec.notes)
    ended = [line for line in serve.lines() if line["msg"].startswith("call ended")]
    assert [line.get("uuid") for line in ended] == [rec.uuid]  # the call cut by the drain still has its record
    assert "(DRAIN_TIMEOUT by system)" in ended[0]["msg"]  # this side cut it, not the caller


def test_sigkill_of_the_controller_and_of_redis_after_a_call_loses_no_after_call_record(short_dir, http_server):
    http_server.default = Reply(body={"ok": True})
    agent = BASE_AGENT + f"""  after_call:
    - type: workflow
      name: crm_webhook
      description: Compte rendu au CRM
      request: {{method: POST, url: "{http_server.url}/webhooks/calls"}}
"""
    config = write_config(short_dir, {"support": agent}, time_scale=SCALE, run_worker=False)
    serve = Serve(config)
    try:
        rec = Simulator(("127.0.0.1", serve.port), time_scale=SCALE).run(scenario(1))
        deadline = time.monotonic() + 10
        while not any(l["msg"].startswith("call ended") for l in serve.lines()) and time.monotonic() < deadline:
            gevent.sleep(0.1)
        redis_pid = int((short_dir / "state" / "redis" / "redis.pid").read_text().strip())
        serve.proc.kill()
        os.kill(redis_pid, signal.SIGKILL)
        serve.proc.wait(10)
    finally:
        serve.stop()
    assert http_server.requests == []  # the worker never ran
    _lose_the_record_from_the_aof(short_dir / "state" / "redis" / "appendonly.aof")
    worker = Serve(config, "worker")
    try:
        deadline = time.monotonic() + 60
        while not http_server.requests and time.monotonic() < deadline:
            gevent.sleep(0.2)
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(20)
        worker.stop()
    [request] = http_server.requests
    assert request.json()["uuid"] == rec.uuid


def _reload(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, "--log-text", "reload", "--config", str(config), "--timeout", "60"],
                          capture_output=True, text=True, timeout=90)


def test_reload_gives_new_calls_the_new_configuration_and_a_broken_file_changes_nothing(short_dir):
    config = write_config(short_dir, time_scale=SCALE, run_worker=False)
    greeting = "Bonjour, que puis-je faire pour vous ?"
    serve = Serve(config)
    try:
        sim = Simulator(("127.0.0.1", serve.port), time_scale=SCALE)
        assert greeting in sim.run(scenario(1)).spoken

        config.write_text(config.read_text().replace(greeting, "Bienvenue chez Lumio.")
                          .replace("command_timeout_s: 5", "command_timeout_s: 6")
                          .replace("time_scale: 0.05", "time_scale: 0.1"))
        taken = _reload(config)
        assert taken.returncode == 0, taken.stderr
        assert "configuration reloaded" in taken.stdout and "server.time_scale changed" in taken.stdout
        assert "Bienvenue chez Lumio." in sim.run(scenario(1)).spoken

        good = config.read_text()
        config.write_text(good.replace("language: fr", "language: klingon"))
        refused = _reload(config)
        assert refused.returncode == 2 and "language" in refused.stderr  # checked before anything is sent
        serve.proc.send_signal(signal.SIGHUP)  # an operator's `kill -HUP` skips that check
        deadline = time.monotonic() + 30
        status = short_dir / "state" / "reload.json"
        while json.loads(status.read_text())["ok"] and time.monotonic() < deadline:
            gevent.sleep(0.1)
        assert "reload refused" in json.loads(status.read_text())["message"]
        assert "Bienvenue chez Lumio." in sim.run(scenario(1)).spoken and serve.proc.poll() is None

        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(30) == 0
    finally:
        serve.stop()
    assert not (short_dir / "state" / "serve.pid").exists()
    assert stat.S_IMODE((short_dir / "state" / "reload.json").stat().st_mode) == 0o600  # whatever the umask
    config.write_text(good)
    assert "no running `switchboard serve`" in _reload(config).stderr


def test_serve_logs_the_warnings_check_prints_when_it_starts(short_dir):
    config = write_config(short_dir, extra="freeswitch: {host: 192.0.2.10}\n")
    serve = Serve(config)
    try:
        warnings = [line["msg"] for line in serve.lines() if line.get("level") == "warning"]
    finally:
        serve.stop()
    assert any("freeswitch.host: 192.0.2.10 is not loopback" in w for w in warnings)


def _embedded_redis(short_dir: Path):
    import redis
    return redis.Redis(unix_socket_path=str(short_dir / "state" / "redis" / "redis.sock"), socket_timeout=5)


def _records_of(client, uuid: str) -> list[dict]:
    records = [json.loads(fields[b"record"]) for _, fields in client.xrange("switchboard:calls")]
    return [record for record in records if record["uuid"] == uuid]


def test_a_call_in_progress_when_serve_is_sigkilled_gets_its_record_once_when_serve_starts_again(short_dir):
    config = write_config(short_dir, time_scale=SCALE, run_worker=False)
    serve = Serve(config)
    try:
        sim = Simulator(("127.0.0.1", serve.port), time_scale=SCALE)
        live = gevent.spawn(sim.run, Scenario.from_dict({
            "name": "long", "agent": "support", "script": [{"say": "Bonjour, j'ai une question."}, {"silence": 400}]}))
        client = _embedded_redis(short_dir)
        deadline = time.monotonic() + 30
        state = {}
        while time.monotonic() < deadline:  # until the caller's words are in the call's state
            keys = [k for k in client.keys("switchboard:call:*") if k.count(b":") == 2]
            if keys and any(b"j'ai une question" in item for item in client.lrange(keys[0] + b":transcript", 0, -1)):
                state = {k.decode(): json.loads(v) for k, v in client.hgetall(keys[0]).items()}
                break
            gevent.sleep(0.05)
        assert state.get("state") == "in_call", state
        assert state["owner"]["pid"] == serve.proc.pid and state["owner"]["instance"]
        serve.proc.kill()
        serve.proc.wait(10)
        rec = live.get(timeout=30)
    finally:
        serve.stop()
    assert rec.uuid == state["uuid"] and _records_of(client, rec.uuid) == []  # SIGKILL: nothing wrote it

    for _ in range(2):  # the restart writes it; a second restart finds nothing left to write
        serve = Serve(config)  # listening once its start-up round has turned dead processes' calls into records
        serve.proc.kill()
        serve.proc.wait(10)
        serve.stop()
        [record] = _records_of(client, rec.uuid)
        assert record["hangup_by"] == "system" and record["hangup_cause"] == "controller_restart"
        assert record["agent"] == "support" and record["caller"] == "+33612345678"
        assert "j'ai une question" in json.dumps(record["transcript"], ensure_ascii=False)
        assert record["moments"]["in_call"] and record["duration_s"] > 0
    client.close()
