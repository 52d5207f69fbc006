"""The transfer action: bridge the caller to a number, hand the call to another agent, or refer it away.

To a number (captures 07, 09, 10, 16), sent with the `speak` of `messages.transferring` in one write (FreeSWITCH
runs sendmsg executes in order, so the bridge is on the wire while the message still plays):
    detect_speech pause                                   (only when speech recognition runs)
    multiset continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false
             transfer_ringback=%(2000,4000,440,480)
    bridge {ignore_early_media=true,origination_uuid=U}[leg_timeout=20,sip_h_X-Name=v]sofia/gateway/GW/+33...
The bridge's CHANNEL_EXECUTE_COMPLETE carries `variable_originate_disposition` (transfer_outcome.classify).
A guard (max_ring_s + GUARD_MARGIN_S from the bridge's CHANNEL_EXECUTE) covers a FreeSWITCH that never
reports: it is disarmed by CHANNEL_BRIDGE and on expiry sends `uuid_kill <U> ALLOTTED_TIMEOUT`; once answered,
the call's max_call_s bounds the wait. When nobody takes the call the agent says the matching message at once
(the brain is not waited for) and the conversation goes on.

To another agent (captures 12, 18): `uuid_transfer <uuid> <extension> XML <context>`; the old session stores the
call state, writes no record and closes its socket without `exit` (esl.py's `release`); the new session resumes
the record (call.py) and says the agent's `handoff_greeting`.

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

from controller.esl.values import (DialStringError, bridge_string, caller_leg_bridge_vars, kill_command, refer_target,
                          transfer_command, validate_header_value)
from controller.esl.session import CallHangup, CommandError
from controller.transfer.directory import numbers_file, targets_for
from controller.templating import TemplateError, is_template, render
from controller.transfer.destinations import DestinationIndex, Resolution, Target
from controller.transfer.outcome import DEFAULT_MESSAGES, MESSAGE_FOR, classify, which_one
from controller.actions.base import Action, ActionOutcome, phrase, register

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

    def __init__(self, config: Any, runtime: Any, agent: Any) -> None:
        super().__init__(config, runtime, agent)
        self.numbers_path = numbers_file(runtime.config.numbers_dir, agent.id, config.name)
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

    def spec(self, call: Any):
        spec = super().spec(call)
        schedule = self.config.schedule
        now = call.clock.now()
        if schedule is None or schedule.is_open(now):
            return spec
        opening = schedule.next_opening(now)
        return dataclasses.replace(spec, state="closed", next_opening=opening.isoformat() if opening else None)

    def resolves(self, field: str, text: str) -> bool | None:
        """Whether the caller's answer to "which one?" names exactly one destination."""
        return field == "destination" and bool(text.strip()) and self._current_index().resolve(text).target is not None

    # ------------------------------------------------------------------ the run
    def run(self, conversation: Any, arguments: dict[str, Any]) -> ActionOutcome:
        schedule = self.config.schedule
        now = conversation.clock.now()
        if schedule is not None and not schedule.is_open(now):
            opening = schedule.next_opening(now)
            return ActionOutcome("closed", say=self._message(conversation, "closed"), progress=False,
                                 detail={"next_opening": opening.isoformat() if opening else None})
        resolution = self._current_index().resolve(arguments.get("destination"))
        if resolution.target is None:
            return self._refused(conversation, resolution, arguments.get("destination"))
        target = resolution.target
        detail: dict[str, Any] = {"destination": target.id, "description": target.description, "kind": target.kind,
                                  "matched": resolution.how}
        if target.agent:
            return self._hand_off(conversation, target, detail)
        if self.config.mode == "refer":
            return self._refer(conversation, target, detail)
        return self._bridge(conversation, target, detail)

    def _refused(self, conversation: Any, resolution: Resolution, asked: Any) -> ActionOutcome:
        """No single destination: nothing is dialled, and the agent asks which one (listing a few)."""
        ambiguous = resolution.how == "ambiguous"
        close = list(resolution.candidates if ambiguous else self._index.targets[:5])
        total = len(resolution.candidates) if ambiguous else len(self._index)
        names = [t.description for t in close if t.description]
        ask = which_one(conversation.language, names if total <= 4 and len(names) == total else [])
        conversation.log.info("transfer %s: %s for %r (best %.2f, runner-up %.2f); nothing dialled",
                              self.name, resolution.how, str(asked or "")[:80], resolution.score, resolution.runner_up)
        # "ambiguous" whenever the agent asks which one: the conversation then tries the caller's next words
        # as the destination (Action.resolves); `matched` says why none was chosen.
        reason = "ambiguous" if len(self._index) > 1 else resolution.how
        return ActionOutcome("refused", say=ask, progress=False,
                             detail={"reason": reason, "matched": resolution.how, "field": "destination",
                                     "choices": [t.id for t in close[:5]]})

    def _bridge(self, conversation: Any, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        call, esl, clock = conversation.call, conversation.esl, conversation.clock
        connection = self.runtime.config.sip_connections.get(self.config.sip_connection or "")
        if connection is None:  # only agent destinations in the YAML, numbers imported later
            conversation.log.error("transfer %s: %s is an imported number but the action has no SIP connection; "
                                   "set sip_connection or default_sip_connection", self.name, target.number)
            return self._take_back(conversation, "failed", {**detail, "cause": "NO_SIP_CONNECTION"})
        peer = str(uuidlib.uuid4())
        headers, dropped = self._headers(conversation)
        tts = self.agent.speech.tts
        confirm = None
        if self.config.confirm is not None:
            prompt = self._render(conversation, self.config.confirm.prompt)
            confirm = (self.config.confirm.key, prompt, tts.engine, tts.voice)
        caller_id = self.agent.number if connection.caller_id == "agent" and self.agent.number else None
        detail.update(number=target.number, gateway=connection.gateway, origination_uuid=peer,
                      headers=[name for name, _ in headers], dropped_headers=dropped, confirm=confirm is not None,
                      max_ring_s=self.config.max_ring_s, after_bridge=self.config.after_bridge)
        try:
            dial = bridge_string(target.number, connection.gateway, connection.number_format, self.config.max_ring_s,
                                 peer, headers, caller_id, connection.codecs, confirm)
            leg_vars = caller_leg_bridge_vars(self.config.copy_caller_headers,
                                              RINGBACK.get(conversation.language[:2], DEFAULT_RINGBACK))
        except DialStringError as exc:
            conversation.log.error("transfer %s: not dialled: %s", self.name, exc)
            return self._take_back(conversation, "failed", {**detail, "cause": "INVALID_DIAL_STRING",
                                                            "error": str(exc)})
        if not call.features.has("mod_sofia"):
            conversation.log.error("transfer %s: mod_sofia is not loaded, so no number can be dialled", self.name)
            return self._take_back(conversation, "failed", {**detail, "cause": "MODULE_NOT_LOADED"})
        events = esl.listen()
        ringing = Ringing(clock.monotonic())
        steps = [("detect_speech", "pause")] if conversation.asr_on else []
        try:
            *_, bridge = conversation.say(self._message(conversation, "transferring"),
                                          then=steps + [("multiset", leg_vars), ("bridge", dial)])
            conversation.wait_quiet()  # FreeSWITCH plays the message, then runs the queued bridge
            ringing.sent = clock.monotonic()
            completion = self._watch(conversation, events, bridge, peer, ringing)
        except CallHangup as hangup:
            result = "answered" if ringing.answered is not None else "abandoned"
            hangup.outcome = ActionOutcome(result, detail={**detail, **self._timings(clock, ringing),
                                                           "cause": "CALLER_HANGUP"})
            raise
        finally:
            esl.unlisten(events)
        disposition = completion.var("originate_disposition") if completion is not None else "NO_COMPLETION"
        outcome = classify(disposition)
        result = "answered" if ringing.answered is not None else outcome.result
        detail.update(self._timings(clock, ringing), disposition=disposition, guard_fired=ringing.guard_fired)
        if result == "answered":
            return self._after_bridge(conversation, detail)
        if outcome.result == "abandoned":  # ORIGINATOR_CANCEL with the caller still reported up: they are leaving
            return ActionOutcome("abandoned", detail=detail, progress=False)
        if conversation.asr_on:
            esl.start_execute("detect_speech", "resume")
        return self._take_back(conversation, result, {**detail, "cause": outcome.cause})

    def _watch(self, conversation: Any, events: gevent.queue.Queue, bridge: Any, peer: str,
               ringing: Ringing) -> Any:
        """Follow the bridge until its completion (returned) or until giving up on FreeSWITCH (None)."""
        clock, esl, runtime = conversation.clock, conversation.esl, conversation.call.runtime
        deadline = ringing.sent + runtime.execute_timeout
        while not bridge.done:
            now = clock.monotonic()
            if now >= deadline:
                if ringing.guard_fired or ringing.started is None:
                    conversation.log.error("transfer %s: FreeSWITCH never completed the bridge; giving the caller "
                                           "back", self.name)
                    return None
                self._kill(conversation, peer, "ALLOTTED_TIMEOUT" if ringing.answered is None else "NORMAL_CLEARING")
                ringing.guard_fired = True
                deadline = clock.monotonic() + runtime.execute_timeout
                continue
            try:
                frame = events.get(timeout=deadline - now)
            except gevent.queue.Empty:
                continue
            if frame is None:
                raise CallHangup(esl.hangup_cause or "SOCKET_CLOSED")
            if frame.name == "CHANNEL_EXECUTE" and frame.get("Application-UUID") == bridge.app_uuid:
                ringing.started = clock.monotonic()
                deadline = ringing.started + clock.scaled(self.config.max_ring_s + GUARD_MARGIN_S)
            elif frame.name == "CHANNEL_BRIDGE" and ringing.answered is None:
                ringing.answered = clock.monotonic()
                deadline = max(conversation.deadline, ringing.answered)  # the call's max duration bounds the talk
        ringing.ended = clock.monotonic()
        return bridge.wait(0)

    def _kill(self, conversation: Any, peer: str, cause: str) -> None:
        conversation.log.warning("transfer %s: no answer from FreeSWITCH in time; ending target leg %s (%s)",
                                 self.name, peer, cause)
        try:
            conversation.esl.api(kill_command(peer, cause))
        except CommandError as exc:
            conversation.log.info("uuid_kill %s: %s", peer, exc)

    def _after_bridge(self, conversation: Any, detail: dict[str, Any]) -> ActionOutcome:
        """The answered transfer ended (the far end hung up): hang up, or take the caller back."""
        if self.config.after_bridge == "hangup":
            return ActionOutcome("answered", detail=detail, end_call=True)
        if conversation.asr_on:
            conversation.esl.start_execute("detect_speech", "resume")
        back = phrase(conversation.language, "not_yet")
        conversation.say(back)
        return ActionOutcome("answered", detail={**detail, "said": back})

    def _take_back(self, conversation: Any, result: str, detail: dict[str, Any]) -> ActionOutcome:
        """Nobody took the call: the agent says so right away; the brain learns the result."""
        message = self._message(conversation, MESSAGE_FOR[result])
        conversation.say(message)
        return ActionOutcome(result, detail={**detail, "said": message}, progress=False)

    # ------------------------------------------------------------------ hand-off and refer
    def _hand_off(self, conversation: Any, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        """`uuid_transfer`, then leave the channel to the next agent's session without a command (capture 18).

        The next session reads the call state as soon as it connects, so everything this session has to say is
        stored before it lets go: the snapshot (with `handoff_to`) before uuid_transfer, the action's result
        right after FreeSWITCH's `+OK`, then `release()` closes our end. No `exit`: an old session that ends
        after the new one has parked ends the new `socket` app, and the dialplan hangs the caller up.
        """
        call, esl = conversation.call, conversation.esl
        other = self.runtime.config.agents[target.agent]
        command = transfer_command(call.uuid, other.extension, other.context)
        detail.update(agent=target.agent, extension=other.extension, context=other.context)
        conversation.say(self._message(conversation, "transferring"))
        conversation.wait_quiet()
        if conversation.asr_on:
            esl.execute("detect_speech", "stop", timeout=call.runtime.execute_timeout)
        entry = next(a for a in reversed(call.actions) if a.name == self.name and a.result == "running")
        entry.result, entry.ended_at = "handed_off", conversation.clock.wall()
        entry.detail.update(detail)
        self.runtime.store.update_call(call.uuid, handoff_to=target.agent, **call.state_snapshot())
        with esl.gate.leaving():
            try:
                esl.api(command)
            except CommandError as exc:
                entry.result = "running"  # the conversation finishes it with the take-back's result
                self.runtime.store.update_call(call.uuid, handoff_to="")
                conversation.log.error("hand-off to %s refused by FreeSWITCH: %s", target.agent, exc)
                return self._take_back(conversation, "failed",
                                       {**detail, "cause": "TRANSFER_REFUSED", "error": str(exc)})
            call.finish_action(entry, "handed_off", **detail)
            call.handed_off = True
            esl.release()
        conversation.log.info("call handed to agent %s at %s@%s; this session let go of the channel",
                              target.agent, other.extension, other.context)
        return ActionOutcome("handed_off", detail=detail, handed_off=True)

    def _refer(self, conversation: Any, target: Target, detail: dict[str, Any]) -> ActionOutcome:
        """`deflect sip:<number>@<gateway>`: the far end takes the call over; FreeSWITCH then hangs up."""
        call, esl, clock = conversation.call, conversation.esl, conversation.clock
        connection = self.runtime.config.sip_connections.get(self.config.sip_connection or "")
        if connection is None:
            return self._take_back(conversation, "failed", {**detail, "cause": "NO_SIP_CONNECTION"})
        refer_to = refer_target(target.number, connection.gateway, connection.number_format)
        detail.update(number=target.number, mode="refer", refer_to=refer_to)
        conversation.say(self._message(conversation, "transferring"))
        conversation.wait_quiet()
        try:
            esl.execute("deflect", refer_to, timeout=call.runtime.execute_timeout)
            if not esl.hungup.wait(timeout=clock.scaled(self.config.max_ring_s)):
                return self._take_back(conversation, "failed", {**detail, "cause": "REFER_NOT_COMPLETED"})
            raise CallHangup(esl.hangup_cause or "NORMAL_CLEARING")
        except CallHangup as hangup:
            call.hangup_by = "agent"
            hangup.outcome = ActionOutcome("transferred", detail=detail)
            raise

    # ------------------------------------------------------------------ helpers
    def _headers(self, conversation: Any) -> tuple[list[tuple[str, str]], list[str]]:
        """Configured headers, templates rendered; a rendered value that fails the checks is dropped and logged."""
        headers, dropped = [], []
        for header in self.config.sip_headers:
            value = header.value
            if is_template(value):
                try:
                    value = validate_header_value(render(value, conversation.call.variables).strip(),
                                                  f"header {header.name}")
                except (TemplateError, DialStringError) as exc:
                    conversation.log.warning("transfer %s: header %s dropped, the transfer goes ahead: %s",
                                             self.name, header.name, exc)
                    dropped.append(header.name)
                    continue
            headers.append((header.name, value))
        return headers, dropped

    def _render(self, conversation: Any, text: str) -> str:
        try:
            return render(text, conversation.call.variables)
        except TemplateError as exc:
            conversation.log.error("transfer %s: template failed (%s); saying it without variables", self.name, exc)
            return re.sub(r"{[{%].*?[}%]}", "", text)

    def _message(self, conversation: Any, key: str) -> str:
        messages = self.config.messages
        text = getattr(messages, key)
        if key not in messages.model_fields_set:
            text = DEFAULT_MESSAGES.get(conversation.language[:2], {}).get(key, text)
        return self._render(conversation, text)

    def _timings(self, clock: Any, ringing: Ringing) -> dict[str, Optional[float]]:
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
