"""What a flood of events does to the controller's memory: RSS before, during and after ~400 MB of events.

This process runs the Listener with calls that read none of their events (a call busy in a workflow or a bridge:
the worst case for its inbox); a child process plays FreeSWITCH and floods: CONNECTIONS sessions at a time, each
answering `connect` and then writing 2.7 kB CHANNEL_EXECUTE events (the median size in ../shared/esl-captures/)
until the controller ends it, reconnecting until FLOOD_MB have been written. Every call's unread events are
bounded (controller/esl/inbox.py), so the RSS peaks at a few bounded inboxes and returns near its baseline once
the flooded calls have ended. The baseline is the RSS after one ordinary call, before the flood. Run:
    .venv/bin/python bench/flood.py
Last line: `RESULT rss_baseline_mb=... rss_peak_mb=... rss_after_mb=... ratio=...` (ratio: after / baseline).
"""
from controller.process import cooperative

cooperative()  # as `switchboard serve` does

import gc  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from urllib.parse import quote  # noqa: E402

import gevent  # noqa: E402

from controller.esl.frames import EslError  # noqa: E402
from controller.esl.listener import Listener  # noqa: E402

FLOOD_MB = 400
CONNECTIONS = 4
UUID = "0a160000-0000-4000-8000-00000000f100"
CONNECT_REPLY = (f"Event-Name: CHANNEL_DATA\nCore-UUID: core-1\nUnique-ID: {UUID}\nContent-Type: command/reply\n"
                 "Reply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n").encode()


_STATM = os.open("/proc/self/statm", os.O_RDONLY)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident memory now (statm's second field), read without allocating anything that outlives the call."""
    return int(os.pread(_STATM, 128, 0).split()[1]) * _PAGE / 2**20


def event_frame() -> bytes:
    """One CHANNEL_EXECUTE as FreeSWITCH writes it, with enough channel variables to weigh about 2.7 kB."""
    headers = [("Event-Name", "CHANNEL_EXECUTE"), ("Core-UUID", "core-1"), ("Unique-ID", UUID),
               ("Application", "playback"), ("Application-Data", "ivr/ivr-welcome.wav")]
    headers += [(f"variable_sb_bench_{i}", f"value {i} of a channel variable") for i in range(60)]
    body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in headers).encode() + b"\n"
    return f"Content-Length: {len(body)}\nContent-Type: text/event-plain\n\n".encode() + body


# ------------------------------------------------------------------ the child: FreeSWITCH flooding
def flood(port: int, total_mb: int) -> None:
    sys.stdin.readline()  # started before the baseline is taken (its pipes cost the controller's process memory)
    chunk = event_frame() * 100
    sent = 0
    goal = total_mb * 2**20

    def one_session() -> None:
        nonlocal sent
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.recv(64)  # `connect`
            sock.sendall(CONNECT_REPLY)
            try:
                while sent < goal:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:  # the controller ended this session: the next one starts
                pass

    def worker() -> None:
        while sent < goal:
            one_session()

    gevent.joinall([gevent.spawn(worker) for _ in range(CONNECTIONS)])
    print(f"sent_mb={sent / 2**20:.0f}", flush=True)


# ------------------------------------------------------------------ this process: the controller
def busy_call(session) -> None:
    """A call that reads none of its events until its connection ends."""
    try:
        session.connect(timeout=5)
    except EslError:
        return
    session.closed.wait(120)


def settle(listener: Listener) -> None:
    for _ in range(500):
        if listener.connection_count == 0:
            break
        gevent.sleep(0.01)
    gc.collect()
    gevent.sleep(0.5)


def main() -> None:
    listener = Listener(busy_call, host="127.0.0.1", port=0)
    port = listener.bind()
    gevent.spawn(listener.listen)
    warm = subprocess.Popen([sys.executable, __file__, "--flood", str(port), "1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    warm.communicate("go\n")  # a first flooded call: imports and allocator warmed
    child = subprocess.Popen([sys.executable, __file__, "--flood", str(port), str(FLOOD_MB)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    settle(listener)
    baseline = rss_mb()
    print(f"before: rss={baseline:.0f} MB", flush=True)
    child.stdin.write("go\n")
    child.stdin.flush()
    peak = baseline
    started = time.monotonic()
    last_print = started
    while child.poll() is None:
        gevent.sleep(0.05)
        peak = max(peak, rss_mb())
        if time.monotonic() - last_print >= 1.0:
            last_print = time.monotonic()
            print(f"during: t={last_print - started:.0f}s rss={rss_mb():.0f} MB peak={peak:.0f} MB "
                  f"calls={listener.connection_count} accepted={listener.accepted}", flush=True)
    sent = child.stdout.read().strip()
    settle(listener)
    after = rss_mb()
    print(f"after: rss={after:.0f} MB ({sent}, {listener.accepted - 1} calls flooded, "
          f"{time.monotonic() - started:.1f}s)", flush=True)
    listener.stop()
    print(f"RESULT rss_baseline_mb={baseline:.0f} rss_peak_mb={peak:.0f} rss_after_mb={after:.0f} "
          f"ratio={after / baseline:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        flood(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
