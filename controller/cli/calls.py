"""`switchboard call`: one call (NUMBER) or a batch (`--from-csv FILE`) placed by an agent.

One call exits 0 once the agent's session runs on the answered call; 1 when it was not answered (busy, no
answer, rejected, failed: the cause is printed) or the agent's outbound cap is reached; 2 on bad input or when
FreeSWITCH's event socket or Redis cannot be used. A batch exits 2 on bad input (nothing is placed), 1 when a
call could not be placed for a system reason (event socket, Redis, gateway, the agent's session), else 0
whatever the callees did.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import click

from controller.cli.common import config_option, fail, load


def _variables(pairs: tuple[str, ...]) -> dict[str, str]:
    from controller.call.dialer import variable_problem
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--var {pair!r}: write it key=value (e.g. --var customer_name=Dupont)")
        problem = variable_problem(name.strip(), value)
        if problem:
            fail(f"--var {pair!r}: {problem}")
        variables[name.strip()] = value
    return variables


@click.command()
@click.argument("number", required=False)
@click.option("--agent", "agent_id", required=True, help="the agent that talks to whoever answers")
@click.option("--country", default=None, help="ISO country code for national numbers (e.g. FR for 01 23 45 67 89)")
@click.option("--via", "connection", default=None, help="the SIP connection to dial through [default_sip_connection]")
@click.option("--caller-id", default=None, help="the E.164 number shown to the callee [the agent's number]")
@click.option("--var", "pairs", multiple=True, metavar="KEY=VALUE",
              help="a call variable for templates and workflows (repeatable); never sent to FreeSWITCH")
@click.option("--from-csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="a batch: one call per row (columns: number, optional country, the rest call variables)")
@click.option("--concurrency", type=click.IntRange(1, 100), default=2, show_default=True,
              help="batch: calls in flight at once (the agent's outbound.max_concurrent also applies)")
@click.option("--json", "as_json", is_flag=True, help="print the outcome (a batch: the summary) as JSON on stdout")
@config_option
def call(number: Optional[str], agent_id: str, country: Optional[str], connection: Optional[str],
         caller_id: Optional[str], pairs: tuple[str, ...], csv_path: Optional[str], concurrency: int, as_json: bool,
         config_path: Optional[str]) -> None:
    """Have an agent call NUMBER (or every row of --from-csv): FreeSWITCH dials it and, once answered, hands the
    call to `serve` (which must run). Every call gets a record, answered or not.

    \b
    One call exits 0 once answered and with the agent; 1 not answered, busy, failed (the cause is printed) or
    over the agent's outbound cap; 2 bad input, or the event socket or Redis cannot be used.
    A batch exits 0 once it ran (whatever the callees did); 1 when a call failed for a system reason; 2 on bad
    input (a bad CSV line: nothing is placed).
    """
    if (number is None) == (csv_path is None):
        fail("give a NUMBER to call, or --from-csv FILE for a batch (not both)")
    if csv_path and pairs:
        fail("--var is for one call; in a batch, give each call's variables as CSV columns")
    from controller.process import cooperative
    cooperative()  # first: a batch places its calls from greenlets, and redis and ssl must be patched
    config = load(config_path)
    variables = _variables(pairs)
    from controller.call.campaign import CampaignError, read_campaign
    from controller.call.originate import originate_for
    from controller.esl.values import DialStringError
    try:
        targets = read_campaign(Path(csv_path), country) if csv_path else []
        first = targets[0] if targets else None
        originate_for(config, agent_id, first.number if first else number, "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                      country=first.country if first else country, via=connection, caller_id=caller_id)
    except (CampaignError, DialStringError) as exc:
        fail(f"{exc}\nnothing was placed" if csv_path else str(exc))
    password = os.environ.get(config.freeswitch.password_env)
    if not password:
        fail(f"set {config.freeswitch.password_env} to the password of FreeSWITCH's event_socket.conf.xml")
    with _dialer(config, password) as dialer:
        if csv_path:
            sys.exit(_batch(dialer, agent_id, targets, concurrency, connection, caller_id, as_json))
        sys.exit(_one(dialer, agent_id, number, variables, country, connection, caller_id, as_json))


class _dialer:
    """The Dialer over the configured Redis (the embedded one is started if nobody runs it), or exit 2."""

    def __init__(self, config: Any, password: str) -> None:
        self.config, self.password = config, password

    def __enter__(self) -> Any:
        import redis

        from controller.call.dialer import Dialer
        from controller.clock import Clock
        from controller.state.embedded_redis import EmbeddedRedisError
        from controller.state.store import Store
        clock = Clock(self.config.server.time_scale)
        try:
            self.store = Store(self.config.redis, self.config.server.state_dir, clock).start(maintain=False)
        except (EmbeddedRedisError, redis.RedisError, OSError, ValueError) as exc:
            fail(f"cannot reach redis: {exc}")
        return Dialer(self.config, self.store, clock, self.password)

    def __exit__(self, *_exc: Any) -> None:
        self.store.close()


def _one(dialer: Any, agent_id: str, number: str, variables: dict[str, str], country: Optional[str],
         connection: Optional[str], caller_id: Optional[str], as_json: bool) -> int:
    from controller.call.dialer import OverCapacity, PlaceError
    try:
        placed = dialer.place(agent_id, number, variables, country=country, via=connection, caller_id=caller_id)
    except OverCapacity as exc:
        fail(str(exc), code=1)
    except PlaceError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"number": placed.number, "outcome": placed.outcome, "cause": placed.cause,
                               "uuid": placed.uuid}))
    if placed.answered:
        if not as_json:
            click.echo(f"answered: call {placed.uuid} is with agent {agent_id}")
        return 0
    if placed.how == "not_answered":
        click.echo(f"not answered: {placed.cause} (call {placed.uuid}; its record is written)", err=True)
    else:
        what = (f"FreeSWITCH hung it up ({placed.cause})" if placed.how == "dropped"
                else "no sign of the agent's session")
        click.echo(f"{placed.how}: call {placed.uuid} was answered but agent {agent_id}'s session did not start: "
                   f"{what}; look for this uuid in serve's log (is serve running, on freeswitch's socket address?)",
                   err=True)
    return 1


def _batch(dialer: Any, agent_id: str, targets: list[Any], concurrency: int, connection: Optional[str],
           caller_id: Optional[str], as_json: bool) -> int:
    from controller.call.campaign import run_campaign, summary
    results = run_campaign(dialer, agent_id, targets, concurrency, via=connection, caller_id=caller_id)
    totals = summary(results)
    if as_json:
        click.echo(json.dumps({"calls": [r.as_dict() for r in results], "totals": totals}, indent=2))
    else:
        for result in results:
            row = result.as_dict()
            click.echo(f"{row['number']}  {row['outcome']}  {row['cause'] or '-'}  {row['uuid'] or '-'}"
                       + (f"  {row['error']}" if row["error"] else ""))
        click.echo(", ".join(f"{name} {totals[name]}" for name in ("answered", "no_answer", "busy", "failed"))
                   + f" ({totals['calls']} calls)")
    return 1 if totals["system_failures"] else 0
