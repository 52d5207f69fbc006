"""The `switchboard` command: serve, reload, call (calls.py), worker, check, simulate, demo, jobs ..., numbers ...,
knowledge ..., calls purge (purge.py).

Bad input (a config that does not validate, a missing file, a bad argument) prints what is wrong and how to
fix it, and exits 2; nothing here lets a traceback reach the operator.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from controller.cli.common import config_option, fail, load, open_store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=lambda: os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"), show_default="INFO",
              help="DEBUG, INFO, WARNING or ERROR")
@click.option("--log-json/--log-text", default=None, help="JSON log lines (default: when stderr is not a terminal)")
@click.version_option(package_name="switchboard", message="%(prog)s %(version)s")
def main(log_level: str, log_json: bool | None) -> None:
    """Switchboard: the on-premise action engine for AI phone agents on FreeSWITCH."""
    from controller.log import setup_logging
    setup_logging(log_level, log_json)


@main.command()
@click.argument("config_arg", required=False, metavar="[CONFIG]")
@config_option
@click.option("--dialplan", "dialplan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also check that this FreeSWITCH dialplan file routes every agent's number and hand-off "
                   "extension to server.host:port with `async full`")
def check(config_arg: str | None, config_path: str | None, dialplan_path: Path | None) -> None:
    """Validate a configuration: every error with file, field, problem and what is allowed (exit 2)."""
    from controller.config.checks import check_summary, config_warnings
    config = load(config_arg or config_path)
    for warning in config_warnings(config):
        click.echo(f"warning: {warning}", err=True)
    if dialplan_path is not None:
        from controller.config.dialplan import dialplan_problems
        problems = dialplan_problems(config, dialplan_path)
        if problems:
            fail("\n".join(problems + [f"{len(problems)} problem(s): the dialplan and {config.display_path} "
                                         "disagree"]))
    click.echo(check_summary(config))


@main.command()
@config_option
@click.option("--port", type=int, default=None, help="override server.port (0: any free port)")
def serve(config_path: str | None, port: int | None) -> None:
    """Accept calls from FreeSWITCH's `socket` app until SIGTERM, then drain and exit 0."""
    config = load(config_path)  # bad input exits 2 before the process is monkey-patched
    import logging
    from controller.config.checks import config_warnings
    for warning in config_warnings(config):  # the same warnings `check` prints, in the log of the process
        logging.getLogger("switchboard.config").warning("%s", warning)
    from controller.process import cooperative, fit_descriptors, pace_full_collections
    problem = fit_descriptors(config.server.max_connections)
    if problem:
        fail(problem)
    cooperative()
    from controller.runtime import Runtime
    runtime = Runtime(config, port=port)
    try:
        runtime.start()
    except OSError as exc:
        fail(str(exc))
    pace_full_collections()
    sys.exit(runtime.serve_forever())


@main.command()
@config_option
@click.option("--timeout", type=click.FloatRange(1, 600), default=60, show_default=True,
              help="seconds to wait for `serve` to say whether it took the configuration")
