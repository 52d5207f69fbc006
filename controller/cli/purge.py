"""`switchboard calls purge`: erase one caller's calls, or every call before a date, wherever call data is kept
(dead letters, records waiting for the worker, live call state, the spool): a data-protection request or a
retention policy stricter than `redis.retention_days`."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from controller.cli.common import config_option, fail, open_store


@click.group()
def calls() -> None:
    """Call data kept in Redis and the spool."""


@calls.command("purge")
@config_option
@click.option("--caller", default=None, metavar="+E164", help="every call with this number (caller or called)")
@click.option("--before", default=None, metavar="DATE", help="every call ended before this ISO date or time (UTC "
              "unless it says otherwise), e.g. 2026-11-01")
@click.option("--dry-run", is_flag=True, help="say what would be erased, erase nothing")
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def purge_command(config_path: str | None, caller: str | None, before: str | None, dry_run: bool,
                  as_json: bool) -> None:
    """Erase calls by number or date. Exits 0 (also when nothing matched), 2 on bad input."""
    from controller.esl.values import DialStringError, validate_e164
    from controller.state.retention import purge
    if (caller is None) == (before is None):
        fail("give exactly one of --caller +E164 or --before DATE")
    when = None
    if caller is not None:
        try:
            caller = validate_e164(caller, "--caller")
        except DialStringError as exc:
            fail(str(exc))
    if before is not None:
        try:
            when = datetime.fromisoformat(before)
        except ValueError:
            fail(f"--before {before!r} is not an ISO date or time; e.g. 2026-11-01 or 2026-11-01T08:00:00+01:00")
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    with open_store(config_path) as store:
        report = purge(store, caller=caller, before=when, dry_run=dry_run)
    counts = {"dead_letters": report.dead_letters, "waiting_records": report.waiting_records,
              "live_calls": report.live_calls, "spool_files": report.spool_files}
    if as_json:
        click.echo(json.dumps({**counts, "dry_run": dry_run, "uuids": sorted(set(report.uuids))}))
        return
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb}: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))
