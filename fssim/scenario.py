"""Scenarios: what the caller does and how the far ends behave, as YAML (see examples/scenarios/).

Every duration is in call seconds; the simulator multiplies it by its `time_scale`. A bad file is refused
with the file, the field path and what is allowed, e.g.
`call.yaml: script[2].dtmf: '12x' has characters other than 0-9 * # A-D`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from fssim.causes import CAUSES
from fssim.sounds import SOUNDS

DEFAULT_MODULES = ("mod_dptools", "mod_sofia", "mod_flite", "mod_commands", "mod_event_socket", "mod_avmd",
                   "mod_spandsp", "mod_unimrcp", "mod_pocketsphinx")
TARGET_WORDS = ("busy", "reject", "no_answer", "early_media", "gateway_down", "stuck")
STEP_ACTIONS = ("say", "dtmf", "hold", "unhold", "silence", "hangup", "wait_for", "beep", "audio")
FAULTS = ("short_length", "long_length", "missing_length")
_DTMF = re.compile(r"^[0-9*#A-Da-d]+$")


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class FarEnd:
    """The party a dialled number reaches (a `targets` entry): it answers after `answer_after_s` and talks
    `talk_s`, or fails as its `outcome` says (busy, reject, no_answer...). Bridge legs and originates ring it."""

    outcome: str
    answer_after_s: float = 0.0
    talk_s: float = 0.0
    hangup_after_s: float = 0.0
    presses: str | None = None  # the key a person presses when the bridge asks to confirm (group_confirm_key)


@dataclass(frozen=True)
class Step:
    """One caller action; `after` is the pause before it (for `say`, a pause in the agent's audio)."""

    action: str
    value: Any
    after: float | None = None
    barge_in: bool = False
    talk_over: bool = False  # `say` only: start `after` s after the previous step whatever the agent does


@dataclass(frozen=True)
class Malformed:
    """Corrupt the first frame of `event` with `fault` (robustness tests of the controller's reader)."""

    event: str
    fault: str


@dataclass
class Scenario:
    name: str
    agent: str | None = None
    caller_number: str = "+33612345678"
    caller_name: str | None = None
    destination: str = "agent"
    direction: str = "inbound"  # outbound: a call the agent placed (originate, capture 13)
    answered: bool = False
    sip_headers: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = DEFAULT_MODULES
    speech_format: str = "nlsml"
    speech_confidence: int = 87
    speech_partials: bool = False
    speak_seconds_per_char: float = 0.06
    caller_seconds_per_char: float = 0.06
    playback_seconds: dict[str, float] = field(default_factory=lambda: {"default": 2.0})
    targets: dict[str, FarEnd] = field(default_factory=dict)
    handoffs: dict[str, str] = field(default_factory=dict)
    api_replies: dict[str, str] = field(default_factory=dict)  # command -> the reply FreeSWITCH gives instead
    api_delays: dict[str, float] = field(default_factory=dict)  # command -> call seconds it takes to answer
    script: list[Step] = field(default_factory=list)
    end: str = "hangup"
    end_after_s: float = 2.0
    max_duration_s: float = 300.0
    uuid: str | None = None
    malformed: Malformed | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<scenario>") -> "Scenario":
        """Validate a parsed YAML mapping; raises ScenarioError naming `source` and the field."""
        return _Reader(source).scenario(data)

    def far_end(self, destination: str) -> FarEnd | None:
        """The far end a dialled number reaches, its `targets` key matching with or without a leading '+'."""
        for key in (destination, destination.lstrip("+"), "+" + destination.lstrip("+")):
            if key in self.targets:
                return self.targets[key]
        return None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return Scenario.from_dict(data, str(path))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {message}")

    def number(self, where: str, value: Any, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise self.fail(where, f"{value!r} is not a number >= {minimum}")
        return float(value)

    def text(self, where: str, value: Any) -> str:
        if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
            raise self.fail(where, f"{value!r} is not a non-empty string")
        return str(value)

    def mapping(self, where: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def scenario(self, data: Any) -> Scenario:
        data = self.mapping("top level", data)
        known = set(Scenario.__dataclass_fields__) - {"caller_number", "caller_name"} | {"caller"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise self.fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(known))}")
        if "name" not in data:
            raise self.fail("name", "missing; give the scenario a name")
        out = Scenario(name=self.text("name", data["name"]))
        if data.get("agent") is not None:
            out.agent = self.text("agent", data["agent"])
        caller = data.get("caller", {})
        if isinstance(caller, (str, int)):
            caller = {"number": caller}
        caller = self.mapping("caller", caller)
        number = caller.get("number", out.caller_number)
        if not isinstance(number, str):
            raise self.fail("caller.number", f"{number!r} is not a string: quote it ('+33612345678'), YAML reads "
                            "an unquoted +33... as a number and drops the +")
        out.caller_number = self.text("caller.number", number)
        if caller.get("name") is not None:
            out.caller_name = self.text("caller.name", caller["name"])
        out.destination = self.text("destination", data.get("destination", out.destination))
        out.direction = data.get("direction", out.direction)
        if out.direction not in ("inbound", "outbound"):
            raise self.fail("direction",
                            f"{out.direction!r}; allowed: inbound (a caller), outbound (the agent placed it)")
        out.answered = bool(data.get("answered", False))
        for name in ("sip_headers", "variables"):
            values = self.mapping(name, data.get(name, {}))
            setattr(out, name, {str(k): self.text(f"{name}.{k}", v) for k, v in values.items()})
        for header in out.sip_headers:
            if not re.match(r"^(X-|P-|K-)[A-Za-z0-9-]+$", header):
                raise self.fail(f"sip_headers.{header}", "FreeSWITCH keeps only X-/P-/K- headers as sip_h_ variables")
        if "modules" in data:
            modules = data["modules"]
            if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
                raise self.fail("modules", "expected a list of module names like mod_flite")
            out.modules = tuple(modules)
        out.speech_format = data.get("speech_format", out.speech_format)
        if out.speech_format not in ("nlsml", "json"):
            raise self.fail("speech_format", f"{out.speech_format!r}; allowed: nlsml, json")
        out.speech_confidence = int(self.number("speech_confidence", data.get("speech_confidence", 87)))
        out.speech_partials = bool(data.get("speech_partials", False))
        for name in ("speak_seconds_per_char", "caller_seconds_per_char", "end_after_s"):
            setattr(out, name, self.number(name, data.get(name, getattr(out, name))))
        out.max_duration_s = self.number("max_duration_s", data.get("max_duration_s", out.max_duration_s), 0.1)
        out.playback_seconds = self.playback(data.get("playback_seconds", 2.0))
        out.targets = {str(k): self.far_end(f"targets.{k}", v)
                       for k, v in self.mapping("targets", data.get("targets", {})).items()}
        out.handoffs = {str(k): self.text(f"handoffs.{k}", v)
                        for k, v in self.mapping("handoffs", data.get("handoffs", {})).items()}
        for command, reply in self.mapping("api_replies", data.get("api_replies", {})).items():
            reply = self.text(f"api_replies.{command}", reply)
            if not reply.startswith(("+OK", "-ERR", "-USAGE")):
                raise self.fail(f"api_replies.{command}", f"{reply!r}; a FreeSWITCH reply starts with +OK, -ERR or -USAGE")
            out.api_replies[str(command)] = reply.rstrip("\n") + "\n"
        out.api_delays = {str(command): self.number(f"api_delays.{command}", seconds)
                          for command, seconds in self.mapping("api_delays", data.get("api_delays", {})).items()}
        script = data.get("script", [])
        if not isinstance(script, list):
            raise self.fail("script", "expected a list of steps")
        out.script = [self.step(f"script[{i}]", step) for i, step in enumerate(script)]
        out.end = data.get("end", "hangup")
        if out.end not in ("hangup", "wait"):
            raise self.fail("end", f"{out.end!r}; allowed: hangup (the caller hangs up after the script), wait")
        if data.get("uuid") is not None:
            out.uuid = self.text("uuid", data["uuid"])
        if data.get("malformed") is not None:
            bad = self.mapping("malformed", data["malformed"])
            fault = bad.get("fault")
            if fault not in FAULTS:
                raise self.fail("malformed.fault", f"{fault!r}; allowed: {', '.join(FAULTS)}")
            out.malformed = Malformed(self.text("malformed.event", bad.get("event")), fault)
        return out

    def playback(self, value: Any) -> dict[str, float]:
        if isinstance(value, dict):
            out = {str(k): self.number(f"playback_seconds.{k}", v) for k, v in value.items()}
            out.setdefault("default", 2.0)
            return out
        return {"default": self.number("playback_seconds", value)}

    def far_end(self, where: str, value: Any) -> FarEnd:
        if isinstance(value, str):
            if value not in TARGET_WORDS:
                raise self.fail(where, f"{value!r}; allowed: {', '.join(TARGET_WORDS)} or a mapping")
            return FarEnd(value)
        value = self.mapping(where, value)
        if "outcome" in value:
            return self.far_end(where, value["outcome"])
        if "caller_hangs_up_after_s" in value:
            return FarEnd("caller_hangs_up", hangup_after_s=self.number(
                f"{where}.caller_hangs_up_after_s", value["caller_hangs_up_after_s"]))
        if "answer_after_s" in value:
            presses = value.get("presses")
            if presses is not None and not re.fullmatch(r"[0-9*#]", str(presses)):
                raise self.fail(f"{where}.presses", f"{presses!r} is not one key 0-9 * #")
            return FarEnd("answer", self.number(f"{where}.answer_after_s", value["answer_after_s"]),
                          self.number(f"{where}.talk_s", value.get("talk_s", 10.0)),
                          presses=None if presses is None else str(presses))
        raise self.fail(where, "expected {answer_after_s, talk_s}, {caller_hangs_up_after_s} or one of "
                        + ", ".join(TARGET_WORDS))

    def step(self, where: str, value: Any) -> Step:
        if isinstance(value, str) and value in ("unhold", "hangup", "beep"):
            value = {value: True}
        value = self.mapping(where, value)
        actions = [key for key in value if key in STEP_ACTIONS]
        extra = sorted(set(value) - set(STEP_ACTIONS) - {"after", "barge_in", "talk_over"})
        if len(actions) != 1 or extra:
            raise self.fail(where, f"needs exactly one of {', '.join(STEP_ACTIONS)} (plus after, barge_in, "
                            "talk_over)")
        action = actions[0]
        arg = value[action]
        after = self.number(f"{where}.after", value["after"]) if "after" in value else None
        at = f"{where}.{action}"
        if action == "say":
            arg = self.text(at, arg)
        elif action == "dtmf":
            arg = self.text(at, arg)
            if not _DTMF.match(arg):
                raise self.fail(at, f"{arg!r} has characters other than 0-9 * # A-D")
        elif action in ("silence",):
            arg = self.number(at, arg)
        elif action == "hold":
            arg = self.hold(at, arg)
        elif action == "audio":
            arg = self.audio(at, arg)
        elif action == "hangup":
            arg = "NORMAL_CLEARING" if arg is True else self.text(at, arg).upper()
            if arg not in CAUSES:
                raise self.fail(at, f"{arg!r} is not a FreeSWITCH hangup cause (e.g. NORMAL_CLEARING, USER_BUSY)")
        elif action == "wait_for":
            spec = self.mapping(at, arg)
            extra = sorted(set(spec) - {"app", "unicast", "count"})
            if extra or ("app" in spec) == ("unicast" in spec):
                raise self.fail(f"{at}.{extra[0]}" if extra else at,
                                "expected {app: NAME, count: N} or {unicast: N} (the controller's Nth unicast)")
            if "unicast" in spec:
                arg = ("unicast", int(self.number(f"{at}.unicast", spec["unicast"], 1)))
            else:
                arg = (self.text(f"{at}.app", spec["app"]), int(self.number(f"{at}.count", spec.get("count", 1), 1)))
        if value.get("talk_over") and action != "say":
            raise self.fail(f"{where}.talk_over", "only a `say` step talks over the agent")
        return Step(action, arg, after, bool(value.get("barge_in", False)), bool(value.get("talk_over", False)))

    def sound(self, where: str, value: Any) -> str:
        if value not in SOUNDS:
            raise self.fail(where, f"{value!r}; allowed: {', '.join(SOUNDS)}")
        return value

    def hold(self, where: str, value: Any) -> tuple[float | None, str | None]:
        """`hold: true` (until unhold), `hold: 6` (seconds), `hold: {seconds: 30, audio: music}`."""
        if value is True:
            return None, None
        if not isinstance(value, dict):
            return self.number(where, value), None
        extra = sorted(set(value) - {"seconds", "audio"})
        if extra:
            raise self.fail(f"{where}.{extra[0]}", "unknown field; allowed: seconds, audio")
        seconds = self.number(f"{where}.seconds", value["seconds"]) if "seconds" in value else None
        audio = self.sound(f"{where}.audio", value["audio"]) if "audio" in value else None
        return seconds, audio

    def audio(self, where: str, value: Any) -> tuple[str, float | None]:
        """`audio: music` (from now on) or `audio: {sound: speech, seconds: 4}` (then silence again)."""
        if isinstance(value, str):
            return self.sound(where, value), None
        value = self.mapping(where, value)
        extra = sorted(set(value) - {"sound", "seconds"})
        if extra or "sound" not in value:
            raise self.fail(f"{where}.{extra[0]}" if extra else f"{where}.sound",
                            "unknown field; allowed: sound, seconds" if extra else "missing; e.g. sound: music")
        seconds = self.number(f"{where}.seconds", value["seconds"]) if "seconds" in value else None
        return self.sound(f"{where}.sound", value["sound"]), seconds
