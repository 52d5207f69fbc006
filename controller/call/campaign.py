"""A batch of calls for one agent (`switchboard call --from-csv`): the CSV checked whole, the calls placed with at
most N in flight, and the summary.

The CSV has a header row: `number` is required, `country` optional (ISO code for national numbers, else
`--country`), every other column becomes a call variable of that row's call (checked like `--var`). A file with
any bad line places nothing: every problem is reported as `file:line: what; fix` first. Calls go through a
gevent pool of `concurrency`; when the agent's outbound cap is reached a call waits for a free slot.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import gevent.pool

from controller.call.dialer import Dialer, OverCapacity, PlaceError, Placed, variable_problem
from controller.esl.values import DialStringError, normalise_number

MAX_ROWS = 10_000
OUTCOMES = ("answered", "no_answer", "busy", "failed")


class CampaignError(Exception):
    """The file cannot be used; `problems` holds one `file:line: ...` per bad line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Target:
    line: int
    number: str
    country: Optional[str]
    variables: dict[str, str] = field(default_factory=dict)


def read_campaign(path: Path, country: Optional[str]) -> list[Target]:
    """Every row of the CSV, checked; raises CampaignError listing all the bad lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError([f"{path}: cannot read it ({exc}); give a UTF-8 CSV file"]) from None
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header or "number" not in [h.strip() for h in header]:
        raise CampaignError([f"{path}:1: the header row must name a `number` column (e.g. number,country,"
                             "customer_name)"])
    names = [h.strip() for h in header]
    misnamed = {name: why for name in names if name not in ("number", "country")
                and (why := variable_problem(name, ""))}
    problems = [f"{path}:1: column {name!r}: {why}" for name, why in misnamed.items()]
    if len(set(names)) != len(names):
        problems.append(f"{path}:1: a column is named twice; name each column once")
    targets: list[Target] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            problems.append(f"{path}:{line}: {len(row)} fields, the header has {len(names)}; quote values with "
                            "commas (\"a, b\")")
            continue
        cells = dict(zip(names, (cell.strip() for cell in row)))
        row_country = cells.pop("country", "") or country
        number = cells.pop("number")
        try:
            normalise_number(row_country, number)
        except DialStringError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        bad = [why for name, value in cells.items() if name not in misnamed and (why := variable_problem(name, value))]
        problems += [f"{path}:{line}: {why}" for why in bad]
        if not bad:
            targets.append(Target(line, number, row_country, cells))
    if not targets and not problems:
        problems.append(f"{path}: no calls in it; add one row per number under the header")
    if len(targets) > MAX_ROWS:
        problems.append(f"{path}: {len(targets)} calls; at most {MAX_ROWS} per file, split it")
    if problems:
        raise CampaignError(problems)
    return targets


@dataclass(frozen=True)
class Result:
    """One row's call: its outcome, or why it could not be placed (`placed` None)."""

    target: Target
    placed: Optional[Placed] = None
    error: str = ""

    @property
    def outcome(self) -> str:
        return self.placed.outcome if self.placed else "failed"

    @property
    def system_failure(self) -> bool:
        return self.placed is None or self.placed.system_failure

    def as_dict(self) -> dict[str, Any]:
        placed = self.placed
        return {"line": self.target.line, "number": placed.number if placed else self.target.number,
                "outcome": self.outcome, "cause": placed.cause if placed else "",
                "uuid": placed.uuid if placed else None, "error": self.error}


def run_campaign(dialer: Dialer, agent_id: str, targets: list[Target], concurrency: int, *,
                 via: Optional[str] = None, caller_id: Optional[str] = None) -> list[Result]:
    """Place every target's call, at most `concurrency` at once; the results in the file's order."""

    def one(target: Target) -> Result:
        try:
            return Result(target, dialer.place(agent_id, target.number, target.variables, country=target.country,
                                               via=via, caller_id=caller_id, wait_for_slot=True))
        except (PlaceError, OverCapacity, DialStringError) as exc:
            return Result(target, error=str(exc))

    return list(gevent.pool.Pool(concurrency).imap(one, targets))


def summary(results: list[Result]) -> dict[str, Any]:
    """Totals per outcome (answered, no_answer, busy, failed) and the calls a system failure left unplaced."""
    counts = Counter(r.outcome for r in results)
    return {"calls": len(results), **{name: counts.get(name, 0) for name in OUTCOMES},
            "system_failures": sum(r.system_failure for r in results)}
