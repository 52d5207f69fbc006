"""Every FreeSWITCH command Switchboard sends, one function each, with the exact string in its docstring.

Apps (run on the call's channel with `sendmsg` execute) come back as `App(name, arg)`; api commands and socket
commands as the text written after `api ` or on the socket. Every argument that an operator, a caller or a model
can influence goes through the validators of `values.py` here, so nothing else in the product formats a command.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Literal, NamedTuple, Optional, Sequence

from controller.esl.values import (DialStringError, NumberFormat, format_number, safe_app_arg, validate_codecs,
                                   validate_dtmf, validate_e164, validate_gateway, validate_header_name,
                                   validate_header_value, validate_uuid)

MODULE_RE = re.compile(r"mod_[a-z0-9_]{1,40}")
EVENT_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}|CUSTOM( [A-Za-z0-9_:.-]{1,64}){1,16}")
VARIABLE_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
ENGINE_RE = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}")


class App(NamedTuple):
    """One dialplan application for the call's channel: `execute-app-name: <name>`, the argument as the body."""

    name: str
    arg: Optional[str] = None


# ---------------------------------------------------------------- socket commands (outbound session)
def connect() -> str:
    """`connect`: the first command of an outbound session; the reply carries the channel data."""
    return "connect"


def myevents() -> str:
    """`myevents`: this channel's events only, whatever else the socket would see."""
    return "myevents"


def divert_events() -> str:
    """`divert_events on`: events of a running speak/playback reach the socket (barge-in needs them, capture 11)."""
    return "divert_events on"


def linger(seconds: int) -> str:
    """`linger 30`: after the hang-up the socket stays open that long, so the last events arrive."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 600:
        raise DialStringError("linger", seconds, "must be whole seconds between 1 and 600")
    return f"linger {seconds}"


def event_plain(names: Sequence[str]) -> str:
    """`event plain CHANNEL_HOLD CHANNEL_UNHOLD CUSTOM avmd::beep`: more event types than myevents gives (names
    as FreeSWITCH spells them; custom subclasses follow the word CUSTOM, as in `CUSTOM avmd::beep`)."""
    for name in names:
        if not isinstance(name, str) or not EVENT_RE.fullmatch(name):
            raise DialStringError("event", name, "must be an event name like CHANNEL_HOLD or CUSTOM avmd::beep")
    if not names:
        raise DialStringError("events", names, "name at least one event")
    return "event plain " + " ".join(names)


def unicast(local_port: int, remote_port: int, host: str = "127.0.0.1", native: bool = False) -> list[tuple[str, str]]:
    """The headers of `sendmsg` / `call-command: unicast` / `local-ip: 127.0.0.1` / `local-port: 19501` /
    `remote-ip: 127.0.0.1` / `remote-port: 19502` / `transport: udp` (/ `flags: native`): the parked channel's
    audio as 320-byte L16 datagrams from local-port to remote-port; `+OK`, no event, and the first app that
    runs ends it for good (capture 15)."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise DialStringError("unicast ip", host, "must be an IPv4 address like 127.0.0.1") from None
    for name, port in (("local-port", local_port), ("remote-port", remote_port)):
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise DialStringError(f"unicast {name}", port, "must be a UDP port between 1024 and 65535")
    headers = [("call-command", "unicast"), ("local-ip", str(address)), ("local-port", str(local_port)),
               ("remote-ip", str(address)), ("remote-port", str(remote_port)), ("transport", "udp")]
    return headers + ([("flags", "native")] if native else [])


def auth(password: str) -> str:
    """`auth <password>` (inbound socket): a line break in the password would end the command."""
    if not isinstance(password, str) or not password or any(c in password for c in "\r\n\0"):
        raise DialStringError("event socket password", "(hidden)", "must be one line of text")
    return f"auth {password}"


def filter_on(header: str, value: str) -> str:
    """`filter Unique-ID <uuid>` (inbound socket): only events whose header has that value."""
    if header not in ("Unique-ID", "Job-UUID"):
        raise DialStringError("filter header", header, "allowed: Unique-ID, Job-UUID")
    return f"filter {header} {validate_uuid(value, header)}"


def exit_session() -> str:
    """`exit`: end the session; FreeSWITCH closes the socket (and, on an outbound session, ends the socket app)."""
    return "exit"


# ---------------------------------------------------------------- apps on the call's channel
def answer() -> App:
    """`answer`."""
    return App("answer")


