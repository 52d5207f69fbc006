"""One CallSession per call: the socket set-up, the three moments (ringing -> in call -> ended), the record.

The call reads straight down: set up the socket, run the before-call workflows while it rings, answer, hand the
call to the conversation, and whatever ends it (the caller hanging up surfaces as CallHangup from any wait),
store the record before sending `exit`. A call handed to another agent stores its state and lets go of the socket
without `exit` instead (captures 12, 18); the next agent's session continues the same record.
The call keeps the configuration version it was connected under (call/version.py) until it ends.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from controller.call.before_call import run_before_call
from controller.call.conversation import Conversation
from controller.call.placed import continue_placed
from controller.call.record import CallRecord, Moment
from controller.call.version import AgentPieces, ConfigVersion
from controller.esl import commands
from controller.esl.frames import CallHangup, CommandError, EslError, EslTimeout
from controller.esl.modules import LoadedModules
from controller.esl.session import EslSession
from controller.log import call_logger

LINGER_S = 30
CallEnded = Callable[["CallSession", dict[str, Any]], None]


class CallSession:
    """Owns one call from the socket's `connect` to the record stored in Redis."""

    def __init__(self, esl: EslSession, version: ConfigVersion, on_ended: Optional[CallEnded] = None) -> None:
        self.esl = esl
        self.version = version
        self.services = version.services
        self.clock = version.services.clock
        self.on_ended = on_ended
        self.log = call_logger("-")
        self.record = CallRecord(version.services.store, self.clock, self.log,
                                 redact_digits=version.services.config.privacy.redact_digit_runs,
                                 latencies=version.services.latencies)
        self.pieces: Optional[AgentPieces] = None
        self.modules: Optional[LoadedModules] = None
        self.conversation: Optional[Conversation] = None
        self.resumed = False
        self.placed_by: Optional[str] = None  # the agent whose outbound slot this call holds (call/placed.py)

    @property
    def uuid(self) -> str:
        return self.esl.uuid

    @property
    def handed_off(self) -> bool:
        """The conversation left the channel to another agent's session (it wrote the state that session reads)."""
        return self.conversation is not None and self.conversation.handed_off

    @property
    def answered_on_connect(self) -> bool:
        return self.esl.channel.get("Answer-State") == "answered"

    # ------------------------------------------------------------------ the call
    def run(self) -> None:
        try:
            self._set_up()
        except (EslError, OSError) as exc:
            self.log.error("socket set-up failed, the dialplan's next action takes the call: %s", exc)
            return
        record = self.record
        try:
            if not self.resumed:
                if self.answered_on_connect:
                    self.log.info("channel already answered: skipping ringing and answer")
                else:
                    record.enter(Moment.RINGING)
                    self._before_call()
                    self.esl.execute(*commands.answer(), timeout=self.services.execute_timeout)
            record.enter(Moment.IN_CALL)
            self.conversation = Conversation(self.esl, record, self.pieces, self.services, self.modules,
                                             resumed=self.resumed)
            self.conversation.run()
            if not self.esl.hungup.is_set() and not self.handed_off:
                record.hangup_by = record.hangup_by or "agent"
                self.esl.hangup("NORMAL_CLEARING")
                self.esl.hungup.wait(timeout=self.services.command_timeout)
        except CallHangup as hangup:
            if self.esl.ended_here:  # this side cut it (a flood, a broken frame, the drain timeout)
                record.hangup_by, record.hangup_cause = "system", self.esl.ended_here
            else:
                record.hangup_by = record.hangup_by or "caller"
                record.hangup_cause = hangup.cause
        except (EslTimeout, CommandError) as exc:
            self.log.error("FreeSWITCH did not do what was asked (%s); hanging up this call", exc)
            record.hangup_by = "system"
            self._hang_up_quietly("NORMAL_TEMPORARY_FAILURE")
        except Exception:
            self.log.exception("call failed unexpectedly; hanging up this call, others are not affected")
            record.hangup_by = "system"
            self._hang_up_quietly("NORMAL_TEMPORARY_FAILURE")
        finally:
            self._end()

    def _set_up(self) -> None:
        """`connect`, `myevents`, `divert_events on`, `linger 30`, then the extra subscriptions.

        `divert_events on` comes right after `myevents`: without it a running speak/playback swallows the
        speech events and barge-in never fires (capture 11).
        """
        timeout = self.services.command_timeout
        self.esl.connect(timeout=timeout)
        self.log = self.record.log = call_logger(self.uuid or "-")
        self.esl.command(commands.myevents(), timeout)
        self.esl.command(commands.divert_events(), timeout)
        self.esl.command(commands.linger(LINGER_S), timeout)
        extra = self.services.extra_events
        if extra:
            self.esl.command(commands.event_plain(extra), timeout)
        channel = self.esl.channel
        self.pieces = self.version.choose_agent(channel.get("variable_switchboard_agent"), self.log)
        agent = self.pieces.agent
        self.modules = self.version.modules.for_session(self.esl)
        record = self.record
        record.uuid, record.agent_id = self.uuid, agent.id
        record.caller = channel.get("Caller-Caller-ID-Number", "")
        record.missing_modules = self.modules.missing()
        record.sip_headers = {k[len("variable_sip_h_"):]: v for k, v in channel.items()
                              if k.startswith("variable_sip_h_X-")}
        store = self.services.store
        previous = store.call_state(self.uuid) if self.answered_on_connect else {}
        if previous.get("handoff_to"):
            self.resumed = True
            record.resume(previous)
            if previous["handoff_to"] != agent.id:  # a reload removed the agent the call was handed to
                self.log.warning("hand-off to agent %s, which the configuration no longer has: agent %s continues "
                                 "the call", previous["handoff_to"], agent.id)
            self.log.info("hand-off received: continuing the call record with agent %s", agent.id)
        else:
            record.variables = {
                "caller_number": record.caller,
                "caller_name": channel.get("Caller-Caller-ID-Name", ""),
                "destination": channel.get("Caller-Destination-Number", ""),
                "direction": "outbound" if channel.get("Call-Direction") == "outbound" else "inbound",
                "uuid": self.uuid,
                "agent": agent.id,
                "sip_headers": dict(record.sip_headers),
            }
            if record.variables["direction"] == "outbound":  # placed by `switchboard call`: its before-call
                self.placed_by = continue_placed(store, record)
            store.call_started(self.uuid, agent.id, record.caller, record.variables)
        if record.variables.get("direction") == "outbound":
            self.log.info("call to %s placed by agent %s", record.variables.get("destination") or "unknown", agent.id)
        else:
            self.log.info("call from %s for agent %s", record.caller or "unknown", agent.id)

    def _before_call(self) -> None:
        """Before-call workflows, concurrently, within the agent's ring budget; results become call variables."""
        agent, record = self.pieces.agent, self.record
        workflows = agent.actions.before_call
        if not workflows:
            return
        run_before_call(workflows, record, self.uuid, self.clock, agent.ring_budget_s)
        self.services.store.update_call(self.uuid, variables=record.variables)

    def _hang_up_quietly(self, cause: str) -> None:
        try:
            self.esl.hangup(cause)
        except EslError:
            pass

    def _end(self) -> None:
        """Ended: store the record (Redis stream, or the spool) and only then send `exit`."""
        if self.pieces is None:
            return
        record = self.record
        record.hangup_cause = record.hangup_cause or self.esl.hangup_cause or "NORMAL_CLEARING"
        if self.handed_off:  # its state was stored before the socket was let go (Conversation.hand_off)
            self.log.info("call handed off: the next agent's session writes the record")
            return
        record.enter(Moment.ENDED)
        data = record.as_record()
        self.services.store.incr(f"call:{record.agent_id}:{record.hangup_by or 'caller'}:{record.hangup_cause}")
        stream_id = self.services.store.append_record(data)
        self.services.store.call_ended(self.uuid)
        if self.placed_by:
            self.services.store.outbound_release(self.placed_by, self.uuid)
        self.log.info("call ended (%s by %s); record %s", record.hangup_cause, record.hangup_by or "caller",
                      stream_id or "not in redis yet (the line above says where it is)")
        if self.on_ended is not None:
            self.on_ended(self, data)

