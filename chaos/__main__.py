"""`make chaos`: each fault injected for real against `switchboard serve` and `switchboard worker`, a table
of what it did, and `RESULT lost=.. duplicates=.. crashes=.. starved_calls=..`; exit 1 unless all are 0.

    .venv/bin/python -m chaos [name ...]     (names: a part of a fault function's name, e.g. redis)
"""
from __future__ import annotations

import logging
import sys
import time
import traceback

from chaos import faults_hosts, faults_peers, faults_process, faults_wire
from chaos.calls import Row

FAULTS = (faults_process.FAULTS[:2] + faults_hosts.FAULTS + faults_peers.FAULTS + faults_wire.FAULTS
          + faults_process.FAULTS[2:])
COLUMNS = ("fault", "calls", "lost", "duplicates", "repeats", "crashes", "starved", "recover_s", "note")


def run(fault) -> Row:
    """The fault's row; a harness that could not finish counts as a crash of that fault."""
    try:
        return fault()
    except Exception:
        traceback.print_exc()
        return Row(fault.__name__, crashes=1)


def main(names: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    chosen = [f for f in FAULTS if not names or any(n in f.__name__ for n in names)]
    rows = []
    for fault in chosen:
        started = time.monotonic()
        rows.append(run(fault))
        print(f"  {fault.__name__}: {time.monotonic() - started:.1f} s", flush=True)
    width = max(len(r.fault) for r in rows)
    print(f"{'fault':<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS[1:-1]) + "  note")
    for r in rows:
        print(f"{r.fault:<{width}}  " + "  ".join(f"{getattr(r, c):>10}" for c in COLUMNS[1:-2])
              + f"  {r.recover_s:>10.1f}  {r.note}")
    total = {k: sum(getattr(r, k) for r in rows) for k in ("lost", "duplicates", "crashes", "starved")}
    print(f"RESULT lost={total['lost']} duplicates={total['duplicates']} crashes={total['crashes']} "
          f"starved_calls={total['starved']}")
    return 0 if not any(total.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
