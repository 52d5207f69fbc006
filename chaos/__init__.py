"""`make chaos`: faults injected for real against `switchboard serve` and `switchboard worker` subprocesses,
with the simulator over TCP and real Redis, SMTP and HTTP peers on 127.0.0.1 (see __main__.py)."""
