"""The `switchboard` command line: exit codes and messages, never a traceback."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import gevent
import gevent.subprocess
import pytest
from click.testing import CliRunner
from gevent.server import StreamServer

from controller.cli.main import main
from tests.support.controller import ALIAS_BOMB_AGENT, TIME_SCALE, call, running, write_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.yaml"
BIN = str(Path(sys.executable).with_name("switchboard"))
MINIMAL = Path(__file__).resolve().parent / "configs" / "minimal.yaml"


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["--log-text", *args], env=env or {})


def test_check_accepts_the_example_and_prints_a_one_line_summary():
    result = run("check", str(EXAMPLE))
    assert result.exit_code == 0
    assert result.stdout.startswith("OK: 2 agents")


def test_check_takes_the_config_from_the_environment_too():
    result = run("check", env={"SWITCHBOARD_CONFIG": str(EXAMPLE)})
    assert result.exit_code == 0


def test_a_ring_limit_of_60_exits_2_naming_the_field_and_the_allowed_range(tmp_path):
    bad = EXAMPLE.read_text(encoding="utf-8").replace("max_ring_s: 20", "max_ring_s: 60")
    path = tmp_path / "agent.yaml"
    path.write_text(bad, encoding="utf-8")
    (tmp_path / "templates").symlink_to(EXAMPLE.parent / "templates")
    result = run("check", str(path))
    assert result.exit_code == 2
    assert "max_ring_s: 60 is out of range; allowed: 5..45" in result.stderr
    assert "Traceback" not in result.output


def test_check_refuses_a_yaml_alias_bomb_at_its_first_alias_in_well_under_a_second(tmp_path):
    """Aliases are refused as the file is read, before anything walks the 387 million strings they expand to.
    A real process, so that an expanding check is killed at the timeout instead of holding the suite."""
    path = write_config(tmp_path, agents={"support": ALIAS_BOMB_AGENT})
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if "*l0" in text)
    started = time.monotonic()
    done = gevent.subprocess.run([BIN, "--log-text", "check", str(path)], capture_output=True, text=True, timeout=15)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{path}:{line}: YAML alias *l0 (column 24): aliases are not accepted")
    assert "write the value out where it is used" in done.stderr and "Traceback" not in done.stderr
    assert took < 5  # with the process start; in process, the same check:
    started = time.monotonic()
    assert run("check", str(path)).exit_code == 2 and time.monotonic() - started < 0.5


def test_check_warns_that_a_remote_freeswitch_host_gets_the_esl_password_in_cleartext(tmp_path):
    remote = write_config(tmp_path, extra="freeswitch: {host: 192.0.2.10}\n")
    result = run("check", str(remote))
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"warning: {remote}: freeswitch.host: 192.0.2.10 is not loopback; the ESL password and every command "
        "`switchboard call` sends to FreeSWITCH's inbound event socket travel in cleartext: keep the event socket "
        "on loopback (127.0.0.1), or reach it through a tunnel (stunnel, WireGuard)"]
    assert run("check", str(write_config(tmp_path))).stderr == ""


def test_a_missing_config_exits_2_with_the_fix():
    result = run("serve")
    assert result.exit_code == 2
    assert "--config CONFIG or set SWITCHBOARD_CONFIG" in result.stderr


def test_a_bad_scenario_file_exits_2_naming_the_file_and_field(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\nscript:\n  - dtmf: '12x'\n", encoding="utf-8")
    result = run("simulate", str(scenario), "--config", str(EXAMPLE))
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr and "dtmf" in result.stderr


def _simulate_against(tmp_path: Path, port: int) -> tuple[gevent.subprocess.CompletedProcess, str]:
    """`switchboard simulate --controller 127.0.0.1:PORT --json` as a real process (the command monkey-patches
    the process it runs in); returns the process and the call's error as the JSON says it."""
    scenario = tmp_path / "hello.yaml"
    scenario.write_text("name: hello\nagent: support\nscript:\n  - say: bonjour\n  - silence: 2\n", encoding="utf-8")
    done = gevent.subprocess.run([BIN, "--log-text", "simulate", str(scenario), "--config", str(write_config(tmp_path)),
                                  "--controller", f"127.0.0.1:{port}", "--time-scale", str(TIME_SCALE), "--json"],
                                 capture_output=True, text=True, timeout=60)
    [played] = json.loads(done.stdout)
    return done, played["scenario"]["error"]


