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
import gevent.event
import pytest

from controller.esl.frames import CallHangup, EslError, FrameReader, ProtocolError, parse_event_body
from controller.esl.inbox import MAX_PENDING_EVENTS
from controller.log import Throttle
from tests.support.controller import running, write_config
from tests.support.esl_peer import CONNECT_REPLY, UUID, Peer, connected, event, serve  # noqa: F401 (a fixture)

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


def _flood(peer: Peer, frames: int) -> None:
    """Write `frames` small CHANNEL_DATA events as fast as the socket takes them, until the controller closes it."""
    frame = event([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", UUID), ("variable_note", "x" * 200)])
    chunk = frame * 500
    try:
        for _ in range(frames // 500):
            peer.sock.sendall(chunk)
    except OSError:  # the controller ended the connection
        pass


def test_a_call_flooded_with_events_it_does_not_read_is_ended_and_the_other_calls_go_on(serve, caplog):
    causes: dict[str, str] = {}
    answered = gevent.event.AsyncResult()

    def handler(session):
        name = session.connect(timeout=3)["Caller-Caller-ID-Name"]
        if name == "Quiet":  # the other call: its command still gets its reply once the flood is over
            session.closed.wait(0.5)
            answered.set(session.command("myevents", timeout=3))
        session.closed.wait(10)  # a call busy elsewhere (a workflow, a bridge): it reads none of its events
        causes[name] = session.hangup_cause or ""

    listener = serve(handler)
    flooded = connected(listener.port)
    quiet = Peer(listener.port)
    quiet.read_command()
    quiet.send(CONNECT_REPLY.replace(b"ESL%20Test", b"Quiet"))
    flooder = gevent.spawn(_flood, flooded, MAX_PENDING_EVENTS * 2)
    flooded.sock.settimeout(10)
    assert flooded.file.read() == b"", "the flooded call's connection stayed open"
    flooder.join(timeout=10)
    assert quiet.read_command()[0] == ["myevents"]
    quiet.send(b"Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n")
    assert answered.get(timeout=3) == "+OK Events Enabled"
    assert causes.get("ESL Test") == "EVENT_FLOOD"
    assert any("this call has not read" in r.getMessage() and r.uuid == UUID for r in caplog.records
               if r.levelname == "ERROR")
    quiet.close()


def test_frames_before_the_connect_reply_end_the_connection(serve):
    failed = gevent.event.AsyncResult()

    def handler(session):
        try:
            session.connect(timeout=3)
        except EslError as exc:
            failed.set(exc)

    listener = serve(handler)
    peer = Peer(listener.port)
    peer.sock.sendall(event([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", UUID)]))  # instead of the reply
    peer.sock.settimeout(5)
    assert peer.file.read() in (b"connect\n\n", b"")  # `connect` if it left before the event came, then the end
    exc = failed.get(timeout=3)
    assert isinstance(exc, CallHangup) and exc.cause == "PROTOCOL_ERROR"
    peer.close()


def test_a_connect_reply_without_a_unique_id_is_refused_and_the_dialplan_takes_the_call(tmp_path, session_redis):
    """Two such calls would share the call state of uuid "" in Redis."""
    with running(write_config(tmp_path), session_redis) as runtime:
        peer = Peer(runtime.listener.port)
        assert peer.read_command()[0] == ["connect"]
        peer.send(CONNECT_REPLY.replace(f"Unique-ID: {UUID}\n".encode(), b""))
        assert peer.read_command()[0] == ["exit"]  # the socket app returns: the dialplan's next action runs
        peer.close()
        assert runtime.store.call_state("") == {}


@pytest.mark.parametrize("length", ["١٢", "５", "+5", "1_0", " 5"])
def test_a_content_length_of_anything_but_ascii_digits_is_a_protocol_error(length):
    a, b = socket.socketpair()
    a.sendall(f"Content-Type: api/response\nContent-Length: {length}\n\n0123456789ab".encode())
    a.close()
    with pytest.raises(ProtocolError):
        FrameReader(b.makefile("rb")).read()
    inner = f"Event-Name: CUSTOM\nContent-Length: {length}\n\n0123456789ab".encode()
    with pytest.raises(ProtocolError):
        parse_event_body("text/event-plain", inner)
    b.close()


def test_replies_nobody_waits_for_are_logged_once_then_counted_when_the_connection_ends(serve, caplog):
    done = gevent.event.Event()

    def handler(session):
        session.connect(timeout=3)
        session.closed.wait(5)
        done.set()

    listener = serve(handler)
    peer = connected(listener.port)
    peer.send(b"Content-Type: command/reply\nReply-Text: +OK stray\n\n" * 200)
    peer.close()
    assert done.wait(5)
    lines = [r.getMessage() for r in caplog.records if "no command waiting" in r.getMessage()]
    assert len(lines) == 2 and lines[0].startswith("1 ") and lines[1].startswith("199 "), lines


def test_a_throttled_line_reports_the_count_it_held_back_once_its_interval_has_passed():
    now = [0.0]
    throttle = Throttle(interval_s=10.0, now=lambda: now[0])
    assert throttle.hit() == 1
    assert [throttle.hit() for _ in range(5)] == [0] * 5
    now[0] = 10.0
    assert throttle.hit() == 6
    assert throttle.hit() == 0 and throttle.flush() == 1 and throttle.flush() == 0
