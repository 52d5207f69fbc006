"""The transfer action: bridge the caller to a number, hand the call to another agent, or refer it away.

To a number (captures 07, 09, 10, 16), sent with the `speak` of `messages.transferring` in one write (FreeSWITCH
runs sendmsg executes in order, so the bridge is on the wire while the message still plays):
    detect_speech pause                                   (only when speech recognition runs)
    multiset continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false
             transfer_ringback=%(2000,4000,440,480)
    bridge {ignore_early_media=true,origination_uuid=U}[leg_timeout=20,sip_h_X-Name=v]sofia/gateway/GW/+33...
The bridge's CHANNEL_EXECUTE_COMPLETE carries `variable_originate_disposition` (transfer/outcome.py).
A guard (max_ring_s + GUARD_MARGIN_S from the bridge's CHANNEL_EXECUTE) covers a FreeSWITCH that never
reports: it is disarmed by CHANNEL_BRIDGE and on expiry sends `uuid_kill <U> ALLOTTED_TIMEOUT`; once answered,
the call's max_call_s bounds the wait. When nobody takes the call the agent says the matching message at once
(the brain is not waited for) and the conversation goes on.

To another agent (captures 12, 18): `uuid_transfer <uuid> <extension> XML <context>`; the old session stores the
call state, writes no record and closes its socket without `exit` (the context's `hand_off`); the new session
resumes the record (call/session.py) and says the agent's `handoff_greeting`.

`mode: refer`: `deflect sip:<number>@<gateway>` (SIP REFER). It frees the trunk channels but the caller
cannot be taken back: once the far end accepts the REFER the call leaves FreeSWITCH.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Optional

import gevent
import gevent.queue

from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext, Services
from controller.brain.base import ActionSpec
from controller.clock import Clock
from controller.config.agent import AgentConfig
from controller.esl import commands
from controller.esl.frames import CallHangup, CommandError, Frame
from controller.esl.session import Execution
from controller.esl.values import DialStringError, validate_header_value
from controller.phrases import base_language, phrase, which_one
from controller.templating import TemplateError, is_template, render
from controller.transfer.destinations import DestinationIndex, Resolution, Target
from controller.transfer.directory import numbers_file, targets_for
from controller.transfer.outcome import MESSAGE_FOR, classify_disposition

log = logging.getLogger("switchboard.transfer")
GUARD_MARGIN_S = 5.0
RINGBACK = {"fr": "%(1500,3500,440)"}
DEFAULT_RINGBACK = "%(2000,4000,440,480)"
LISTED_DESTINATIONS = 8


@dataclass
class Ringing:
    """Monotonic instants of one bridge: sent, started (its CHANNEL_EXECUTE), answered, ended."""

    sent: float
    started: Optional[float] = None
    answered: Optional[float] = None
    ended: Optional[float] = None
    guard_fired: bool = False


@register
class TransferAction(Action):
    """Transfers the caller to one configured destination; see the module docstring for the wire."""

    type = "transfer"
    fillable = ("destination",)

    def __init__(self, config: Any, agent: AgentConfig, services: Services) -> None:
        super().__init__(config, agent, services)
        self.numbers_path = numbers_file(services.config.numbers_dir, agent.id, config.name)
        self._stamp = self._file_stamp()
        self._index = self._build_index()

    # ------------------------------------------------------------------ what the brain sees
    def schema(self) -> dict[str, Any]:
        targets = self._index.targets
        listed = "; ".join(f"{t.id}: {t.description}" for t in targets[:LISTED_DESTINATIONS])
        more = f" (and {len(targets) - LISTED_DESTINATIONS} more)" if len(targets) > LISTED_DESTINATIONS else ""
        hint = f"the destination id or its description. Destinations: {listed}{more}" if targets else "unused"
        return {"type": "object", "additionalProperties": False,
                "properties": {"destination": {"type": "string", "maxLength": 500, "description": hint}}}

    def spec(self, ctx: ActionContext) -> ActionSpec:
        spec = super().spec(ctx)
        schedule = self.config.schedule
        now = ctx.clock.now()
        if schedule is None or schedule.is_open(now):
            return spec
        opening = schedule.next_opening(now)
        return dataclasses.replace(spec, state="closed", next_opening=opening.isoformat() if opening else None)

    def resolves(self, field: str, text: str) -> bool | None:
        """Whether the caller's answer to "which one?" names exactly one destination."""
        return field == "destination" and bool(text.strip()) and self._current_index().resolve(text).target is not None

    # ------------------------------------------------------------------ the run
    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        schedule = self.config.schedule
        now = ctx.clock.now()
        if schedule is not None and not schedule.is_open(now):
            opening = schedule.next_opening(now)
            return ActionOutcome("closed", say=self._message(ctx, "closed"), progress=False,
                                 detail={"next_opening": opening.isoformat() if opening else None})
        resolution = self._current_index().resolve(arguments.get("destination"))
        if resolution.target is None:
            return self._refused(ctx, resolution, arguments.get("destination"))
        target = resolution.target
        detail: dict[str, Any] = {"destination": target.id, "description": target.description, "kind": target.kind,
                                  "matched": resolution.how}
        if target.agent:
            return self._hand_off(ctx, target, detail)
        if self.config.mode == "refer":
            return self._refer(ctx, target, detail)
        return self._bridge(ctx, target, detail)

    def _refused(self, ctx: ActionContext, resolution: Resolution, asked: Any) -> ActionOutcome:
        """No single destination: nothing is dialled, and the agent asks which one (listing a few)."""
        ambiguous = resolution.how == "ambiguous"
        close = list(resolution.candidates if ambiguous else self._index.targets[:5])
        total = len(resolution.candidates) if ambiguous else len(self._index)
        names = [t.description for t in close if t.description]
        ask = which_one(ctx.language, names if total <= 4 and len(names) == total else [])
        ctx.log.info("transfer %s: %s for %r (best %.2f, runner-up %.2f); nothing dialled",
                     self.name, resolution.how, str(asked or "")[:80], resolution.score, resolution.runner_up)
        # "ambiguous" whenever the agent asks which one: the conversation then tries the caller's next words
        # as the destination (Action.resolves); `matched` says why none was chosen.
        reason = "ambiguous" if len(self._index) > 1 else resolution.how
        return ActionOutcome("refused", say=ask, progress=False,
                             detail={"reason": reason, "matched": resolution.how, "field": "destination",
                                     "choices": [t.id for t in close[:5]]})

    def _bridge(self, ctx: ActionContext, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        clock = ctx.clock
        connection = self.services.config.sip_connections.get(self.config.sip_connection or "")
        if connection is None:  # only agent destinations in the YAML, numbers imported later
            ctx.log.error("transfer %s: %s is an imported number but the action has no SIP connection; "
                          "set sip_connection or default_sip_connection", self.name, target.number)
            return self._take_back(ctx, "failed", {**detail, "cause": "NO_SIP_CONNECTION"})
        peer = str(uuidlib.uuid4())
        headers, dropped = self._headers(ctx)
        tts = self.agent.speech.tts
        confirm = None
        if self.config.confirm is not None:
            prompt = self._render(ctx, self.config.confirm.prompt)
            confirm = (self.config.confirm.key, prompt, tts.engine, tts.voice)
        caller_id = self.agent.number if connection.caller_id == "agent" and self.agent.number else None
        detail.update(number=target.number, gateway=connection.gateway, origination_uuid=peer,
                      headers=[name for name, _ in headers], dropped_headers=dropped, confirm=confirm is not None,
                      max_ring_s=self.config.max_ring_s, after_bridge=self.config.after_bridge)
        try:
            bridge = commands.bridge(commands.bridge_string(
                target.number, connection.gateway, connection.number_format, self.config.max_ring_s, peer, headers,
                caller_id, connection.codecs, confirm, connection.dtmf))
            leg_vars = commands.multiset_before_bridge(self.config.copy_caller_headers,
                                                       RINGBACK.get(base_language(ctx.language), DEFAULT_RINGBACK))
        except DialStringError as exc:
            ctx.log.error("transfer %s: not dialled: %s", self.name, exc)
            return self._take_back(ctx, "failed", {**detail, "cause": "INVALID_DIAL_STRING", "error": str(exc)})
        if not ctx.has_module("mod_sofia"):
            ctx.log.error("transfer %s: mod_sofia is not loaded, so no number can be dialled", self.name)
            return self._take_back(ctx, "failed", {**detail, "cause": "MODULE_NOT_LOADED"})
        events = ctx.listen()
        ringing = Ringing(clock.monotonic())
        steps = [commands.detect_speech_control("pause")] if ctx.asr_on else []
        try:
            *_, running = ctx.say(self._message(ctx, "transferring"), then=steps + [leg_vars, bridge])
            ctx.wait_quiet()  # FreeSWITCH plays the message, then runs the queued bridge
            ringing.sent = clock.monotonic()
            completion = self._watch(ctx, events, running, peer, ringing)
        except CallHangup as hangup:
            result = "answered" if ringing.answered is not None else "abandoned"
            hangup.outcome = ActionOutcome(result, detail={**detail, **self._timings(clock, ringing),
                                                           "cause": "CALLER_HANGUP"})
            raise
        finally:
            ctx.unlisten(events)
        disposition = completion.var("originate_disposition") if completion is not None else "NO_COMPLETION"
        outcome = classify_disposition(disposition)
        result = "answered" if ringing.answered is not None else outcome.result
        detail.update(self._timings(clock, ringing), disposition=disposition, guard_fired=ringing.guard_fired)
        if result == "answered":
            return self._after_bridge(ctx, detail)
        if outcome.result == "abandoned":  # ORIGINATOR_CANCEL with the caller still reported up: they are leaving
            return ActionOutcome("abandoned", detail=detail, progress=False)
        if ctx.asr_on:
            ctx.start_execute(commands.detect_speech_control("resume"))
        return self._take_back(ctx, result, {**detail, "cause": outcome.cause})

    def _watch(self, ctx: ActionContext, events: gevent.queue.Queue, bridge: Execution, peer: str,
               ringing: Ringing) -> Optional[Frame]:
        """Follow the bridge until its completion (returned) or until giving up on FreeSWITCH (None)."""
        clock, execute_timeout = ctx.clock, self.services.execute_timeout
        deadline = ringing.sent + execute_timeout
        while not bridge.done:
            now = clock.monotonic()
            if now >= deadline:
                if ringing.guard_fired or ringing.started is None:
                    ctx.log.error("transfer %s: FreeSWITCH never completed the bridge; giving the caller back",
                                  self.name)
                    return None
                self._kill(ctx, peer, "ALLOTTED_TIMEOUT" if ringing.answered is None else "NORMAL_CLEARING")
                ringing.guard_fired = True
                deadline = clock.monotonic() + execute_timeout
                continue
            try:
                frame = events.get(timeout=deadline - now)
            except gevent.queue.Empty:
                continue
            if frame is None:
                raise CallHangup(ctx.hangup_cause() or "SOCKET_CLOSED")
            if frame.name == "CHANNEL_EXECUTE" and frame.get("Application-UUID") == bridge.app_uuid:
                ringing.started = clock.monotonic()
                deadline = ringing.started + clock.scaled(self.config.max_ring_s + GUARD_MARGIN_S)
            elif frame.name == "CHANNEL_BRIDGE" and ringing.answered is None:
                ringing.answered = clock.monotonic()
                deadline = max(ctx.deadline, ringing.answered)  # the call's max duration bounds the talk
        ringing.ended = clock.monotonic()
        return bridge.wait(0)

    def _kill(self, ctx: ActionContext, peer: str, cause: str) -> None:
        ctx.log.warning("transfer %s: no answer from FreeSWITCH in time; ending target leg %s (%s)",
                        self.name, peer, cause)
        try:
            ctx.api(commands.uuid_kill(peer, cause))
        except CommandError as exc:
            ctx.log.info("uuid_kill %s: %s", peer, exc)

    def _after_bridge(self, ctx: ActionContext, detail: dict[str, Any]) -> ActionOutcome:
        """The answered transfer ended (the far end hung up): hang up, or take the caller back."""
        if self.config.after_bridge == "hangup":
            return ActionOutcome("answered", detail=detail, end_call=True)
        if ctx.asr_on:
            ctx.start_execute(commands.detect_speech_control("resume"))
        back = phrase(ctx.language, "not_yet")
        ctx.say(back)
        return ActionOutcome("answered", detail={**detail, "said": back})

    def _take_back(self, ctx: ActionContext, result: str, detail: dict[str, Any]) -> ActionOutcome:
        """Nobody took the call: the agent says so right away; the brain learns the result."""
        message = self._message(ctx, MESSAGE_FOR[result])
        ctx.say(message)
        return ActionOutcome(result, detail={**detail, "said": message}, progress=False)

    # ------------------------------------------------------------------ hand-off and refer
    def _hand_off(self, ctx: ActionContext, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        """`uuid_transfer <uuid> <extension> XML <context>`, then leave the channel to the next agent's session
        (the context stores the call first and lets go without a command: capture 18)."""
        other = self.services.config.agents[target.agent]
        command = commands.uuid_transfer(ctx.uuid, other.extension, other.context)
        detail.update(agent=target.agent, extension=other.extension, context=other.context)
        ctx.say(self._message(ctx, "transferring"))
        ctx.wait_quiet()
        if ctx.asr_on:
            ctx.execute(commands.detect_speech_control("stop"))
        try:
            ctx.hand_off(command, target.agent, detail)
        except CommandError as exc:
            ctx.log.error("hand-off to %s refused by FreeSWITCH: %s", target.agent, exc)
            return self._take_back(ctx, "failed", {**detail, "cause": "TRANSFER_REFUSED", "error": str(exc)})
        ctx.log.info("call handed to agent %s at %s@%s; this session let go of the channel",
                     target.agent, other.extension, other.context)
        return ActionOutcome("handed_off", detail=detail, handed_off=True)

    def _refer(self, ctx: ActionContext, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        """`deflect sip:<number>@<gateway>`: the far end takes the call over; FreeSWITCH then hangs up."""
        connection = self.services.config.sip_connections.get(self.config.sip_connection or "")
        if connection is None:
            return self._take_back(ctx, "failed", {**detail, "cause": "NO_SIP_CONNECTION"})
        deflect = commands.deflect(target.number, connection.gateway, connection.number_format)
        detail.update(number=target.number, mode="refer", refer_to=deflect.arg)
        ctx.say(self._message(ctx, "transferring"))
        ctx.wait_quiet()
        try:
            ctx.execute(deflect)
            if not ctx.wait_hangup(ctx.clock.scaled(self.config.max_ring_s)):
                return self._take_back(ctx, "failed", {**detail, "cause": "REFER_NOT_COMPLETED"})
            raise CallHangup(ctx.hangup_cause())
        except CallHangup as hangup:
            ctx.ended_by_agent()
            hangup.outcome = ActionOutcome("transferred", detail=detail)
            raise

    # ------------------------------------------------------------------ helpers
    def _headers(self, ctx: ActionContext) -> tuple[list[tuple[str, str]], list[str]]:
        """Configured headers, templates rendered; a value that renders empty (None for an unknown customer) is
        left out, one that fails the checks is dropped; both are logged, and the transfer goes ahead."""
        headers, dropped = [], []
        for header in self.config.sip_headers:
            value = header.value
            if is_template(value):
                try:
                    value = render(value, ctx.variables).strip()
                    if not value:
                        ctx.log.info("transfer %s: header %s left out: its value rendered empty", self.name,
                                     header.name)
                        continue
                    value = validate_header_value(value, f"header {header.name}")
                except (TemplateError, DialStringError) as exc:
                    ctx.log.warning("transfer %s: header %s dropped, the transfer goes ahead: %s",
                                    self.name, header.name, exc)
                    dropped.append(header.name)
                    continue
            headers.append((header.name, value))
        return headers, dropped

    def _render(self, ctx: ActionContext, text: str) -> str:
        try:
            return render(text, ctx.variables)
        except TemplateError as exc:
            ctx.log.error("transfer %s: template failed (%s); saying it without variables", self.name, exc)
            return re.sub(r"{[{%].*?[}%]}", "", text)

    def _message(self, ctx: ActionContext, key: str) -> str:
        messages = self.config.messages
        text = getattr(messages, key) if key in messages.model_fields_set else phrase(ctx.language, f"transfer_{key}")
        return self._render(ctx, text)

    def _timings(self, clock: Clock, ringing: Ringing) -> dict[str, Optional[float]]:
        """Ring and talk time in call seconds (unscaled), for the record."""
        def span(start: Optional[float], end: Optional[float]) -> Optional[float]:
            if start is None or end is None:
                return None
            return round((end - start) / clock.time_scale, 3)
        end = ringing.ended or clock.monotonic()
        return {"ring_s": span(ringing.started, ringing.answered or end), "talk_s": span(ringing.answered, end)}

    def _file_stamp(self) -> Optional[tuple[int, int]]:
        try:
            stat = self.numbers_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _build_index(self) -> DestinationIndex:
        targets, skipped = targets_for(self.config, self.numbers_path)
        if skipped:
            log.warning("%s.%s: %d line(s) of %s skipped (not E.164 or unsafe description); re-import the file",
                        self.agent.id, self.name, skipped, self.numbers_path)
        return DestinationIndex(targets)

    def _current_index(self) -> DestinationIndex:
        """The index, rebuilt (in gevent's threadpool, off the hub) when `numbers import` replaced the file."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._index = gevent.get_hub().threadpool.apply(self._build_index)
        return self._index
