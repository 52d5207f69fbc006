"""Call set-up speed: how soon a FreeSWITCH connection is served, against greenswitch's own server.

1. accept: time from the TCP connect of a fake FreeSWITCH to the `connect` command it receives, over N
   sequential connections, for Switchboard's Listener and for greenswitch 0.0.19's OutboundESLServer (which
   polls a non-blocking accept every 100 ms) measured in the same run;
2. setup: time from the TCP connect to the `answer` execute through the real controller (connect, myevents,
   divert_events, linger, module checks once, Redis state, moment changes), with the simulator as FreeSWITCH.

Last line: RESULT accept_p50_ms=... accept_p99_ms=... greenswitch_p50_ms=... ratio=... setup_p50_ms=... setup_p99_ms=...
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import gevent  # noqa: E402
import gevent.socket  # noqa: E402
from greenswitch import esl as gs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.esl.listener import Listener  # noqa: E402

CONNECT_REPLY = (b"Event-Name: CHANNEL_DATA\nUnique-ID: bench\nAnswer-State: ringing\nContent-Type: command/reply\n"
                 b"Reply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_to_connect(port: int) -> float:
    """Connect as FreeSWITCH does and time until the controller's first command arrives."""
    started = time.perf_counter()
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    data = b""
    while b"\n\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    elapsed = time.perf_counter() - started
    sock.sendall(CONNECT_REPLY)
    sock.close()
    return elapsed * 1000


def bench_accept(n: int) -> tuple[list[float], list[float]]:
    listener = Listener(lambda session: session.connect(timeout=2), port=0)
    port = listener.bind()
    server = gevent.spawn(listener.listen)
    listener.ready.wait(5)
    ours = [time_to_connect(port) for _ in range(n)]
    listener.stop()
    server.kill()

    class App:
        def __init__(self, session):
            self.session = session

        def run(self):
            gevent.sleep(0)

    with gevent.socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gs_port = probe.getsockname()[1]
    stock = gs.OutboundESLServer(bind_address="127.0.0.1", bind_port=gs_port, application=App, max_connections=1000)
    runner = gevent.spawn(stock.listen)
    gevent.sleep(0.3)
    theirs = [time_to_connect(gs_port) for _ in range(max(20, n // 5))]
    stock.stop()
    runner.kill()
    return ours, theirs


def bench_setup(n: int) -> list[float]:
    from fssim import Scenario, Simulator
    from tests.support.controller import SessionRedis, running, write_config
    redis = SessionRedis()
    directory = Path(tempfile.mkdtemp(prefix="sb-bench-", dir="/tmp"))
    times: list[float] = []
    try:
        with running(write_config(directory, time_scale=0.02), redis) as runtime:
            sim = Simulator(("127.0.0.1", runtime.listener.port), time_scale=0.02)
            scenario = Scenario.from_dict({"name": "setup", "agent": "support", "script": [{"hangup": True}]})
            for _ in range(n):
                rec = sim.run(scenario)
                first = rec.commands[0].t
                answer = next(c.t for c in rec.commands if c.app == "answer")
                times.append((answer - first) * 0.02 * 1000)  # call seconds back to real milliseconds
    finally:
        redis.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    ours, theirs = bench_accept(args.calls)
    setup = bench_setup(max(20, args.calls // 4))
    a50, a99 = statistics.median(ours), percentile(ours, 0.99)
    g50 = statistics.median(theirs)
    print(f"accept (TCP connect -> `connect` received), {len(ours)} connections:")
    print(f"  switchboard Listener   p50 {a50:7.2f} ms   p99 {a99:7.2f} ms")
    print(f"  greenswitch stock      p50 {g50:7.2f} ms   p99 {percentile(theirs, 0.99):7.2f} ms  ({len(theirs)} conns)")
    s50, s99 = statistics.median(setup), percentile(setup, 0.99)
    print(f"call set-up (`connect` -> `answer` on the wire, real controller + Redis), {len(setup)} calls:")
    print(f"  p50 {s50:7.2f} ms   p99 {s99:7.2f} ms")
    print(f"RESULT accept_p50_ms={a50:.2f} accept_p99_ms={a99:.2f} greenswitch_p50_ms={g50:.2f} "
          f"ratio={a50 / g50:.3f} setup_p50_ms={s50:.2f} setup_p99_ms={s99:.2f}")


if __name__ == "__main__":
    main()
