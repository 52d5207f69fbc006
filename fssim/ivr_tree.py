"""An IVR tree as a scenario describes it (`ivr:`), read and checked with the file and field path of every error.

```yaml
ivr:
  start: main                   # the first menu (default: the first listed)
  timeout_s: 6                  # call seconds the IVR waits for a key after its prompt
  max_failures: 3               # wrong keys or timeouts in a row before it says goodbye and hangs up
  not_understood: "Je n'ai pas compris."
  goodbye: "Au revoir."
  menus:
    main:
      prompt: "Pour le suivi tapez 1, pour une réclamation tapez 2."
      options: {"1": suivi, "2": {goal: reclamation, say: "Service réclamations, bonjour."}}
    suivi: {prompt: "...", options: {...}, pause_s: 5}   # pause_s: silence before the prompt (default 0)
```
An option leads to another menu (its name) or to a goal (`{goal: name, say: text}`; the text defaults to
"goal reached: <name>"), after which the IVR hangs up. Parsing only: fssim/ivr.py plays the tree on a call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

_KEY = re.compile(r"^[0-9*#A-D]$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Goal:
    name: str
    say: str


@dataclass(frozen=True)
class Menu:
    name: str
    prompt: str
    options: dict[str, "str | Goal"]  # key -> the next menu's name, or a goal
    pause_s: float = 0.0  # call seconds of silence before the prompt (an IVR that takes its time)


@dataclass(frozen=True)
class IvrTree:
    menus: dict[str, Menu]
    start: str
    timeout_s: float = 6.0
    max_failures: int = 3
    not_understood: str = "Je n'ai pas compris."
    goodbye: str = "Au revoir."
    goals: tuple[str, ...] = ()


Fail = Callable[[str, str], Exception]  # (field path, message) -> the scenario's error


def read_ivr(value: Any, fail: Fail) -> IvrTree:
    """Check an `ivr:` mapping; `fail(where, message)` builds the error naming the file and the field."""
    if not isinstance(value, dict):
        raise fail("ivr", f"expected a mapping with menus, got {type(value).__name__}")
    allowed = {"start", "timeout_s", "max_failures", "not_understood", "goodbye", "menus"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise fail(f"ivr.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")
    raw_menus = value.get("menus")
    if not isinstance(raw_menus, dict) or not raw_menus:
        raise fail("ivr.menus", "expected a mapping of menu name -> {prompt, options}")
    menus = {str(name): _menu(str(name), spec, fail) for name, spec in raw_menus.items()}
    goals: list[str] = []
    for menu in menus.values():
        for key, target in menu.options.items():
            if isinstance(target, Goal):
                goals.append(target.name)
            elif target not in menus:
                raise fail(f"ivr.menus.{menu.name}.options.{key}",
                           f"{target!r} is not a menu; allowed: {', '.join(menus)} or {{goal: name}}")
    start = str(value.get("start", next(iter(menus))))
    if start not in menus:
        raise fail("ivr.start", f"{start!r} is not a menu; allowed: {', '.join(menus)}")
    timeout = value.get("timeout_s", 6.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0.1 <= timeout <= 120:
        raise fail("ivr.timeout_s", f"{timeout!r} is not a number of seconds between 0.1 and 120")
    failures = value.get("max_failures", 3)
    if isinstance(failures, bool) or not isinstance(failures, int) or not 1 <= failures <= 10:
        raise fail("ivr.max_failures", f"{failures!r} is not a whole number between 1 and 10")
    texts = {name: _text(f"ivr.{name}", value.get(name, default), fail)
             for name, default in (("not_understood", "Je n'ai pas compris."), ("goodbye", "Au revoir."))}
    return IvrTree(menus, start, float(timeout), failures, texts["not_understood"], texts["goodbye"], tuple(goals))


def _text(where: str, value: Any, fail: Fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(where, f"{value!r} is not a non-empty text")
    return value


def _menu(name: str, spec: Any, fail: Fail) -> Menu:
    where = f"ivr.menus.{name}"
    if not _NAME.match(name):
        raise fail(where, "a menu name is 1..64 letters, digits, _ . -")
    if not isinstance(spec, dict) or set(spec) - {"prompt", "options", "pause_s"}:
        raise fail(where, "expected {prompt: text, options: {key: menu or {goal: name}}, pause_s: seconds}")
    pause = spec.get("pause_s", 0.0)
    if isinstance(pause, bool) or not isinstance(pause, (int, float)) or not 0 <= pause <= 120:
        raise fail(f"{where}.pause_s", f"{pause!r} is not a number of seconds between 0 and 120")
    prompt = _text(f"{where}.prompt", spec.get("prompt"), fail)
    raw = spec.get("options")
    if not isinstance(raw, dict) or not raw:
        raise fail(f"{where}.options", "expected a mapping of key -> next menu or {goal: name, say: text}")
    options: dict[str, str | Goal] = {}
    for key, target in raw.items():
        key = str(key)
        at = f"{where}.options.{key}"
        if not _KEY.match(key):
            raise fail(at, f"{key!r} is not one key 0-9 * # A-D (quote * and #)")
        if isinstance(target, dict):
            if set(target) - {"goal", "say"} or "goal" not in target:
                raise fail(at, "a goal is {goal: name, say: text}")
            goal = _text(f"{at}.goal", target["goal"], fail)
            options[key] = Goal(goal, _text(f"{at}.say", target.get("say", f"goal reached: {goal}"), fail))
        elif isinstance(target, str) and target:
            options[key] = target
        else:
            raise fail(at, f"{target!r}: expected a menu name or {{goal: name}}")
    return Menu(name, prompt, options, float(pause))