def set_variable(name: str, value: str) -> App:
    """`set playback_terminators=none`: one channel variable."""
    if not isinstance(name, str) or not VARIABLE_RE.fullmatch(name):
        raise DialStringError("variable name", name, "must be 1..64 letters, digits or _")
    return App("set", f"{name}={safe_app_arg(value, name)}")


def speak(part: str) -> App:
    """`speak flite|kal|Bonjour.`: one sentence as `esl.speech.build_speech` made it (engine|voice|text)."""
    return App("speak", safe_app_arg(part, "speech"))


def detect_speech(engine: str, grammar: str, params: dict[str, object], name: str = "switchboard") -> App:
    """`detect_speech unimrcp {no-input-timeout=5000}builtin:speech/transcribe switchboard`: background
    recognition for the whole call (mod_dptools takes the grammar before its name, whatever its usage line says)."""
    if not isinstance(engine, str) or not ENGINE_RE.fullmatch(engine):
        raise DialStringError("asr engine", engine, "must be a name like unimrcp")
    if params:
        grammar = "{" + ",".join(f"{k}={v}" for k, v in params.items()) + "}" + grammar
    return App("detect_speech", safe_app_arg(f"{engine} {grammar} {name}", "detect_speech"))


def detect_speech_control(word: Literal["pause", "resume", "stop"]) -> App:
    """`detect_speech resume` (after each result), `pause` (while a transfer rings), `stop` (before a hand-off)."""
    if word not in ("pause", "resume", "stop"):
        raise DialStringError("detect_speech", word, "allowed: pause, resume, stop")
    return App("detect_speech", word)


AVMD_EVENTS = ("CUSTOM avmd::beep avmd::start avmd::stop",)
AVMD_ARGS = {"inbound": "inbound_channel=1,outbound_channel=0", "outbound": "inbound_channel=0,outbound_channel=1"}


def avmd_start(direction: Literal["inbound", "outbound"]) -> App:
    """`avmd_start inbound_channel=0,outbound_channel=1` on a channel `originate ... &socket(...)` placed (an
    outbound channel, capture 13), `avmd_start inbound_channel=1,outbound_channel=0` on an inbound one: avmd.conf
    skips inbound channels by default and nothing on the wire says it did not start (capture 14)."""
    if direction not in AVMD_ARGS:
        raise DialStringError("avmd direction", direction, "allowed: inbound, outbound")
    return App("avmd_start", AVMD_ARGS[direction])


def avmd_stop() -> App:
    """`avmd_stop`: the beep detector off once the answerer is known (it fires avmd::stop, twice, capture 14)."""
    return App("avmd_stop")


def send_dtmf(digits: str, tone_ms: int) -> App:
    """`send_dtmf 1w2#@100`: keys to an IVR (`w` waits 0.5 s, `W` 1 s), each tone `tone_ms` long."""
    if isinstance(tone_ms, bool) or not isinstance(tone_ms, int) or not 40 <= tone_ms <= 1000:
        raise DialStringError("tone_ms", tone_ms, "must be whole milliseconds between 40 and 1000")
    return App("send_dtmf", f"{validate_dtmf(digits)}@{tone_ms}")


def bridge(dial_string: str) -> App:
    """`bridge {...}[...]sofia/gateway/GW/+33...`: the dial string comes from `bridge_string`."""
    return App("bridge", safe_app_arg(dial_string, "dial string"))


RINGBACK_RE = re.compile(r"%\([0-9]{1,5}(,[0-9]{1,5}(\.[0-9]{1,3})?){1,5}\)")
EXTENSION_RE = re.compile(r"[A-Za-z0-9_+*#-]{1,32}")
CONTEXT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PROMPT_DROPPED = frozenset(",'\"{}[]^|$\\=")
PROMPT_MAX = 256


def multiset_before_bridge(copy_caller_headers: bool, ringback: Optional[str] = None) -> App:
    """`multiset continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers=false`, on the caller's
    leg before every bridge to a number.

    `continue_on_fail=true hangup_after_bridge=false` keeps the caller on every failure cause
    (capture 07). sofia copies the caller's `sip_h_*` variables (its incoming X- headers) onto the
    new leg unless the *caller's* leg has `sip_copy_custom_headers=false`: a dial-string variable
    cannot turn that off, so the choice is made here (mod_sofia.c, sofia_outgoing_channel).
    `ringback` (a tone like `%(2000,4000,440,480)`) becomes `transfer_ringback`: the caller is already
    answered, and for an answered caller switch_ivr_originate plays `transfer_ringback`, not `ringback`.
    """
    copy = "true" if copy_caller_headers else "false"
    data = f"continue_on_fail=true hangup_after_bridge=false sip_copy_custom_headers={copy}"
    if ringback is not None:
        if not isinstance(ringback, str) or not RINGBACK_RE.fullmatch(ringback):
            raise DialStringError("ringback", ringback, "must be a tone like %(2000,4000,440,480)")
        data += f" transfer_ringback={ringback}"
    return App("multiset", data)