def _free_port() -> int:
    probe = StreamServer(("127.0.0.1", 0), lambda sock, address: None)
    probe.start()
    port = probe.server_port
    probe.stop()
    return port


def test_simulate_against_a_port_nobody_listens_on_exits_1_asking_whether_serve_listens_there(tmp_path):
    port = _free_port()
    done, error = _simulate_against(tmp_path, port)
    assert done.returncode == 1
    assert error == ("connect failed: [Errno 111] Connection refused: is `switchboard serve` listening on "
                     f"127.0.0.1:{port}?")
    assert f"hello: {error}" in done.stderr


def test_simulate_against_a_running_controller_that_takes_the_call_exits_0(tmp_path, session_redis):
    (tmp_path / "serve").mkdir()
    with running(write_config(tmp_path / "serve"), session_redis) as runtime:
        done, error = _simulate_against(tmp_path, runtime.listener.port)
    assert done.returncode == 0 and error is None, done.stderr


def test_simulate_against_a_controller_that_refuses_the_call_exits_1_saying_it_refused(tmp_path, session_redis):
    """A controller at server.max_connections answers `connect` then `exit`: the call goes back to the dialplan,
    which is not a simulated call that ran."""
    (tmp_path / "serve").mkdir()
    config = write_config(tmp_path / "serve", max_connections=1)
    with running(config, session_redis) as runtime:
        held = gevent.spawn(call, runtime, {"agent": "support", "script": [{"silence": 400}]})
        gevent.sleep(0.3)  # the one call the controller takes is in progress
        done, error = _simulate_against(tmp_path, runtime.listener.port)
        refused = runtime.listener.refused
        held.kill()
    assert done.returncode == 1 and refused == 1
    assert error == (f"the controller at 127.0.0.1:{runtime.listener.port} refused the call (`connect`, then "
                     "`exit`), as it does at server.max_connections; its log says why")
    assert f"hello: {error}" in done.stderr


def test_simulate_against_a_peer_that_never_sends_connect_exits_1_saying_so(tmp_path):
    silent = StreamServer(("127.0.0.1", 0), lambda sock, address: sock.recv(1))
    silent.start()
    try:
        done, error = _simulate_against(tmp_path, silent.server_port)
    finally:
        silent.stop(timeout=1)
    assert done.returncode == 1
    assert error == (f"no `connect` from the controller at 127.0.0.1:{silent.server_port} (the socket app gave up "
                     "after 25 s): is that `switchboard serve`'s server.host:port?")


@pytest.mark.parametrize("state_dir, problem", [
    ("state", "{state} is a file, not a directory"),
    ("state/sub", "{state} is a file, so {state}/sub cannot be a directory"),
])
def test_a_state_dir_that_is_a_file_exits_2_from_check_and_serve_naming_the_field_and_the_fix(
        tmp_path, state_dir, problem):
    (tmp_path / "state").write_text("not a directory\n", encoding="utf-8")
    config = tmp_path / "agent.yaml"
    config.write_text(f"server: {{state_dir: {state_dir}}}\n" + MINIMAL.read_text(encoding="utf-8"), encoding="utf-8")
    for command in (["check", str(config)], ["serve", "--config", str(config)]):
        result = run(*command)
        assert result.exit_code == 2, result.output
        assert f"server.state_dir: {problem.format(state=tmp_path / 'state')}; allowed: a directory" in result.stderr
        assert "Traceback" not in result.output
