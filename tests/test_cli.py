"""The `switchboard` command line: exit codes and messages, never a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "agent.yaml"
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
