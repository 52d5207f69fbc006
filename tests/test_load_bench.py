"""bench/load.py end to end at a small size: `switchboard serve`, the greenswitch baseline and the simulator
processes all start, every call runs its whole script, everything is stopped, and the RESULT line has its shape."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"RESULT calls=(\d+) errors=(\d+) p99_ms=([\d.]+) rss_kb_per_call=(-?[\d.]+) cpu_ratio=([\d.]+)"
                    r"(?: [a-z0-9_]+=-?[\d.]+)*$")


@pytest.mark.timeout(240)
def test_twenty_short_calls_complete_against_serve_and_the_baseline_with_no_error():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--calls", "20", "--call-seconds", "5"],
                          capture_output=True, text=True, timeout=220, cwd=ROOT, env={"PYTHONPATH": str(ROOT),
                                                                                      "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    match = RESULT.fullmatch(last)
    assert match, last
    assert (int(match[1]), int(match[2])) == (20, 0), done.stdout
    assert "baseline_errors=0" in last
    directory = re.search(r"logs in (/tmp/sb-load-\S+)", done.stdout)[1]
    assert not Path(directory).exists()  # removed after a run with no error
    left = subprocess.run(["pgrep", "-f", directory], capture_output=True, text=True).stdout.split()
    assert left == []  # serve, its redis-server, the baseline and the simulators are all gone
