"""A transfer of the caller's channel (`uuid_transfer`, the `transfer` app): back through the dialplan.

The channel is routed again (CS_ROUTING, then CS_EXECUTE) to the destination's extension. For a socket
extension (capture 12) the old socket app completes, the dialplan runs ring_ready, set switchboard_agent and
socket, and a second session opens for the same uuid; a destination the scenario has no handoff for finds no
route and the channel hangs up with NO_ROUTE_DESTINATION.
"""
from __future__ import annotations

import uuid as uuidlib

from fssim.apps import APPS
from fssim.connection import CONNECT_TIMEOUT_S
from fssim.ports import CallPort


def transfer(call: CallPort, destination: str, dialplan: str, context: str) -> None:
    """Route the channel to `destination` in `dialplan`/`context` and run what that extension runs.

    The old session gets these events only once the new session has parked (sent `connect`), as capture 18 shows
    it (they reach it in one write, as the new session connects): a controller that waits for its socket app's
    completion to `exit` therefore ends the new park, as it does on FreeSWITCH."""
    ch = call.channel
    if not ch.up:
        return
    old_conn = call.controlling
    if old_conn is not None:
        old_conn.hold_events()
    if call.socket_app is not None:
        call.end_socket_app(unpark=True)
    old = ch.profile
    epoch = call.now_us() // 1_000_000
    source = f"{epoch}:{uuidlib.uuid4()}:bl_xfer:{destination}/{context}/{dialplan}"
    old.index = (old.index or 1) + 1
    old.rdnis, old.destination, old.transfer_source, old.dialplan, old.context = \
        old.destination, destination, source, dialplan, context
    old.created_us = call.now_us()
    for name, value in (("max_forwards", "70"), ("transfer_history", source), ("transfer_source", source)):
        ch.set_var(name, value)
    agent = call.scenario.handoffs.get(destination)
    ch.set_var("DP_MATCH", f"ARRAY::{destination}|:{agent}" if agent else None)
    ch.state, ch.state_number = "CS_ROUTING", 2
    call.fire_callstate("RINGING")
    call.fire("CHANNEL_STATE")
    ch.state, ch.state_number = "CS_EXECUTE", 4
    call.fire_callstate("ACTIVE")
    call.fire("CHANNEL_STATE")
    if agent is None:
        call.note(f"transfer to {destination}: no handoff for it in the scenario, the dialplan finds no route")
        call.hangup("NO_ROUTE_DESTINATION", "dialplan")
        return
    call.note(f"transfer to {destination}: agent {agent} takes the call on a new connection")
    call.session.run_app("ring_ready", "", str(uuidlib.uuid4()), APPS["ring_ready"].handler, by_controller=False)
    call.session.run_app("set", f"switchboard_agent={agent}", str(uuidlib.uuid4()), APPS["set"].handler,
                         by_controller=False)
    address = f"{call.addr[0]}:{call.addr[1]} async full"
    ch.set_var("current_application_response", None)
    ch.set_var("current_application", "socket")
    ch.set_var("current_application_data", address)
    socket_uuid = str(uuidlib.uuid4())
    call.fire("CHANNEL_EXECUTE", after=[("Application", "socket"), ("Application-Data", address),
                                        ("Application-UUID", socket_uuid)])
    ch.set_var("socket_host", call.addr[0])
    new_conn = call.open_connection(address)
    if new_conn is None:
        call.hangup("NORMAL_CLEARING", "dialplan")
    else:
        call.socket_app = socket_uuid
    if old_conn is not None:
        def deliver_when_parked() -> None:
            call.wait_until(lambda: new_conn is None or new_conn.connected or new_conn.closed or not ch.up,
                            CONNECT_TIMEOUT_S)
            old_conn.release_events()
        call.spawn(deliver_when_parked)
