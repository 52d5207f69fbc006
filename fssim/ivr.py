"""A simulated IVR on the far end of a call (a scenario's `ivr:` tree, fssim/ivr_tree.py), instead of a caller script.

It says each menu's prompt as speech (through the recogniser, like a caller's `say`), then waits `timeout_s` for
a key among those the agent's `send_dtmf` delivered (fssim/dtmf.py; keys pressed during the prompt count, as on
an IVR that takes type-ahead). A key of the menu takes its branch, right or wrong for the caller's goal: the
recording's `ivr` trace keeps the path for assertions. A key that is no option, or no key, counts a failure: the
IVR says `not_understood` and the menu again (a scripted loop); after `max_failures` in a row it says `goodbye`
and hangs up. A goal says its text and hangs up.
"""
from __future__ import annotations

import gevent.queue

from fssim.ivr_tree import Goal, IvrTree
from fssim.ports import CallPort
from fssim.recording import IvrTrace
from fssim.script import CallerScript

PROMPT_PAUSE_S = 0.3  # the IVR speaks once the agent's audio has paused this long
GOAL_HANGUP_S = 0.5
FIRST_PROMPT_WAIT_S = 10.0


class IvrScript:
    """The IVR on one call, running in its own greenlet (in place of the caller's script)."""

    def __init__(self, call: CallPort, tree: IvrTree) -> None:
        self.call = call
        self.tree = tree
        self.voice = CallerScript(call)
        self.trace = call.rec.ivr = IvrTrace()

    @property
    def up(self) -> bool:
        return self.call.channel.up

    def run(self) -> None:
        call, tree, trace = self.call, self.tree, self.trace
        call.wait_until(lambda: call.answered.is_set() or not self.up)
        # the simulator delivers whole utterances: the first prompt waits for the agent's recogniser (at most
        # FIRST_PROMPT_WAIT_S), where a real one would hear most of a prompt begun before it started
        call.wait_until(lambda: call.asr.listening or not self.up, timeout_s=FIRST_PROMPT_WAIT_S)
        menu, failures, retry = tree.menus[tree.start], 0, False
        while self.up:
            trace.path.append(menu.name)
            if menu.pause_s and not retry:
                call.sleep(menu.pause_s)
            self.voice.say(f"{tree.not_understood} {menu.prompt}" if retry else menu.prompt, PROMPT_PAUSE_S)
            key = self._key()
            if not self.up:
                break
            target = menu.options.get(key or "")
            if target is None:
                trace.keys.append((menu.name, key or "", "invalid" if key else "timeout"))
                failures += 1
                call.note(f"ivr {menu.name}: {'key ' + key + ' is no option' if key else 'no key'} "
                          f"({failures}/{tree.max_failures})")
                if failures >= tree.max_failures:
                    self._end("failures", tree.goodbye)
                    return
                retry = True
                continue
            trace.keys.append((menu.name, key or "", "option"))
            failures, retry = 0, False
            if isinstance(target, Goal):
                trace.goal = target.name
                call.note(f"ivr {menu.name}: key {key} reaches goal {target.name}")
                self._end("goal", target.say)
                return
            call.note(f"ivr {menu.name}: key {key} leads to menu {target}")
            menu = tree.menus[target]
        trace.ended = trace.ended or "hangup"

    def _key(self) -> str | None:
        try:
            return self.call.keys_heard.get(timeout=self.call.clock.scaled(self.tree.timeout_s))
        except gevent.queue.Empty:
            return None

    def _end(self, how: str, text: str) -> None:
        self.trace.ended = how
        self.voice.say(text, PROMPT_PAUSE_S)
        self.call.sleep(GOAL_HANGUP_S)
        if self.up:
            self.call.note(f"the ivr hangs up ({how})")
            self.call.hangup("NORMAL_CLEARING", "caller")
