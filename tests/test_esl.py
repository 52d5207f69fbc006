"""esl.py against a scripted FreeSWITCH peer over real TCP: one test per greenswitch defect it overcomes."""
from __future__ import annotations

import gc
import socket
import time
import weakref

import gevent
import gevent.event
import pytest

from controller.esl import commands
from controller.esl.session import (CallHangup, EslSession, EslTimeout, ExecuteFlushed, FrameReader, command_frame)
from tests.support.esl_peer import OK, UUID, Peer, connected, event, serve  # noqa: F401 (serve is a fixture)


def test_binding_port_zero_gets_an_ephemeral_port_instead_of_exiting(serve):
    listener = serve(lambda s: None)
    assert listener.port > 0


def test_the_connect_reply_is_decoded_value_by_value(serve):
    got = gevent.event.AsyncResult()
    listener = serve(lambda s: got.set(s.connect()))
    peer = connected(listener.port)  # keep the peer (and its socket) alive
    channel = got.get(timeout=3)
    assert channel["Caller-Caller-ID-Number"] == "+33612345678"
    assert channel["Caller-Caller-ID-Name"] == "ESL Test"
    assert channel["Reply-Text"] == "+OK\n"
    assert channel["Answer-State"] == "ringing"


def test_values_are_decoded_after_the_frame_is_split_so_percent_0a_makes_no_fake_header(serve):
    got = gevent.event.AsyncResult()

    def handler(session: EslSession):
        session.connect()
        got.set(session.wait_event(lambda f: f.name == "CUSTOM", timeout=2))

    listener = serve(handler)
    peer = connected(listener.port)
    peer.send(event([("Event-Name", "CUSTOM"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001"),
                     ("variable_note", "line one\nFake-Header: injected")]))
    frame = got.get(timeout=3)
    assert frame.var("note") == "line one\nFake-Header: injected"
    assert "Fake-Header" not in frame.headers


def test_an_event_body_stays_out_of_the_headers(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        got.set(session.wait_event(lambda f: f.name == "DETECTED_SPEECH", timeout=2))

    listener = serve(handler)
    peer = connected(listener.port)
    nlsml = '<result><interpretation confidence="87"><input mode="speech">bonjour: oui</input></interpretation></result>'
    peer.send(event([("Event-Name", "DETECTED_SPEECH"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001"),
                     ("Speech-Type", "detected-speech")], body=nlsml))
    frame = got.get(timeout=3)
    assert frame.body == nlsml
    assert frame.get("Speech-Type") == "detected-speech"
    assert not any("interpretation" in k for k in frame.headers)


def test_a_json_event_does_not_kill_the_reader(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        first = session.wait_event(lambda f: f.name == "DTMF", timeout=2)
        second = session.wait_event(lambda f: f.name == "CHANNEL_ANSWER", timeout=2)
        got.set((first, second))

    listener = serve(handler)
    peer = connected(listener.port)
    body = b'{"Event-Name": "DTMF", "Unique-ID": "0a160000-0000-4000-8000-00000000c001", "DTMF-Digit": "#"}'
    gevent.sleep(0.05)
    peer.send(f"Content-Length: {len(body)}\nContent-Type: text/event-json\n\n".encode() + body)
    gevent.sleep(0.05)
    peer.send(event([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001")]))
    first, second = got.get(timeout=3)
    assert first.get("DTMF-Digit") == "#"
    assert second is not None


def test_a_command_without_reply_times_out_instead_of_waiting_forever(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        try:
            session.command("myevents", timeout=0.2)
        except EslTimeout as exc:
            got.set(exc)

    listener = serve(handler)
    peer = connected(listener.port)  # keep the peer (and its socket) alive
    assert "myevents" in str(got.get(timeout=3))


def test_the_argument_travels_as_a_text_plain_body_with_event_lock_and_event_uuid(serve):
    def handler(session):
        session.connect()
        session.start_execute("speak", "flite|kal|Bonjour\nexecute-app-name: hangup")

    listener = serve(handler)
    peer = connected(listener.port)
    lines, body = peer.read_command()
    assert lines[0] == "sendmsg"
    assert "call-command: execute" in lines and "execute-app-name: speak" in lines
    assert "event-lock: true" in lines and any(l.startswith("Event-UUID: ") for l in lines)
    assert "content-type: text/plain" in lines
    assert body == "flite|kal|Bonjour\nexecute-app-name: hangup".encode()


def _complete(app, app_uuid, response="_none_"):
    return event([("Event-Name", "CHANNEL_EXECUTE_COMPLETE"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001"), ("Application", app),
                  ("Application-UUID", app_uuid), ("Application-Response", response)])


def _uuid_of(lines):
    return next(l.split(": ", 1)[1] for l in lines if l.startswith("Event-UUID: "))


def test_completions_are_matched_on_application_uuid_not_on_the_app_name(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        first = session.start_execute("speak", "flite|kal|one")
        second = session.start_execute("speak", "flite|kal|two")
        got.set((second.wait(2).get("Application-Response"), first.wait(2).get("Application-Response")))

    listener = serve(handler)
    peer = connected(listener.port)
    one, _ = peer.read_command()
    peer.send(OK)
    two, _ = peer.read_command()
    peer.send(OK)
    peer.send(_complete("speak", _uuid_of(two), "second"))
    peer.send(_complete("speak", _uuid_of(one), "first"))
    assert got.get(timeout=3) == ("second", "first")


def test_an_own_execute_complete_handler_does_not_starve_blocking_executes(serve):
    got = gevent.event.AsyncResult()
    seen = []

    def handler(session):
        session.connect()
        session.register_handle("CHANNEL_EXECUTE_COMPLETE", seen.append)
        got.set(session.execute("answer", timeout=2).get("Application"))

    listener = serve(handler)
    peer = connected(listener.port)
    lines, _ = peer.read_command()
    peer.send(OK)
    peer.send(_complete("answer", _uuid_of(lines)))
    assert got.get(timeout=3) == "answer"
    gevent.sleep(0.05)
    assert len(seen) == 1


def test_a_hangup_surfaces_as_one_exception_in_every_pending_wait(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        execution = session.start_execute("playback", "tone_stream://%(1000,0,440)")
        try:
            execution.wait(5)
        except CallHangup as exc:
            got.set(exc.cause)

    listener = serve(handler)
    peer = connected(listener.port)
    peer.read_command()
    peer.send(OK)
    peer.send(event([("Event-Name", "CHANNEL_HANGUP"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001"), ("Hangup-Cause", "USER_BUSY")]))
    assert got.get(timeout=3) == "USER_BUSY"


def test_uuid_break_all_fails_the_waiters_of_the_executes_it_flushed(serve):
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        playing = session.start_execute("speak", "flite|kal|one")
        queued = session.start_execute("speak", "flite|kal|two")
        gevent.sleep(0.1)
        session.break_all()
        try:
            queued.wait(2)
        except ExecuteFlushed:
            got.set(playing.wait(2).get("Application-Response"))

    listener = serve(handler)
    peer = connected(listener.port)
    one, _ = peer.read_command()
    peer.send(OK)
    peer.send(event([("Event-Name", "CHANNEL_EXECUTE"), ("Unique-ID", "0a160000-0000-4000-8000-00000000c001"), ("Application", "speak"),
                     ("Application-UUID", _uuid_of(one))]))
    peer.read_command()
    peer.send(OK)
    lines, _ = peer.read_command()
    assert lines == ["api uuid_break 0a160000-0000-4000-8000-00000000c001 all"]
    peer.send(b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n")
    peer.send(_complete("speak", _uuid_of(one)))
    assert got.get(timeout=3) == "_none_"


def test_unicast_is_sent_once_the_app_queued_before_it_has_started(serve):
    """An app that starts ends a unicast stream (capture 15): a queued `detect_speech resume` goes first."""
    sent = gevent.event.Event()

    def handler(session):
        session.connect()
        session.start_execute("detect_speech", "resume")
        session.unicast(commands.unicast(30000, 30002))
        sent.set()

    listener = serve(handler)
    peer = connected(listener.port)
    resume, _ = peer.read_command()
    peer.send(OK)
    assert not sent.wait(0.3)  # the resume has not started: no unicast yet
    peer.send(event([("Event-Name", "CHANNEL_EXECUTE"), ("Unique-ID", UUID), ("Application", "detect_speech"),
                     ("Application-UUID", _uuid_of(resume))]))
    lines, _ = peer.read_command()
    assert "call-command: unicast" in lines
    peer.send(OK)
    assert sent.wait(3)


def test_a_closed_session_is_freed_at_once_not_by_a_full_garbage_collection(serve):
    """With 2,000 live calls a full collection stalls every call for 100+ ms: ended calls must not wait for one."""
    sessions = []

    def handler(session):
        session.connect()
        sessions.append(weakref.ref(session))

    listener = serve(handler)
    peer = connected(listener.port)
    lines, _ = peer.read_command()
    assert lines == ["exit"]
    peer.send(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
    peer.close()
    gc.disable()
    try:
        for _ in range(100):
            if sessions and sessions[0]() is None:
                break
            gevent.sleep(0.02)
        assert sessions and sessions[0]() is None
    finally:
        gc.enable()


def test_a_malformed_frame_ends_that_call_and_the_server_serves_the_next(serve):
    ended = gevent.event.AsyncResult()
    answered = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        try:
            session.command("myevents", timeout=3)
            answered.set(True)
        except CallHangup as exc:
            ended.set(exc.cause)

    listener = serve(handler)
    bad = connected(listener.port)
    bad.read_command()
    bad.send(b"Content-Type: api/response\nContent-Length: twelve\n\n")
    assert ended.get(timeout=3) == "PROTOCOL_ERROR"
    good = connected(listener.port)
    good.read_command()
    good.send(b"Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n")
    assert answered.get(timeout=3) is True


def test_new_connections_are_accepted_at_once_not_on_a_100ms_poll(serve):
    connects = []
    listener = serve(lambda s: connects.append(s.connect()))
    started = time.monotonic()
    for _ in range(20):
        peer = connected(listener.port)
        peer.sock.close()
    # greenswitch's poll adds ~100 ms per call (>= 2 s for 20); an immediate accept needs a few ms each.
    assert time.monotonic() - started < 1.0


def test_calls_over_max_connections_are_refused_and_counted(serve):
    hold = gevent.event.Event()

    def handler(session):
        session.connect()
        hold.wait(3)

    listener = serve(handler, max_connections=1)
    first = connected(listener.port)
    second = connected(listener.port)
    lines, _ = second.read_command()
    assert lines == ["exit"]
    assert listener.refused == 1
    hold.set()
    first.sock.close()


def test_command_frames_refuse_line_breaks_in_headers():
    with pytest.raises(ValueError):
        command_frame("api uuid_kill x\nexit")


def test_the_frame_reader_reads_exactly_content_length_bytes():
    a, b = socket.socketpair()
    a.sendall(b"Content-Type: api/response\nContent-Length: 5\n\nhello"
              b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    a.close()
    reader = FrameReader(b.makefile("rb"))
    assert reader.read().body == "hello"
    assert reader.read().get("Reply-Text") == "+OK"
    assert reader.read() is None


def test_a_released_session_sends_nothing_and_new_sessions_wait_for_it_to_be_gone(serve):
    """The hand-off rule of capture 18: the leaving session writes no `exit` (only its FIN), and a session that
    arrives meanwhile sends `connect` only once FreeSWITCH has closed the leaving one."""
    order: list[str] = []
    released = gevent.event.AsyncResult()

    def handler(session):
        channel = session.connect(timeout=3)
        order.append(f"connect {channel['Caller-Caller-ID-Name']}")
        if len(order) == 1:
            with session.gate.leaving():
                gevent.sleep(0.3)  # the second call arrives while this one is leaving
                order.append("released")
                released.set(session.release(timeout=2))

    listener = serve(handler)
    first = connected(listener.port)
    gevent.sleep(0.05)
    second = Peer(listener.port)
    gevent.sleep(0.1)
    assert order == ["connect ESL Test"]  # the second session has not sent `connect` yet
    assert first.file.read(1) == b""  # FIN: the controller wrote nothing more, no `exit`
    first.file.close()  # FreeSWITCH's listener ends and closes its end
    first.sock.close()
    assert released.get(timeout=3) is True
    lines, _ = second.read_command()
    assert lines == ["connect"] and order[:2] == ["connect ESL Test", "released"]
    second.sock.close()


def test_no_handler_greenlet_runs_until_a_handler_is_registered(serve):
    """greenswitch's handler queue and greenlet cost every frame twice; they start with the first own handler."""
    got = gevent.event.AsyncResult()

    def handler(session):
        session.connect()
        before = session._process_events_greenlet
        session.register_handle("DTMF", lambda frame: None)
        got.set((before, session._process_events_greenlet is not None))

    listener = serve(handler)
    peer = connected(listener.port)
    peer.read_command()
    peer.send(OK)
    assert got.get(timeout=3) == (None, True)
