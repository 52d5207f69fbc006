"""The `switchboard` command line: exit codes and messages, never a traceback."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from controller.cli.main import main
from tests.support.controller import ALIAS_BOMB_AGENT, write_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.yaml"
BIN = str(Path(sys.executable).with_name("switchboard"))


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
    done = subprocess.run([BIN, "--log-text", "check", str(path)], capture_output=True, text=True, timeout=15)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{path}:{line}: YAML alias *l0 (column 24): aliases are not accepted")
    assert "write the value out where it is used" in done.stderr and "Traceback" not in done.stderr
    assert took < 5  # with the process start; in process, the same check:
    started = time.monotonic()
    assert run("check", str(path)).exit_code == 2 and time.monotonic() - started < 0.5


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
