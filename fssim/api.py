"""The `api` commands the simulator answers on the socket, with FreeSWITCH's exact response bodies.

Most bodies end with a newline (`+OK\\n`, `-ERR No such channel!\\n`); `uuid_getvar` and `module_exists`
return the bare value (captures 01, 02, 04, 09, 11, 17). An unknown command answers
`-ERR <cmd> Command not found!\\n`.
"""
from __future__ import annotations

from typing import Callable

from fssim.causes import CAUSES
from fssim.ports import CallPort

NO_CHANNEL = "-ERR No such channel!\n"
VERSION = "FreeSWITCH Version 1.10.12-release~64bit ( 64bit)\n"


def run(call: CallPort, name: str, arg: str) -> str:
    """Run one api command against the call and return the response body (or the scenario's forced reply)."""
    if name in call.scenario.api_replies:
        return call.scenario.api_replies[name]
    handler = COMMANDS.get(name)
    if handler is None:
        return f"-ERR {name} Command not found!\n"
    return handler(call, arg.split())


def _module_exists(call: CallPort, args: list[str]) -> str:
    return "true" if args and args[0] in call.scenario.modules else "false"


def _uuid_getvar(call: CallPort, args: list[str]) -> str:
    if len(args) < 2:
        return "-USAGE: <uuid> <var>\n"
    if args[0] == call.uuid:
        value = call.channel.get_var(args[1])
    elif args[0] in call.peers:
        value = call.peers[args[0]].get(args[1])
    else:
        return NO_CHANNEL
    return "_undef_" if value is None else value


def _uuid_setvar(call: CallPort, args: list[str]) -> str:
    if not args or args[0] != call.uuid:
        return NO_CHANNEL
    if len(args) < 2:
        return "-ERR No variable specified\n"
    call.channel.set_var(args[1], " ".join(args[2:]) or None)
    return "+OK\n"


def _uuid_exists(call: CallPort, args: list[str]) -> str:
    return "true" if args and (args[0] == call.uuid and call.channel.up or args[0] in call.peers) else "false"


def _uuid_kill(call: CallPort, args: list[str]) -> str:
    cause = args[1].upper() if len(args) > 1 else "NORMAL_CLEARING"
    if args and args[0] == call.uuid and call.channel.up:
        call.hangup(cause, "controller")
        return "+OK\n"
    if args and args[0] in call.peers:
        call.peer_kills[args[0]] = cause if cause in CAUSES else "NORMAL_CLEARING"
        if call.session.app == "bridge":
            call.session.interrupt()
        return "+OK\n"
    return NO_CHANNEL


def _uuid_break(call: CallPort, args: list[str]) -> str:
    if not args or args[0] != call.uuid or not call.channel.up:
        return NO_CHANNEL
    if len(args) > 1 and args[1] == "all":
        dropped = call.session.flush()
        if dropped:
            call.note(f"uuid_break all flushed queued commands that will never run: {', '.join(dropped)}")
    call.session.break_app()
    return "+OK\n"


def _uuid_transfer(call: CallPort, args: list[str]) -> str:
    args = [a for a in args if a not in ("-bleg", "-both")]
    if not args or args[0] != call.uuid or not call.channel.up:
        return NO_CHANNEL
    if len(args) < 2:
        return "-USAGE: <uuid> [-bleg|-both] <dest> [<dialplan>] [<context>]\n"
    dialplan = args[2] if len(args) > 2 else "XML"
    context = args[3] if len(args) > 3 else "default"
    call.session.interrupt()
    call.session.push_urgent(("transfer", args[1], dialplan, context))
    return "+OK\n"


def _uuid_send_dtmf(call: CallPort, args: list[str]) -> str:
    if len(args) < 2 or args[0] != call.uuid or not call.channel.up:
        return NO_CHANNEL
    call.rec.dtmf_sent.append(args[1])
    call.note(f"agent sent DTMF {args[1]} (uuid_send_dtmf)")
    return f"+OK {call.uuid} sent DTMF {args[1]}.\n"


COMMANDS: dict[str, Callable[[CallPort, list[str]], str]] = {
    "module_exists": _module_exists,
    "uuid_getvar": _uuid_getvar,
    "uuid_setvar": _uuid_setvar,
    "uuid_exists": _uuid_exists,
    "uuid_kill": _uuid_kill,
    "uuid_break": _uuid_break,
    "uuid_transfer": _uuid_transfer,
    "uuid_send_dtmf": _uuid_send_dtmf,
    "version": lambda call, args: VERSION,
}
