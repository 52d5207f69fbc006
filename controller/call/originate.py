"""Calls the agents place: from a configured agent and a number to the `originate` FreeSWITCH runs.

`switchboard call` sends it to FreeSWITCH's inbound event socket; `simulate` and the demo send it to the
simulator's, for scenarios written `direction: outbound`. Either way the answered call comes back to `serve`
through the `&socket(...)` at the end of the command, with the agent already chosen.
"""
from __future__ import annotations

from typing import Any, Optional

from controller.esl.commands import originate
from controller.esl.values import DialStringError, normalise_number


def originate_for(config: Any, agent_id: str, number: str, call_uuid: str, *, country: Optional[str] = None,
                  via: Optional[str] = None, caller_id: Optional[str] = None,
                  socket_address: Optional[tuple[str, int]] = None) -> str:
    """The `originate ...` for `agent_id` calling `number` through SIP connection `via` (default: the config's),
    the new leg's uuid being `call_uuid` (the caller follows the call by it).

    Raises DialStringError naming what to fix (unknown agent or connection, a number that is not one).
    """
    if agent_id not in config.agents:
        raise DialStringError("agent", agent_id, f"must be one of {', '.join(sorted(config.agents))}")
    name = via or config.default_sip_connection
    sip = config.sip_connections.get(name or "")
    if sip is None:
        known = ", ".join(sorted(config.sip_connections)) or "none: declare sip_connections"
        raise DialStringError("SIP connection", name, f"must be one of the configured sip_connections ({known})")
    if socket_address is None:
        host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::") else config.server.host
        socket_address = (host, config.server.port)
    return originate(normalise_number(country, number), sip.gateway, sip.number_format,
                     call_uuid, agent_id, socket_address,
                     config.freeswitch.originate_timeout_s, caller_id or config.agents[agent_id].number, sip.dtmf)
