"""The ESL floor survives what a long-running process meets: the open-file limit, floods, odd frames.

Each test drives a real Listener over real TCP on 127.0.0.1 (a scripted peer, or a child process with its own
descriptor limit) and shows the process still takes calls afterwards.
"""
from __future__ import annotations

import gc
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import gevent

from controller.esl.frames import EslError
from tests.support.esl_peer import connected, serve  # noqa: F401 (serve is a fixture)

ROOT = Path(__file__).resolve().parent.parent

# A Listener in a child process whose soft RLIMIT_NOFILE leaves it FREE_FDS descriptors: each call holds one
# until the peer closes it. It prints its port and the descriptors it has left, serves until SIGTERM, then
# prints its counters.
LIMITED_LISTENER = """
import os, resource, signal, sys
import gevent
import controller.runtime  # what `switchboard serve` imports: at the limit, a first import cannot open its file
from controller.esl.frames import EslError
from controller.esl.listener import Listener
from controller.log import setup_logging

setup_logging("INFO", json_lines=False)

def handler(session):
    try:
        session.connect(timeout=30)
    except EslError:
        return
    session.closed.wait(30)

listener = Listener(handler, host="127.0.0.1", port=0)
port = listener.bind()
free = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + free,
                                            resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
done = gevent.event.Event()
gevent.signal_handler(signal.SIGTERM, done.set)
gevent.spawn(listener.listen)
print(port, flush=True)
done.wait(60)
print(f"accept_errors={listener.accept_errors} accepted={listener.accepted}", flush=True)
"""
FREE_FDS = 12


def _greeted(peers: list[socket.socket], quiet_s: float, bound_s: float = 10.0) -> set[socket.socket]:
    """The peers the controller sent `connect` to, once no new one got it for `quiet_s` (at most `bound_s`)."""
    got: set[socket.socket] = set()
    deadline = time.monotonic() + bound_s
    last_new = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_new < quiet_s:
        readable, _, _ = select.select([p for p in peers if p not in got], [], [], 0.05)
        for peer in readable:
            assert peer.recv(64).startswith(b"connect"), "the controller sent something else than `connect`"
            got.add(peer)
            last_new = time.monotonic()
    return got


def test_a_listener_at_its_open_file_limit_logs_accept_errors_and_takes_calls_again_once_descriptors_are_free():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", LIMITED_LISTENER, str(FREE_FDS)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, text=True)
    peers: list[socket.socket] = []
    try:
        port = int(child.stdout.readline())
        peers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(FREE_FDS + 6)]
        served = _greeted(peers, quiet_s=1.0)
        waiting = [p for p in peers if p not in served]
        assert served and waiting, f"{len(served)} served: the limit was not reached"
        for peer in list(served)[:5]:  # five calls end: their descriptors are free again
            peer.close()
        assert _greeted(waiting, quiet_s=3.0), "no call was accepted after descriptors were freed"
        assert child.poll() is None
    finally:
        for peer in peers:
            peer.close()
        child.terminate()
        out, err = child.communicate(timeout=10)
    counters = dict(part.split("=") for part in out.split()[-2:])
    assert int(counters["accept_errors"]) > 0
    assert "Too many open files" in err
    assert err.count("Too many open files") < 10  # rate-limited: not one line per failed accept()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_closed_calls_give_every_descriptor_back_without_waiting_for_the_garbage_collector(serve):
    def handler(session):
        try:
            session.connect(timeout=3)
        except EslError:
            return
        session.closed.wait(3)

    listener = serve(handler)
    gc.collect()
    gc.disable()  # the sockets must close when the call ends, not when a collection frees the session
    try:
        before = _open_fds()
        for _ in range(40):
            connected(listener.port).close()
        for _ in range(200):
            if listener.connection_count == 0:
                break
            gevent.sleep(0.01)
        after = _open_fds()
    finally:
        gc.enable()
    assert listener.accepted == 40 and listener.connection_count == 0
    assert after <= before + 2, f"{after - before} descriptors still open after 40 closed calls"
