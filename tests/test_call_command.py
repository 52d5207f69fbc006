"""`switchboard call`: the agent places a call through FreeSWITCH's inbound event socket (captures 01 and 13).

The command runs as a real process; the inbound socket is the simulator's, and the call it places reaches the
real controller over TCP, answered, with the agent already chosen."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gevent
import gevent.socket
import gevent.subprocess
import pytest

from controller.esl import commands
from controller.esl.values import DialStringError
from fssim.captures import load_capture
from fssim import Scenario
from fssim.inbound import InboundServer
from tests.support.controller import TIME_SCALE, records, running, write_config

BIN = str(Path(sys.executable).with_name("switchboard"))
UUID = "13131313-1313-4313-8313-131313131313"
TRUNK = """
sip_connections:
  trunk: {gateway: carrier_main}
default_sip_connection: trunk
"""


def test_the_originate_command_is_the_one_of_capture_13_through_a_sofia_gateway():
    command = commands.originate("+33612345678", "carrier_main", "e164", UUID, "support", ("127.0.0.1", 8084), 30,
                                "+33100000000")
    assert command == (f"originate {{origination_uuid={UUID},switchboard_agent=support,originate_timeout=30,"
                       "ignore_early_media=true,origination_caller_id_number=+33100000000}"
                       "sofia/gateway/carrier_main/+33612345678 &socket('127.0.0.1:8084 async full')")
    for bad in (dict(agent_id="Support,x=1"), dict(gateway="gw}evil"), dict(timeout_s=0),
                dict(socket_address=("127.0.0.1 x", 8084)), dict(caller_id_number="${evil}")):
        args = dict(target_e164="+33612345678", gateway="carrier_main", number_format="e164", call_uuid=UUID,
                    agent_id="support", socket_address=("127.0.0.1", 8084), timeout_s=30, caller_id_number=None)
        with pytest.raises(DialStringError):
            commands.originate(**{**args, **bad})


def _call(config: Path, *args: str, password: str = "ClueCon") -> gevent.subprocess.CompletedProcess:
    env = {**os.environ, "FREESWITCH_ESL_PASSWORD": password}
    return gevent.subprocess.run([BIN, "--log-text", "call", *args, "--config", str(config)], env=env,
                                 capture_output=True, text=True, timeout=60)


def _cli_config(tmp_path: Path, runtime_port: int, inbound_port: int) -> Path:
    """The same configuration, pointing at the running controller and the simulated event socket."""
    (tmp_path / "cli").mkdir()
    return write_config(tmp_path / "cli", port=runtime_port, extra=TRUNK + f"freeswitch: {{port: {inbound_port}}}\n")


def test_an_agent_calls_an_ivr_and_presses_the_key_it_asks_for(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    callee = Scenario.from_dict({"name": "ivr", "caller": "+33100000000", "end_after_s": 5, "script": [
        {"wait_for": {"app": "speak"}}, {"say": "pour le suivi de votre colis tapez 1"},
        {"wait_for": {"app": "send_dtmf"}}]})
    inbound = InboundServer("ClueCon", callee, TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli_config = _cli_config(tmp_path, runtime.listener.port, inbound.start())
        try:
            placed = _call(cli_config, "06 12 34 56 78", "--agent", "support", "--country", "FR")
            [rec] = inbound.recordings()
        finally:
            inbound.stop()
        gevent.sleep(0.2)
        [record] = records(runtime)
    assert placed.returncode == 0, placed.stderr
    assert f"answered: call {rec.uuid} is with agent support" in placed.stdout
    [originate] = inbound.originates
    assert "sofia/gateway/carrier_main/+33612345678 &socket('127.0.0.1:" in originate
    assert f"origination_uuid={rec.uuid},switchboard_agent=support" in originate
    assert [c.app_arg for c in rec.commands if c.app == "send_dtmf"] == ["1@100"]
    assert "answer" not in [c.app for c in rec.commands]  # the callee answered before the socket app ran
    assert record["uuid"] == rec.uuid and record["agent"] == "support" and record["direction"] == "outbound"
    assert record["destination"] == "+33612345678"
    assert [a["name"] for a in record["actions"]] == ["menu_choice"]


def test_a_busy_number_exits_1_with_the_cause_and_a_wrong_password_exits_2(tmp_path, session_redis):
    config = write_config(tmp_path, extra=TRUNK)
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": "busy", "targets": {"+33612345678": "busy"}}),
                            TIME_SCALE)
    with running(config, session_redis) as runtime:
        cli_config = _cli_config(tmp_path, runtime.listener.port, inbound.start())
        try:
            busy = _call(cli_config, "+33612345678", "--agent", "support")
            refused = _call(cli_config, "+33612345678", "--agent", "support", password="wrong")
            injected = _call(cli_config, "+33612345678", "--agent", "support", password="ClueCon\napi status")
            unknown = _call(cli_config, "+33612345678", "--agent", "nobody")
            bad_number = _call(cli_config, "12", "--agent", "support", "--country", "FR")
        finally:
            inbound.stop()
    assert busy.returncode == 1 and "not answered: USER_BUSY" in busy.stderr
    assert refused.returncode == 2 and "refused the password" in refused.stderr
    assert injected.returncode == 2 and "line break" in injected.stderr and "Traceback" not in injected.stderr
    assert unknown.returncode == 2 and "agent: must be one of support (got 'nobody')" in unknown.stderr
    assert bad_number.returncode == 2 and "Traceback" not in bad_number.stderr
    assert inbound.recordings() == []


def test_call_says_dropped_when_no_agent_session_takes_the_answered_call(tmp_path):
    """serve is not listening: FreeSWITCH answers, the socket app cannot connect, the leg hangs up."""
    with gevent.socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        idle_port = probe.getsockname()[1]
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": "nobody"}), TIME_SCALE)
    try:
        cli_config = _cli_config(tmp_path, idle_port, inbound.start())
        dropped = _call(cli_config, "+33612345678", "--agent", "support")
    finally:
        inbound.stop()
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert "answered:" not in dropped.stdout
    assert "dropped: call " in dropped.stderr and "FreeSWITCH hung it up (NORMAL_CLEARING)" in dropped.stderr


def test_an_unquoted_socket_app_connects_static_and_serve_cannot_take_the_call(tmp_path, session_redis):
    """Capture 13 part 1, through the real controller: static single-channel, `linger` refused, the set-up
    fails, the call drops, and the inbound client reports it dropped instead of answered."""
    from controller.esl.inbound import originate
    config = write_config(tmp_path, extra=TRUNK)
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": "static", "end_after_s": 5}), TIME_SCALE)
    with running(config, session_redis) as runtime:
        port = inbound.start()
        command = commands.originate("+33612345678", "carrier_main", "e164", UUID, "support",
                                    ("127.0.0.1", runtime.listener.port), 30)
        unquoted = command.replace("&socket('", "&socket(").replace("')", ")")
        try:
            placed = gevent.get_hub().threadpool.apply(originate, (("127.0.0.1", port), "ClueCon", unquoted, UUID,
                                                                   10, 5))
            [rec] = inbound.recordings()
        finally:
            inbound.stop()
        gevent.sleep(0.2)
        assert records(runtime) == []
    assert (placed.outcome, placed.detail) == ("dropped", "NORMAL_CLEARING")
    connect = next(f for f in rec.frames if f.headers.get("Event-Name") == "CHANNEL_DATA")
    assert (connect.headers["Socket-Mode"], connect.headers["Control"]) == ("static", "single-channel")
    linger = [c for c in rec.commands if c.name == "linger"]
    assert linger and b"Reply-Text: -ERR command not found" in b"".join(
        f.raw for f in rec.frames if f.direction == "out")
    assert not [c for c in rec.commands if c.name == "sendmsg"]


@pytest.mark.parametrize("capture, connection", [("01-inbound-auth-api-bgapi", "inbound-badauth"),
                                                 ("01-inbound-auth-api-bgapi", "inbound-noauth"),
                                                 ("13-outbound-originate-to-socket-app", "inbound-ctl")])
def test_the_simulated_event_socket_replies_as_the_captures_show(capture, connection):
    frames = [f for f in load_capture(capture) if f.connection == connection][:7]
    inbound = InboundServer("ClueCon", Scenario.from_dict({"name": "x", "targets": {"default": "busy"}}))
    sock = gevent.socket.create_connection(("127.0.0.1", inbound.start()), timeout=5)
    try:
        received = b""
        for frame in frames:
            if frame.direction == "sent":
                sock.sendall(frame.raw)
                continue
            while len(received) < frame.length:
                chunk = sock.recv(65536)
                assert chunk, f"{capture} #{frame.seq}: the simulator closed the connection"
                received += chunk
            assert received[:frame.length] == frame.raw, f"{capture} #{frame.seq}"
            received = received[frame.length:]
    finally:
        sock.close()
        inbound.stop()


def test_simulate_places_an_outbound_scenario_through_the_inbound_event_socket(tmp_path):
    config = write_config(tmp_path, extra=TRUNK)
    scenario = tmp_path / "placed.yaml"
    scenario.write_text("name: placed\nagent: support\ndirection: outbound\ndestination: '+33144556677'\n"
                        "script:\n  - say: pour le suivi de votre colis tapez 1\n  - silence: 4\n", encoding="utf-8")
    done = gevent.subprocess.run([BIN, "--log-text", "simulate", str(scenario), "--config", str(config), "--json"],
                                 capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [played] = json.loads(done.stdout)
    assert played["record"]["direction"] == "outbound" and played["record"]["destination"] == "+33144556677"
    assert [a["name"] for a in played["record"]["actions"]] == ["menu_choice"]
