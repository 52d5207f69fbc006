"""`switchboard simulate`: play scenario files through the simulator and print what each call did.

The timeline interleaves the wire (every command the controller sent, the events that mattered) with the
controller's own view from the call record (moments, actions and their results, what was said).
"""
from __future__ import annotations

import json
import sys
import uuid as uuidlib
from pathlib import Path
from typing import Any, Iterable

import click
import gevent

from controller.clock import Clock
from fssim import CallRecording, ScenarioError, Simulator, load_scenario

# Events worth a line in a human timeline; the rest (CHANNEL_STATE, CHANNEL_EXECUTE...) are on the wire anyway.
SHOWN_EVENTS = {"CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "DTMF", "DETECTED_SPEECH",
                "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_EXECUTE_COMPLETE"}


def load_all(paths: Iterable[Path]) -> list[Any]:
    scenarios = []
    for path in paths:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
    return scenarios


def _interesting(line: str) -> bool:
    if " <- " in line or "~~" in line:
        return True
    return any(f"-> {name}" in line for name in SHOWN_EVENTS) or "disconnect-notice" in line


def render_call(recording: CallRecording, record: dict[str, Any] | None) -> str:
    """One call, readable: wire lines, then moments, actions with results, and the transcript."""
    lines = [f"=== {recording.scenario}  uuid={recording.uuid}"]
    lines += ["  " + line for line in recording.timeline() if _interesting(line)]
    if record is None:
        lines.append("  (no call record: the controller did not store one)")
        return "\n".join(lines)
    lines.append("  moments:  " + "  ".join(f"{k}={v[11:23]}" for k, v in record["moments"].items()))
    for action in record["actions"]:
        detail = {k: v for k, v in action["detail"].items() if k not in ("chunks",)}
        lines.append(f"  action:   [{action['moment']}] {action['name']} ({action['type']}) -> {action['result']}"
                     + (f"  {json.dumps(detail, ensure_ascii=False, default=str)[:160]}" if detail else ""))
    for turn in record["transcript"]:
        lines.append(f"  {turn['who']:>7}:  {turn['text']}")
    lines.append(f"  ended:    {record['hangup_cause']} by {record['hangup_by']}  ({record['duration_s']:.1f}s)")
    return "\n".join(lines)


def play(config: Any, runtime: Any, scenarios: list[Any], addr: tuple[str, int], time_scale: float,
         records: dict[str, dict[str, Any]]) -> list[tuple[CallRecording, dict[str, Any] | None]]:
    """Run scenarios one after the other; pairs each recording with the controller's record."""
    simulator = Simulator(addr, time_scale=time_scale)
    results = []
    for scenario in scenarios:
        if scenario.direction == "outbound":
            recording = place(config, scenario, addr, time_scale, runtime)
        else:
            recording = simulator.run(scenario)
            recording.error = not_taken(recording, addr) or recording.error
        for _ in range(50):  # the record is stored just before `exit`: give the call greenlet a moment
            if recording.uuid in records or runtime is None:
                break
            gevent.sleep(0.02)
        results.append((recording, records.get(recording.uuid)))
    return results


def not_taken(recording: CallRecording, addr: tuple[str, int]) -> str | None:
    """Why the controller at `addr` did not take an inbound call, or None when it did. The wire decides (a
    controller run with --controller shares no call records): a taken call gets more than `connect` and `exit`."""
    where = f"{addr[0]}:{addr[1]}"
    sent = {command.name for command in recording.commands}
    if not recording.connections:
        return f"{recording.error}: is `switchboard serve` listening on {where}?"
    if "connect" not in sent:
        return (f"no `connect` from the controller at {where} ({recording.error or 'it closed the connection'}): "
                "is that `switchboard serve`'s server.host:port?")
    if sent <= {"connect", "exit"}:
        return (f"the controller at {where} refused the call (`connect`, then `exit`), as it does at "
                "server.max_connections; its log says why")
    return None


def place(config: Any, scenario: Any, addr: tuple[str, int], time_scale: float, runtime: Any) -> CallRecording:
    """A `direction: outbound` scenario: its agent places the call as `switchboard call` does, through the
    simulator's inbound event socket; the scenario plays whoever answers `destination`. With the controller in
    this process the call goes through the Dialer (its cap, before-call workflows, a record when unanswered)."""
    from controller.call.dialer import Dialer, OverCapacity, PlaceError
    from controller.esl.values import DialStringError
    from controller.esl.inbound import SESSION_START_S, InboundError, originate
    from controller.call.originate import originate_for
    from fssim.inbound import InboundServer
    inbound = InboundServer("simulated", scenario, time_scale)
    port = inbound.start()
    failed = CallRecording(scenario.name, scenario.uuid or "-")
    agent = scenario.agent or config.default_agent
    try:
        call_uuid = scenario.uuid or str(uuidlib.uuid4())
        if runtime is not None:
            dialer = Dialer(config, runtime.store, runtime.clock, "simulated", event_socket=("127.0.0.1", port),
                            socket_address=addr)
            placed = dialer.place(agent, scenario.destination, {}, call_uuid=call_uuid)
            outcome, detail = placed.how, placed.cause
        else:
            command = originate_for(config, agent, scenario.destination, call_uuid, socket_address=addr)
            originated = originate(("127.0.0.1", port), "simulated", command, call_uuid,
                                   config.freeswitch.originate_timeout_s + 15, SESSION_START_S)
            outcome, detail = originated.outcome, originated.detail
        recordings = inbound.recordings(timeout=scenario.max_duration_s * time_scale + 30)
    except (DialStringError, InboundError, PlaceError, OverCapacity) as exc:
        failed.error = f"the agent could not place the call: {exc}"
        return failed
    finally:
        inbound.stop()
    if outcome != "answered" or not recordings:
        failed.error = f"the placed call was {outcome.replace('_', ' ')}: {detail}"
        return failed
    return recordings[0]


def run_simulation(config: Any, scenarios: list[Any], controller_addr: str | None, time_scale: float | None,
                   as_json: bool) -> int:
    scale = time_scale or config.server.time_scale
    records: dict[str, dict[str, Any]] = {}
    runtime = None
    if controller_addr:
        host, _, port = controller_addr.rpartition(":")
        if not port.isdigit():
            click.echo(f"--controller {controller_addr!r}: expected HOST:PORT, e.g. 127.0.0.1:8084", err=True)
            return 2
        addr = (host or "127.0.0.1", int(port))
    else:
        from controller.runtime import Runtime
        runtime = Runtime(config, clock=Clock(scale), port=0)
        runtime.observers.append(lambda call, record: records.__setitem__(record["uuid"], record))
        addr = ("127.0.0.1", runtime.start())
    try:
        results = play(config, runtime, scenarios, addr, scale, records)
    finally:
        if runtime is not None:
            runtime.stop(drain_timeout=5)
    if as_json:
        click.echo(json.dumps([{"scenario": rec.summary(), "record": record} for rec, record in results],
                              ensure_ascii=False, indent=2, default=str))
    else:
        for rec, record in results:
            click.echo(render_call(rec, record) + "\n")
    for rec, _ in results:
        if rec.error:
            click.echo(f"{rec.scenario}: {rec.error}", err=True)
    return 1 if any(rec.error for rec, _ in results) else 0
