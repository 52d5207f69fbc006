"""FreeSWITCH's inbound event socket (port 8021), as far as Switchboard uses it: placing an agent's call.

Replies as captures 01 and 13 show: `auth/request` on connect; `auth` (a wrong password: `-ERR invalid`, the
disconnect notice, the socket closed); a command before auth: `-ERR command not found`; `event plain ...`;
`bgapi originate {vars}sofia/gateway/GW/NUMBER &socket(HOST:PORT async full)` with our Job-UUID. The called
party is the `callee` scenario: its `targets` entry for the dialled number may say busy, reject, no_answer or
gateway_down (as for transfers), else it answers; then the simulator runs the socket app as FreeSWITCH does
(a call connecting to HOST:PORT, answered, with the originate's variables) and sends the BACKGROUND_JOB
`+OK <uuid>`; a failure sends `-ERR <cause>`.
"""
from __future__ import annotations

import dataclasses
import re
import uuid as uuidlib

import gevent
import gevent.lock
from gevent.server import StreamServer

from ..clock import Clock
from .call import SimCall
from .channel import Switch
from .recording import CallRecording
from .scenario import Scenario
from .wire import FrameReader, command_reply, event_plain, header_block

_ORIGINATE = re.compile(r"^\{(?P<vars>[^}]*)\}(?P<endpoint>\S+) "
                        r"&socket\((?P<host>[^()\s]+):(?P<port>\d+) async full\)$")
_CAUSES = {"busy": "USER_BUSY", "reject": "CALL_REJECTED", "no_answer": "NO_ANSWER", "gateway_down": "GATEWAY_DOWN"}
_GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


class InboundServer:
    """A stand-in for port 8021 on 127.0.0.1 (an ephemeral port); `calls` holds each placed call's greenlet."""

    def __init__(self, password: str, callee: Scenario, time_scale: float = 1.0) -> None:
        self.password = password
        self.callee = callee
        self.clock = Clock(time_scale)
        self.switch = Switch()
        self.calls: list[gevent.Greenlet] = []
        self.originates: list[str] = []  # every `originate` argument received, for assertions
        self._server = StreamServer(("127.0.0.1", 0), self._serve)

    def start(self) -> int:
        self._server.start()
        return self._server.server_port

    def stop(self) -> None:
        self._server.stop(timeout=1)
        gevent.killall(self.calls, timeout=5)

    def recordings(self, timeout: float = 30) -> list[CallRecording]:
        """Wait for every placed call to end; their recordings."""
        gevent.joinall(self.calls, timeout=timeout)
        return [g.value for g in self.calls if g.successful()]

    def _serve(self, sock, _address) -> None:
        lock = gevent.lock.Semaphore()

        def send(frame: bytes) -> None:
            with lock:
                sock.sendall(frame)

        reader = FrameReader(sock)
        send(header_block([("Content-Type", "auth/request")], False) + b"\n")
        authed = False
        try:
            while (command := reader.read_command()) is not None:
                if command.name == "auth":
                    if command.arg != self.password:
                        send(command_reply("-ERR invalid"))
                        body = _GOODBYE.encode()
                        send(header_block([("Content-Type", "text/disconnect-notice"),
                                           ("Content-Length", str(len(body)))], False) + b"\n" + body)
                        return
                    authed = True
                    send(command_reply("+OK accepted"))
                elif not authed:
                    send(command_reply("-ERR command not found"))
                elif command.name == "event":
                    send(command_reply(f"+OK event listener enabled {command.arg.split()[0]}"))
                elif command.name == "bgapi":
                    job = command.header("Job-UUID") or str(uuidlib.uuid4())
                    send(command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
                    gevent.spawn(self._job, send, job, command.arg)
                elif command.name == "exit":
                    send(command_reply("+OK bye"))
                    return
                else:
                    send(command_reply("-ERR command not found"))
        finally:
            sock.close()

    def _job(self, send, job: str, arg: str) -> None:
        name, _, rest = arg.partition(" ")
        match = _ORIGINATE.match(rest) if name == "originate" else None
        if match is None:
            result = f"-ERR {name} Command not found!\n" if name != "originate" else "-ERR INVALID_ARGUMENT\n"
        else:
            result = self._originate(match)
        headers = self.switch.event_header("BACKGROUND_JOB", int(self.clock.wall() * 1e6))
        headers += [("Job-UUID", job), ("Job-Command", name), ("Job-Command-Arg", rest)]
        send(event_plain(headers, result))

    def _originate(self, match: re.Match) -> str:
        self.originates.append(match.group(0))
        variables = dict(item.split("=", 1) for item in match.group("vars").split(",") if "=" in item)
        number = match.group("endpoint").rsplit("/", 1)[-1]
        target = self.callee.target(number)
        if target is not None and target.outcome in _CAUSES:
            if target.outcome == "no_answer":
                gevent.sleep(self.clock.scaled(float(variables.get("originate_timeout", 60))))
            return f"-ERR {_CAUSES[target.outcome]}\n"
        uuid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        placed = dataclasses.replace(self.callee, agent=variables.get("switchboard_agent"), uuid=uuid, answered=True,
                                     direction="outbound",
                                     destination=number, variables={**self.callee.variables, **variables},
                                     caller_number=variables.get("origination_caller_id_number",
                                                                 self.callee.caller_number))
        call = SimCall(placed, (match.group("host"), int(match.group("port"))), self.clock, self.switch)
        self.calls.append(gevent.spawn(call.run))
        for _ in range(100):  # FreeSWITCH reports the job once the socket app has started (capture 13)
            if call.rec.commands:
                break
            gevent.sleep(0.01)
        return f"+OK {uuid}\n"