def reload(config_path: str | None, timeout: float) -> None:
    """Check CONFIG, then have the running `serve` use it for new calls (SIGHUP); live calls keep theirs.

    Exits 0 once `serve` has taken it, 1 when `serve` refused it (the reason is printed), 2 when the file does
    not validate (nothing is sent) or no `serve` runs on its state_dir.
    """
    import json
    import signal
    import time
    config = load(config_path)
    state_dir = config.server.state_dir
    try:
        pid = int((state_dir / "serve.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        fail(f"no running `switchboard serve` for {state_dir} (no live pid in {state_dir / 'serve.pid'}); "
             "start it, or reload the one whose server.state_dir this is")
    status = state_dir / "reload.json"
    before = status.stat().st_mtime_ns if status.exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status.exists() and status.stat().st_mtime_ns != before:
            try:
                outcome = json.loads(status.read_text(encoding="utf-8"))
            except ValueError:  # written by os.replace, so never partial; a foreign file: say so
                fail(f"{status} is not the reload status `serve` writes; remove it and retry")
            click.echo(outcome["message"], err=not outcome["ok"])
            sys.exit(0 if outcome["ok"] else 1)
        time.sleep(0.1)
    fail(f"`serve` (pid {pid}) did not report within {timeout:.0f} s; its log says why", code=1)


@main.command()
@config_option
@click.option("--drain", "drain_only", is_flag=True, help="process what the queue holds now (due retries included), "
              "then exit: 0 all delivered, 1 something went to the dead letters or waits for a later retry")
def worker(config_path: str | None, drain_only: bool) -> None:
    """Run the after-call worker alone: classify, email, webhooks, with retries and a dead-letter stream.

    SIGTERM stops it (the record in hand is finished), SIGHUP reloads CONFIG for the next records."""
    config = load(config_path)
    from controller.process import cooperative
    cooperative()
    from controller.cli.worker import drain_queue, run_worker
    sys.exit(drain_queue(config) if drain_only else run_worker(config))


@main.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@config_option
@click.option("--controller", "controller_addr", metavar="HOST:PORT",
              help="a running controller (default: start one in this process)")
@click.option("--time-scale", type=float, default=None, help="shrink every wait (default: server.time_scale)")
@click.option("--json", "as_json", is_flag=True, help="print the call records as JSON")
def simulate(scenarios: tuple[str, ...], config_path: str | None, controller_addr: str | None,
             time_scale: float | None, as_json: bool) -> None:
    """Run simulated FreeSWITCH calls (scenario YAML files) against the controller and print each timeline."""
    config = load(config_path)
    from controller.cli.simulate import load_all, run_simulation
    loaded = load_all([Path(s) for s in scenarios])
    from controller.process import cooperative
    cooperative()
    code = run_simulation(config, loaded, controller_addr, time_scale, as_json)
    sys.exit(code)


@main.command()
@config_option
@click.option("--time-scale", type=float, default=0.25, show_default=True)
def demo(config_path: str | None, time_scale: float) -> None:
    """The example agent end to end: local CRM and SMTP, every example scenario, timelines and emails."""
    config = load(config_path or "examples/agent.yaml")
    from controller.process import cooperative
    cooperative()
    from controller.cli.demo import run_demo
    sys.exit(run_demo(config, time_scale))


@main.group()
def jobs() -> None:
    """The after-call queue: what waits, what failed and why; retry or drop dead letters."""


@jobs.command("list")
@config_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="dead letters shown")
def jobs_list(config_path: str | None, limit: int) -> None:
    """Queued and pending records per worker, records still on disk, and the dead letters with their reason."""
    from controller.aftercall.queue import dead_letters, queue_state
    with open_store(config_path) as store:
        state = queue_state(store)
        letters = dead_letters(store, limit)
    held = ", ".join(f"{name} {count}" for name, count in sorted(state.pending.items())) or "none"
    oldest = f", the oldest {state.oldest_s / 60:.1f} min old" if state.oldest_s is not None else ""
    click.echo(f"queued: {state.queued}{oldest} (read by a worker, not yet done: {held}); on disk, not yet "
               f"confirmed in redis: {state.spooled}; dead letters: {state.dead}")
    for letter in letters:
        click.echo(f"{letter.id}  {letter.at}  call {letter.uuid or '-'}  attempts {letter.attempts}  {letter.reason}")
    if state.dead > len(letters):
        click.echo(f"... {state.dead - len(letters)} more (--limit)")


@jobs.command("show")
@click.argument("entry_id", metavar="ID")
@config_option
def jobs_show(entry_id: str, config_path: str | None) -> None:
    """One dead letter: why each action failed, and the whole call record (JSON)."""
    import json

    from controller.aftercall.queue import JobsError, dead_letter
    with open_store(config_path) as store:
        try:
            letter = dead_letter(store, entry_id)
        except JobsError as exc:
            fail(str(exc))
    click.echo(f"dead letter {letter.id} at {letter.at}: call {letter.uuid or '-'}, {letter.attempts} attempt(s), "
               f"classification {letter.classification or '-'}")
    for failure in letter.failures:
        kind = "permanent" if failure.get("permanent") else "kept failing"
        click.echo(f"  {failure.get('action')}: {failure.get('error')} ({kind})")
    click.echo(json.dumps(letter.record, ensure_ascii=False, indent=2) if letter.record is not None else letter.raw)


@jobs.command("retry")
@click.argument("entry_ids", metavar="ID...", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="every dead letter")
@config_option
def jobs_retry(entry_ids: tuple[str, ...], retry_all: bool, config_path: str | None) -> None:
    """Put dead letters back in the queue once their cause is fixed; actions that had succeeded are not rerun."""
    from controller.aftercall.queue import JobsError, dead_letters, retry
    if bool(entry_ids) == retry_all:
        fail("give the dead letters' IDs (`switchboard jobs list`), or --all")
    with open_store(config_path) as store:
        ids = [letter.id for letter in dead_letters(store, 10_000)] if retry_all else list(entry_ids)
        try:
            moved = retry(store, ids)
        except JobsError as exc:
            fail(str(exc))
    for old, new in moved:
        click.echo(f"{old} -> queued as {new}")
    click.echo(f"{len(moved)} record(s) back in the queue; a running worker takes them now")


@jobs.command("drop")
@click.argument("entry_ids", metavar="ID...", nargs=-1, required=True)
@config_option
def jobs_drop(entry_ids: tuple[str, ...], config_path: str | None) -> None:
    """Delete dead letters for good (`show` them first: their records go with them)."""
    from controller.aftercall.queue import JobsError, drop
    with open_store(config_path) as store:
        try:
            dropped = drop(store, list(entry_ids))
        except JobsError as exc:
            fail(str(exc))
    click.echo(f"{dropped} dead letter(s) deleted")


def _register_groups() -> None:
    """The command groups that live in their own modules."""
    from controller.cli.calls import call
    from controller.cli.knowledge import knowledge
    from controller.cli.numbers import numbers
    from controller.cli.purge import calls
    main.add_command(call)
    main.add_command(knowledge)
    main.add_command(numbers)
    main.add_command(calls)


_register_groups()


if __name__ == "__main__":
    main()
