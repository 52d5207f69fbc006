"""The one interface a during-call action sees, and the services of the configuration version its call runs under.

An action never holds the process or the call: it is built once per configuration version with that version's
`Services`, and each run gets an `ActionContext` (the conversation implements it; tests use a fake). So a
`switchboard reload` never reaches a live call: the call keeps the version it started with, every setting of
it (agents, SIP connections, numbers, knowledge sources, timeouts), until it ends; the next call gets the new one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol, Sequence

import gevent.queue

from controller.brain.base import Turn
from controller.clock import Clock
from controller.config.agent import AgentConfig
from controller.config.schema import Config
from controller.esl.commands import App
from controller.esl.frames import Frame
from controller.esl.session import Execution
from controller.latency import Latencies
from controller.state.store import Store

if TYPE_CHECKING:
    from knowledge.search import KnowledgeBase

LoadedSource = tuple[Optional["KnowledgeBase"], Optional[str]]


@dataclass(frozen=True)
class Services:
    """What one configuration version gives the calls that start under it; a reload builds a new one."""

    config: Config
    store: Store
    clock: Clock
    sources: Mapping[str, LoadedSource] = field(default_factory=dict)
    latencies: Latencies = field(default_factory=Latencies)  # the process's: a reload keeps its counts

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def command_timeout(self) -> float:
        return self.config.server.command_timeout_s

    @property
    def execute_timeout(self) -> float:
        return self.config.server.execute_timeout_s

    @property
    def extra_events(self) -> tuple[str, ...]:
        return tuple(self.config.server.extra_events)

    def knowledge(self, source: str) -> LoadedSource:
        """(KnowledgeBase, None), or (None, why it is unavailable): a broken index fails only the RAG action."""
        return self.sources.get(source, (None, f"knowledge source {source!r} was not loaded at start"))


class ActionContext(Protocol):
    """What an action may do to its call: speak, run apps and api commands, wait for events, read and keep
    variables, and leave the channel to another agent. Every wait ends with CallHangup when the caller is gone.

    Timeouts named `timeout_s` are real seconds (an action scales call seconds with `clock.scaled`); `limit_s` of
    `wait_quiet` is in call seconds. The version's services are the action's own (`Action.services`): the call
    runs under the version the action was built for.
    """

    uuid: str
    language: str
    agent: AgentConfig
    clock: Clock
    log: logging.LoggerAdapter
    variables: dict[str, Any]
    asr_on: bool
    deadline: float

    def has_module(self, module: str) -> bool:
        """Whether this FreeSWITCH has `module` loaded (an app of a missing module hangs the caller up)."""

    def say(self, text: str, then: Sequence[App] = ()) -> list[Execution]:
        """Queue the sentence, then the `then` apps in the same write; returns the executions of `then`."""

    def wait_quiet(self, limit_s: float = 120.0) -> None:
        """Block until the agent's queued audio has played (each sentence waited for at most `limit_s` call s)."""

    def execute(self, app: App, timeout_s: Optional[float] = None) -> Frame:
        """Run one app and wait for its completion (the version's execute timeout by default)."""

    def start_execute(self, app: App) -> Execution:
        """Queue one app without waiting."""

    def api(self, command: str) -> str:
        """`api <command>` on the call's socket: the reply body; CommandError on -ERR."""

    def listen(self) -> gevent.queue.Queue:
        """Every event of the call from now on (None when the socket closes), beside the conversation's own."""

    def unlisten(self, queue: gevent.queue.Queue) -> None:
        """Stop a `listen` queue."""

    def next_event(self, timeout_s: Optional[float]) -> Optional[Frame]:
        """The conversation's next event (None on timeout)."""

    def wait_hangup(self, timeout_s: float) -> bool:
        """True once the channel is hung up, False after `timeout_s`."""

    def hangup_cause(self) -> str:
        """The cause FreeSWITCH gave, or NORMAL_CLEARING."""

    def resume_asr(self) -> None:
        """`detect_speech resume` when speech recognition runs."""

    def add_turn(self, who: str, text: str, **extra: Any) -> dict[str, Any]:
        """Append a line to the transcript (caller, agent, system)."""

    def count(self, key: str) -> int:
        """Count `key` once more for this call and return the total (an action's per-call tally; actions are
        shared by every call of their version, so they keep no per-call state themselves)."""

    def push_turn(self, turn: Turn) -> None:
        """Give the conversation a caller turn the action heard (a wait that hears a person)."""

    def restart_silence(self) -> None:
        """Count the caller's silence from now (after a wait, silence before it is not the caller's)."""

    def subscribe(self, events: Sequence[str]) -> None:
        """`event plain <events>` for this call, once per event (idempotent): e.g. a wait's CHANNEL_HOLD."""

    def unicast(self, local_port: int, remote_port: int) -> None:
        """Stream the parked channel's audio to 127.0.0.1:`remote_port` (sendmsg unicast, from `local_port`);
        the next app that runs ends it (capture 15). CommandError when FreeSWITCH refuses."""

    def held(self, seconds: float) -> float:
        """Add `seconds` (call seconds) spent waiting on hold; the call's total so far (`limits.max_hold_s`)."""

    def builtin_hangup(self, reason: str, goodbye: str) -> None:
        """End the call with the built-in hang-up: recorded with `reason`, `goodbye` said first."""

    def ended_by_agent(self) -> None:
        """Record that the agent ends this call (a REFER that the far end took over)."""

    def hand_off(self, command: str, agent_id: str, detail: dict[str, Any]) -> None:
        """Store the call for `agent_id`'s session, send `api <command>` (uuid_transfer) and let go of the channel.

        Only from inside an action's run: the call finishes that action's record entry as `handed_off` (with
        `detail`) before it lets go, because the next session reads the entry at connect. CommandError when
        FreeSWITCH refuses (the call stays with this agent and the entry stays open for the action's own result).
        """
