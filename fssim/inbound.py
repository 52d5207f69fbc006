"""FreeSWITCH's inbound event socket (port 8021), as far as Switchboard uses it: placing an agent's call.

Replies as captures 01, 08 and 13 show: `auth/request` on connect; `auth` (a wrong password: `-ERR invalid`, the
disconnect notice, the socket closed); a command before auth: `-ERR command not found`; `event plain ...` and
`filter <header> <value>` (events pass when any filter matches, as mod_event_socket's event_handler does);
`bgapi originate {vars}sofia/gateway/GW/NUMBER &socket('HOST:PORT async full')` with our Job-UUID. The called
party is the `callee` scenario: its `targets` entry for the dialled number may say busy, reject, no_answer or
gateway_down (as for transfers), else it answers; then the simulator runs the socket app as FreeSWITCH does
(a call connecting to HOST:PORT, answered, with the originate's variables) and fires the BACKGROUND_JOB
`+OK <uuid>`; a failure fires the leg's CHANNEL_HANGUP_COMPLETE (but for a down gateway: no leg) and then
`-ERR <cause>` (USER_BUSY, CALL_REJECTED, NO_ANSWER once originate_timeout passed, NETWORK_OUT_OF_ORDER). The originate's arguments are split as FreeSWITCH splits them (on
spaces, single quotes grouping): an unquoted `&socket(HOST:PORT async full)` leaves the app `HOST:PORT` alone,
so its session is static and single-channel (capture 13 part 1), and the controller's `linger` is refused.
"""
from __future__ import annotations

import dataclasses
import re
import uuid as uuidlib

import gevent
import gevent.lock
from gevent import socket
from gevent.server import StreamServer

from controller.clock import Clock
from fssim.call import SimCall
from fssim.channel import Switch
from fssim.recording import CallRecording
from fssim.scenario import Scenario
from fssim.wire import Command, FrameReader, command_reply, disconnect_notice, event_plain, header_block

_DIALSTRING = re.compile(r"^\{(?P<vars>[^}]*)\}(?P<endpoint>\S+)$")
_SOCKET_ADDRESS = re.compile(r"^(?P<host>[^\s]+):(?P<port>\d+)$")
_CAUSES = {"busy": "USER_BUSY", "reject": "CALL_REJECTED", "no_answer": "NO_ANSWER", "gateway_down": "NETWORK_OUT_OF_ORDER"}


