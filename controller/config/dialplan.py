"""Does a FreeSWITCH dialplan file hand calls to this configuration? `switchboard check CONFIG --dialplan FILE`.

A hand-off by the book lands nowhere when the dialplan and the configuration disagree: an agent's number that no
extension routes to Switchboard, an agent's hand-off `extension`/`context` with no extension behind it, a
`socket` app pointing at another address than `server.host:port` or one of `server.peers` (the failover lines
of several hosts), or `async full` lost. Each problem names the
dialplan file and line. Extensions outside any `<context name=...>` (a file included into a context, as
`freeswitch-conf/dialplan-switchboard.xml` is) count as context `default`. Only `destination_number` conditions
and the `set` and `socket` actions under them are read; a regex FreeSWITCH (PCRE) accepts but Python does not is
reported too.
"""
from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from controller.config.schema import Config

SOCKET_RE = re.compile(r"(?P<host>[^:\s]+):(?P<port>\d+)(?P<rest>.*)")


@dataclass
class Route:
    """One `destination_number` condition: its pattern and what its actions do."""

    context: str
    pattern: str
    line: int
    agent: Optional[str] = None  # from `set switchboard_agent=...`
    sockets: list[tuple[str, int]] = field(default_factory=list)  # (data, line)
    after_socket: bool = False  # an action follows the last socket: the safety net

    def matches(self, value: str) -> bool:
        try:
            return re.search(self.pattern, value) is not None
        except re.error:
            return False


def read_routes(path: Path) -> list[Route]:
    """The routes of a dialplan file; ValueError naming the line when it is not well-formed XML."""
    routes: list[Route] = []
    contexts: list[str] = []
    current: list[Optional[Route]] = [None]
    parser = xml.parsers.expat.ParserCreate()

    def start(name: str, attrs: dict[str, str]) -> None:
        line = parser.CurrentLineNumber
        if name == "context":
            contexts.append(attrs.get("name", "default"))
        elif name == "condition":
            route = None
            if attrs.get("field") == "destination_number" and "expression" in attrs:
                route = Route(contexts[-1] if contexts else "default", attrs["expression"], line)
                routes.append(route)
            current.append(route)
        elif name in ("action", "anti-action") and current[-1] is not None:
            route, app, data = current[-1], attrs.get("application", ""), attrs.get("data", "")
            if app == "set" and data.startswith("switchboard_agent="):
                route.agent = data.split("=", 1)[1].strip()
            if app == "socket":
                route.sockets.append((data, line))
                route.after_socket = False
            elif route.sockets:
                route.after_socket = True

    def end(name: str) -> None:
        if name == "context" and contexts:
            contexts.pop()
        elif name == "condition":
            current.pop()

    def doctype(*_args: object) -> None:
        raise ValueError(f"{path}:{parser.CurrentLineNumber}: a DOCTYPE; a dialplan file needs none")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not well-formed XML ({xml.parsers.expat.ErrorString(exc.code)})") \
            from None
    return routes


def dialplan_problems(config: Config, path: Path) -> list[str]:
    """Every disagreement between `config` and the dialplan at `path`, as `FILE:LINE: problem; fix` lines."""
    try:
        routes = read_routes(path)
    except OSError as exc:
        return [f"{path}: cannot be read ({exc.strerror})"]
    except ValueError as exc:
        return [str(exc)]
    problems = []
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::") else config.server.host
    expected = f"{host}:{config.server.port} async full"
    allowed = {(host, config.server.port), (config.server.host, config.server.port)}
    allowed |= {(peer.rpartition(":")[0], int(peer.rpartition(":")[2])) for peer in config.server.peers}
    for route in routes:
        try:
            re.compile(route.pattern)
        except re.error as exc:
            problems.append(f"{path}:{route.line}: expression {route.pattern!r} is not a regex this check reads ({exc})")
        for data, line in route.sockets:
            parts = SOCKET_RE.fullmatch(data.strip())
            if parts is None or (parts["host"], int(parts["port"])) not in allowed:
                problems.append(f"{path}:{line}: socket {data!r} is not Switchboard's address; write "
                                f"data=\"{expected}\" (server.host and server.port), or list another host's "
                                "address in server.peers")
            elif parts["rest"].split() != ["async", "full"]:
                problems.append(f"{path}:{line}: socket {data!r} lacks `async full`; Switchboard needs both "
                                f"(data=\"{expected}\")")
        if route.sockets and not route.after_socket:
            problems.append(f"{path}:{route.sockets[-1][1]}: nothing after `socket`: when Switchboard is down or "
                            "full the caller is hung up; add a safety net (a transfer to a queue or voicemail)")
        if route.agent is not None and route.sockets and route.agent not in config.agents:
            problems.append(f"{path}:{route.line}: switchboard_agent={route.agent} is not an agent of "
                            f"{config.display_path} ({', '.join(sorted(config.agents))})")
    to_switchboard = [r for r in routes if r.sockets]
    for agent_id, agent in config.agents.items():
        if agent.number:
            hits = [r for r in to_switchboard if r.matches(agent.number) or r.matches(agent.number.lstrip("+"))]
            if not hits:
                problems.append(f"{path}: no extension routes {agent_id}'s number {agent.number} to Switchboard; "
                                f"add a destination_number condition for it with set switchboard_agent={agent_id} "
                                "and the socket")
            elif not any((r.agent or config.default_agent) == agent_id for r in hits):
                problems.append(f"{path}:{hits[0].line}: {agent.number} reaches Switchboard as agent "
                                f"{hits[0].agent or config.default_agent}, not {agent_id}; set "
                                f"switchboard_agent={agent_id} there")
        if agent.extension and agent.context:
            hits = [r for r in to_switchboard if r.context == agent.context and r.matches(agent.extension)]
            if not hits:
                problems.append(f"{path}: no extension {agent.extension} in context {agent.context} sends a hand-off "
                                f"to {agent_id}: another agent's transfer there would land nowhere; add one with "
                                f"set switchboard_agent={agent_id} and the socket")
            elif not any(r.agent == agent_id for r in hits):
                problems.append(f"{path}:{hits[0].line}: extension {agent.extension} in context {agent.context} "
                                f"hands calls to {hits[0].agent or 'the default agent'}, not {agent_id}")
    return problems