def confirm_prompt(text: str) -> str:
    """Spoken text made safe as the value of `group_confirm_file=say:<text>` in a dial string's `{}`.

    The separators and quotes `, ' " { } [ ] ^ | $ \\ =` and control characters are dropped (a comma is
    only a pause to the TTS, but it would end the variable); what is left must be 1..256 characters.
    """
    if not isinstance(text, str):
        raise DialStringError("confirm prompt", text, "must be text")
    kept = "".join(" " if c in PROMPT_DROPPED or not c.isprintable() else c for c in text)
    cleaned = " ".join(kept.split())
    if not cleaned or len(cleaned) > PROMPT_MAX:
        raise DialStringError("confirm prompt", text, f"must say something in at most {PROMPT_MAX} characters")
    return cleaned


def uuid_transfer(uuid: str, extension: str, context: str) -> str:
    """`uuid_transfer <uuid> <extension> XML <context>`: hand the call to another agent's dialplan extension."""
    validate_uuid(uuid)
    if not isinstance(extension, str) or not EXTENSION_RE.fullmatch(extension):
        raise DialStringError("extension", extension, "must be 1..32 letters, digits or _ + * # -")
    if not isinstance(context, str) or not CONTEXT_RE.fullmatch(context):
        raise DialStringError("context", context, "must be 1..64 letters, digits or _ . -")
    return f"uuid_transfer {uuid} {extension} XML {context}"


def uuid_kill(uuid: str, cause: str = "ALLOTTED_TIMEOUT") -> str:
    """`uuid_kill <uuid> <CAUSE>`: end one leg (the transfer guard ends a target leg FreeSWITCH forgot)."""
    validate_uuid(uuid)
    if not isinstance(cause, str) or not re.fullmatch(r"[A-Z_]{1,40}", cause):
        raise DialStringError("cause", cause, "must be a hangup cause like ALLOTTED_TIMEOUT")
    return f"uuid_kill {uuid} {cause}"


def deflect(target_e164: str, gateway: str, number_format: NumberFormat) -> App:
    """`deflect sip:+33123456789@<gateway>`: a blind transfer by SIP REFER.

    The gateway name is the Refer-To host, so in refer mode it must be a name the caller's side resolves.
    """
    return App("deflect", f"sip:{format_number(target_e164, number_format)}@{validate_gateway(gateway)}")