class InboundServer:
    """A stand-in for port 8021 on 127.0.0.1 (an ephemeral port); `calls` holds each placed call's greenlet."""

    def __init__(self, password: str, callee: Scenario, time_scale: float = 1.0) -> None:
        self.password = password
        self.callee = callee
        self.clock = Clock(time_scale)
        self.switch = Switch()
        self.calls: list[gevent.Greenlet] = []
        self.answered: list[SimCall] = []  # the calls placed and answered, in order
        self.originates: list[str] = []  # every `originate` argument received, for assertions
        self._server = StreamServer(("127.0.0.1", 0), self._serve)

    def start(self) -> int:
        self._server.start()
        return self._server.server_port

    def stop(self) -> None:
        self._server.stop(timeout=1)
        gevent.killall(self.calls, timeout=5)

    def hang_up(self, cause: str = "NORMAL_CLEARING") -> None:
        """Every answered callee hangs up now (a test's way to end long calls when it chooses)."""
        for call in self.answered:
            call.hangup(cause, "caller")

    def recordings(self, timeout: float = 30) -> list[CallRecording]:
        """Wait for every placed call to end; their recordings."""
        gevent.joinall(self.calls, timeout=timeout)
        return [g.value for g in self.calls if g.successful()]

    def _serve(self, sock: socket.socket, _address: tuple[str, int]) -> None:
        lock = gevent.lock.Semaphore()

        def send(frame: bytes) -> None:
            with lock:
                try:
                    sock.sendall(frame)
                except OSError:  # the client is gone (a reset when it closed with events unread)
                    pass

        reader = FrameReader(sock)
        send(header_block([("Content-Type", "auth/request")], False) + b"\n")
        authed = False
        subscribed: set[str] = set()
        filters: list[tuple[str, str]] = []

        def sink(name: str, values: dict[str, str], frame: bytes) -> None:
            if "ALL" not in subscribed and name not in subscribed:
                return
            if filters and not any(values.get(h, "").lower() == v.lower() for h, v in filters):
                return
            send(frame)

        self.switch.sinks.append(sink)
        try:
            while (command := self._read(reader)) is not None:
                if command.name == "auth":
                    if command.arg != self.password:
                        send(command_reply("-ERR invalid"))
                        send(disconnect_notice(None))
                        return
                    authed = True
                    send(command_reply("+OK accepted"))
                elif not authed:
                    send(command_reply("-ERR command not found"))
                elif command.name == "event":
                    words = command.arg.split()
                    subscribed.update(w.upper() for w in words if w.lower() not in ("plain", "json", "xml"))
                    send(command_reply(f"+OK event listener enabled {words[0] if words else 'plain'}"))
                elif command.name == "filter":
                    header, _, value = command.arg.partition(" ")
                    filters.append((header, value))
                    send(command_reply(f"+OK filter added. [{header}]=[{value}]"))
                elif command.name == "bgapi":
                    job = command.header("Job-UUID") or str(uuidlib.uuid4())
                    send(command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
                    gevent.spawn(self._job, job, command.arg)
                elif command.name == "exit":
                    send(command_reply("+OK bye"))
                    send(disconnect_notice(None))  # capture 01: the listener's goodbye, then the close
                    return
                else:
                    send(command_reply("-ERR command not found"))
        finally:
            self.switch.sinks.remove(sink)
            sock.close()

    @staticmethod
    def _read(reader: FrameReader) -> Command | None:
        """The next command; None once the client closed the connection (or reset it)."""
        try:
            return reader.read_command()
        except OSError:
            return None

    def _job(self, job: str, arg: str) -> None:
        name, _, rest = arg.partition(" ")
        if name == "originate":
            result = self._originate(rest)
        else:
            result = f"-ERR {name} Command not found!\n"
        headers = self.switch.event_header("BACKGROUND_JOB", int(self.clock.wall() * 1e6))
        headers += [("Job-UUID", job), ("Job-Command", name)] + ([("Job-Command-Arg", rest)] if rest else [])
        frame = event_plain(headers, result)
        values = dict(headers)
        for sink in list(self.switch.sinks):
            sink("BACKGROUND_JOB", values, frame)

    def _originate(self, rest: str) -> str:
        """mod_commands' originate: `<dial string> &<app>(<arg>)`, its arguments split on spaces."""
        args = separate_string(rest)
        dialstring = _DIALSTRING.match(args[0]) if args else None
        app = args[1] if len(args) > 1 else ""
        app_name, _, app_arg = app[1:].partition("(")
        app_arg = app_arg.split(")", 1)[0]
        address = _SOCKET_ADDRESS.match(app_arg.split(" ")[0])
        if dialstring is None or not app.startswith("&") or app_name != "socket" or address is None:
            return "-ERR INVALID_ARGUMENT\n"
        self.originates.append(rest)
        variables = dict(item.split("=", 1) for item in dialstring.group("vars").split(",") if "=" in item)
        number = dialstring.group("endpoint").rsplit("/", 1)[-1]
        far_end = self.callee.far_end(number)
        uuid = variables.get("origination_uuid") or str(uuidlib.uuid4())
        if far_end is not None and far_end.outcome in _CAUSES:
            if far_end.outcome == "no_answer":
                gevent.sleep(self.clock.scaled(float(variables.get("originate_timeout", 60))))
            if far_end.outcome != "gateway_down":  # mod_sofia refuses a down gateway before any channel exists
                self._leg_hung_up(uuid, dialstring.group("endpoint"), number, _CAUSES[far_end.outcome])
            return f"-ERR {_CAUSES[far_end.outcome]}\n"
        placed = dataclasses.replace(self.callee, agent=variables.get("switchboard_agent"), uuid=uuid, answered=True,
                                     direction="outbound",
                                     destination=number, variables={**self.callee.variables, **variables},
                                     caller_number=variables.get("origination_caller_id_number",
                                                                 self.callee.caller_number))
        call = SimCall(placed, (address.group("host"), int(address.group("port"))), self.clock, self.switch,
                       socket_data=app_arg)
        self.answered.append(call)
        self.calls.append(gevent.spawn(call.run))
        for _ in range(100):  # FreeSWITCH reports the job once the socket app has started (capture 13)
            if call.rec.commands:
                break
            gevent.sleep(0.01)
        return f"+OK {uuid}\n"

    def _leg_hung_up(self, uuid: str, endpoint: str, number: str, cause: str) -> None:
        """The failed leg's CHANNEL_HANGUP_COMPLETE, which reaches the event socket before the BACKGROUND_JOB (as a
        bridge's failed B leg's does, capture 16)."""
        headers = self.switch.event_header("CHANNEL_HANGUP_COMPLETE", int(self.clock.wall() * 1e6))
        headers += [("Hangup-Cause", cause), ("Channel-State", "CS_REPORTING"), ("Channel-Call-State", "HANGUP"),
                    ("Channel-Name", endpoint), ("Unique-ID", uuid), ("Call-Direction", "outbound"),
                    ("Answer-State", "hangup"), ("Caller-Destination-Number", number)]
        frame = event_plain(headers)
        values = dict(headers)
        for sink in list(self.switch.sinks):
            sink("CHANNEL_HANGUP_COMPLETE", values, frame)


def separate_string(text: str) -> list[str]:
    """switch_separate_string on spaces: a single-quoted part is one word, its quotes dropped."""
    words: list[str] = []
    word: list[str] = []
    quoted, started = False, False
    for char in text:
        if char == "'":
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words
