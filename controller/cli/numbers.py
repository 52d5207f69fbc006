"""`switchboard numbers ...`: import a CSV directory for a transfer action, and list what an action can dial.

Every error a person can fix ends the command with clear lines on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from controller.transfer.directory import NumbersError, check_csv, find_transfer, numbers_file, targets_for, write_numbers


def _fail(message: str) -> NoReturn:
    click.echo(message.rstrip("\n"), err=True)
    sys.exit(2)


def _config_option(func: Any) -> Any:
    return click.option("--config", "config_path", envvar="SWITCHBOARD_CONFIG", required=True,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="the YAML configuration (default: $SWITCHBOARD_CONFIG)")(func)


@click.group()
def numbers() -> None:
    """Numbers a transfer action can dial, imported from CSV into numbers/<agent>.<action>.csv."""


@numbers.command("import")
@click.argument("target", metavar="AGENT.ACTION")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@_config_option
@click.option("--skip-invalid", is_flag=True, help="import the good lines and list the others")
def import_numbers(target: str, csv_file: Path, config_path: Path, skip_invalid: bool) -> None:
    """Check FILE.csv (phone in E.164, optional description; UTF-8; at most 5 MB) and replace the action's numbers.

    Every bad line is listed as `line N: value: reason`; nothing is written unless the whole file is valid
    (or --skip-invalid). Duplicated phones are merged. The file is replaced atomically; the YAML is never
    rewritten, and a running `serve` picks the new numbers up at the next transfer.
    """
    from controller.config.yaml_lines import YamlProblem, read_yaml
    try:
        doc = read_yaml(config_path)
        agent_id, action_name = find_transfer(doc.data, target, str(config_path))
        report = check_csv(csv_file)
    except YamlProblem as exc:
        _fail(f"{config_path}: {exc.problem}" + (f"; {exc.allowed}" if exc.allowed else ""))
    except NumbersError as exc:
        _fail(str(exc))
    for problem in report.problems:
        click.echo(f"{csv_file}: {problem}", err=True)
    bad = len(report.problems)
    if bad and not skip_invalid:
        _fail(f"nothing written: {bad} bad line{'s' * (bad != 1)} in {csv_file}; fix them, or pass --skip-invalid "
              "to import the good lines only")
    if not report.rows:
        _fail(f"nothing written: {csv_file} has no valid number")
    destination = numbers_file(config_path.resolve().parent / "numbers", agent_id, action_name)
    try:
        write_numbers(destination, report.rows)
    except OSError as exc:
        _fail(f"{destination}: cannot write it ({exc.strerror or exc})")
    notes = [f"{report.merged} duplicate{'s' * (report.merged != 1)} merged"] if report.merged else []
    if bad:
        notes.append(f"{bad} bad line{'s' * (bad != 1)} skipped")
    suffix = f" ({', '.join(notes)})" if notes else ""
    click.echo(f"imported {len(report.rows)} number{'s' * (len(report.rows) != 1)} for {target} into "
               f"{destination}{suffix}")


@numbers.command("list")
@click.argument("target", metavar="AGENT.ACTION")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def list_numbers(target: str, config_path: Path, as_json: bool) -> None:
    """What a transfer action can dial: its inline destinations, then its imported numbers."""
    from controller.config.errors import ConfigError
    from controller.config.load import load_config
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    agent_id, dot, action_name = target.partition(".")
    agent = config.agents.get(agent_id) if dot else None
    action = next((a for a in agent.actions.during_call if a.name == action_name), None) if agent else None
    if action is None or action.type != "transfer":
        transfers = [f"{aid}.{a.name}" for aid, ag in config.agents.items()
                     for a in ag.actions.during_call if a.type == "transfer"]
        _fail(f"{target!r} is not a transfer action of {config.display_path} (AGENT.ACTION; transfer actions: "
              f"{', '.join(transfers) or 'none'})")
    path = numbers_file(config.numbers_dir, agent_id, action_name)
    targets, skipped = targets_for(action, path)
    if as_json:
        click.echo(json.dumps({
            "action": target, "imported_file": str(path) if path.is_file() else None, "skipped_lines": skipped,
            "destinations": [{"id": t.id, "kind": t.kind, "number": t.number, "agent": t.agent,
                              "description": t.description, "source": "imported" if t.imported else "inline"}
                             for t in targets]}, ensure_ascii=False, indent=2))
        return
    imported = sum(t.imported for t in targets)
    origin = f" from {path}" if path.is_file() else ""
    click.echo(f"{target}: {len(targets) - imported} inline, {imported} imported{origin}")
    for t in targets:
        click.echo(f"  {t.id:<24} {t.number or 'agent ' + (t.agent or '')}  {t.description}")
    if skipped:
        click.echo(f"warning: {skipped} line{'s' * (skipped != 1)} of {path} skipped (not E.164 or unsafe "
                   "description); re-import the file", err=True)