def bridge_string(
    target_e164: str,
    gateway: str,
    number_format: NumberFormat,
    leg_timeout_s: int,
    origination_uuid: str,
    headers: Sequence[tuple[str, str]] = (),
    caller_id_number: Optional[str] = None,
    codecs: Optional[str] = None,
    confirm: Optional[tuple[str, str, str, str]] = None,
) -> str:
    """The `bridge` argument for a transfer to a number through a sofia gateway.

    `{ignore_early_media=true,origination_uuid=U}[leg_timeout=20,sip_h_X-Name=value]sofia/gateway/GW/+33123456789`
    (captures 09 and 16). Per-leg values (`leg_timeout`, headers) go in `[]`; the caller id
    (`origination_caller_id_number=+33...`) and codecs (`absolute_codec_string=^^:PCMU:PCMA`, the
    `^^:` list form because a comma would split the variable list) go in `{}`.
    `confirm` (key, prompt, tts engine, tts voice) asks whoever answers to press the key before the caller is
    connected: `group_confirm_key=1,group_confirm_file=say:<prompt>,tts_engine=flite,tts_voice=kal` in `{}`,
    where switch_ivr_originate reads them, with `group_confirm_cancel_timeout=false` so that `leg_timeout`
    keeps running until the key is pressed: a voicemail that answers counts as no answer.
    """
    if isinstance(leg_timeout_s, bool) or not isinstance(leg_timeout_s, int) or not 1 <= leg_timeout_s <= 600:
        raise DialStringError("leg_timeout", leg_timeout_s, "must be whole seconds between 1 and 600")
    global_vars = ["ignore_early_media=true", f"origination_uuid={validate_uuid(origination_uuid, 'origination_uuid')}"]
    if caller_id_number is not None:
        global_vars.append(f"origination_caller_id_number={validate_e164(caller_id_number, 'caller_id_number')}")
    if codecs is not None:
        global_vars.append("absolute_codec_string=^^:" + ":".join(validate_codecs(codecs)))
    if confirm is not None:
        key, prompt, engine, voice = confirm
        if not isinstance(key, str) or not re.fullmatch(r"[0-9*#]", key):
            raise DialStringError("confirm key", key, "must be one of 0-9 * #")
        for name, value in (("tts engine", engine), ("tts voice", voice)):
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:@+-]{1,128}", value):
                raise DialStringError(name, value, "must be a name like flite or kal")
        global_vars += [f"group_confirm_key={key}", f"group_confirm_file=say:{confirm_prompt(prompt)}",
                        "group_confirm_cancel_timeout=false", f"tts_engine={engine}", f"tts_voice={voice}"]
    leg_vars = [f"leg_timeout={leg_timeout_s}"]
    seen: set[str] = set()
    for name, value in headers:
        validate_header_name(name)
        if name.lower() in seen:
            raise DialStringError("header name", name, "appears twice")
        seen.add(name.lower())
        leg_vars.append(f"sip_h_{name}={validate_header_value(value, f'header {name}')}")
    target = format_number(target_e164, number_format)
    endpoint = f"sofia/gateway/{validate_gateway(gateway)}/{target}"
    return "{" + ",".join(global_vars) + "}[" + ",".join(leg_vars) + "]" + endpoint


AGENT_ID_RE = re.compile(r"[a-z0-9_]{1,32}")


def originate(
    target_e164: str,
    gateway: str,
    number_format: NumberFormat,
    call_uuid: str,
    agent_id: str,
    socket_address: tuple[str, int],
    timeout_s: int,
    caller_id_number: Optional[str] = None,
) -> str:
    """The `originate` a call placed by an agent starts with (capture 13).

    `originate {origination_uuid=U,switchboard_agent=A,originate_timeout=N,ignore_early_media=true,
    origination_caller_id_number=+33...}sofia/gateway/GW/+33... &socket('127.0.0.1:8084 async full')`: once the
    called party answers, FreeSWITCH runs the socket app on that leg, which reaches `serve` like any call,
    with the agent already chosen. The quotes matter: originate splits its arguments on spaces, so unquoted the
    app gets `127.0.0.1:8084` alone and connects static and single-channel, where `linger` is refused (capture 13).
    """
    if not isinstance(agent_id, str) or not AGENT_ID_RE.fullmatch(agent_id):
        raise DialStringError("agent", agent_id, "must be an agent id (1..32 lowercase letters, digits or _)")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or not 1 <= timeout_s <= 600:
        raise DialStringError("originate_timeout", timeout_s, "must be whole seconds between 1 and 600")
    host, port = socket_address
    if not isinstance(host, str) or not re.fullmatch(r"[0-9.]{7,15}|[0-9a-fA-F:]{2,39}", host):
        raise DialStringError("socket host", host, "must be the IP address serve listens on")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DialStringError("socket port", port, "must be a TCP port")
    variables = [f"origination_uuid={validate_uuid(call_uuid, 'origination_uuid')}", f"switchboard_agent={agent_id}",
                 f"originate_timeout={timeout_s}", "ignore_early_media=true"]
    if caller_id_number is not None:
        variables.append(f"origination_caller_id_number={validate_e164(caller_id_number, 'caller_id_number')}")
    endpoint = f"sofia/gateway/{validate_gateway(gateway)}/{format_number(target_e164, number_format)}"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "originate {" + ",".join(variables) + "}" + endpoint + f" &socket('{where} async full')"


# ---------------------------------------------------------------- api commands
def uuid_break(uuid: str) -> str:
    """`uuid_break <uuid> all`: stop what plays now and flush the queue (barge-in, capture 11)."""
    return f"uuid_break {validate_uuid(uuid)} all"


def module_exists(module: str) -> str:
    """`module_exists mod_sofia`: "true" or "false" (capture 06: an app of a missing module hangs the call up)."""
    if not isinstance(module, str) or not MODULE_RE.fullmatch(module):
        raise DialStringError("module", module, "must be a module name like mod_sofia")
    return f"module_exists {module}"
