"""The one validating builder for every value that reaches an ESL command or a SIP header.

Pure functions, no I/O. Everything an operator or a caller can influence (numbers, header values,
DTMF, gateway names, uuids, spoken text) passes through here before it is written on the event
socket, so a value can never smuggle a newline (a new ESL command), a `${...}` (FreeSWITCH
expansion) or a dial-string separator (`,` `|` `[` `]` `{` `}` `^`) into a command.
"""
from __future__ import annotations

import re
from typing import Literal, Optional, Sequence

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

NumberFormat = Literal["e164", "e164_no_plus"]

HEADER_NAME_RE = re.compile(r"X-[A-Za-z0-9-]{1,64}")
HEADER_VALUE_MAX = 256
HEADER_VALUE_FORBIDDEN = frozenset(",'\"{}[]^|$\\")
GATEWAY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
DTMF_RE = re.compile(r"[0-9*#A-DwW]{1,128}")
CODEC_RE = re.compile(r"[A-Za-z0-9_.@-]{1,32}")
NUMBER_INPUT_RE = re.compile(r" *\+?[0-9 ().\-/]{2,40}")

_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "has an impossible length",
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country calling code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is only dialable locally (add the area code)",
}


class DialStringError(ValueError):
    """A value refused on its way to FreeSWITCH: which field, what value, and why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {_preview(value)})")


def _preview(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_header_name(name: str) -> str:
    """A custom SIP header name: `X-` then 1..64 letters, digits or dashes (`X-Call-Reason`)."""
    if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
        raise DialStringError("header name", name, "must be X- followed by 1..64 letters, digits or '-'")
    return name


def validate_header_value(value: str, field: str = "header value") -> str:
    """A SIP header value written into a dial string as `sip_h_X-Name=value`.

    FreeSWITCH writes it on the wire as is, so it must be printable ASCII, at most 256 characters,
    without the dial-string separators and quotes `, ' " { } [ ] ^ |`, `$` (expansion) or `\\`.
    """
    if not isinstance(value, str):
        raise DialStringError(field, value, "must be text")
    if not value or value != value.strip():
        raise DialStringError(field, value, "must be non-empty without leading or trailing spaces")
    if len(value) > HEADER_VALUE_MAX:
        raise DialStringError(field, value, f"is {len(value)} characters long; at most {HEADER_VALUE_MAX}")
    for char in value:
        if not " " <= char <= "~":
            raise DialStringError(field, value, f"contains {char!r}; only printable ASCII is allowed")
        if char in HEADER_VALUE_FORBIDDEN:
            raise DialStringError(field, value, f"contains {char!r}, which a dial string does not allow")
    return value


def normalise_number(country: Optional[str], number: str) -> str:
    """A national or international number -> E.164 (`FR`, `01 23 45 67 89` -> `+33123456789`).

    `country` is an ISO 3166 alpha-2 code; it may be None when the number starts with `+`.
    Raises DialStringError saying why the number is refused ("too short for FR").
    """
    if not isinstance(number, str) or not NUMBER_INPUT_RE.fullmatch(number):
        raise DialStringError("number", number, "must be digits, optionally with a leading + and spaces . - ( ) /")
    number = number.strip()
    region = None
    if country is not None:
        region = str(country).upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise DialStringError("country", country, "is not an ISO 3166 alpha-2 country code like FR, BE or CH")
    elif not number.startswith("+"):
        raise DialStringError("number", number, "needs a country (e.g. FR) or an international +country prefix")
    try:
        parsed = phonenumbers.parse(number, region)
    except NumberParseException as exc:
        raise DialStringError("number", number, f"is not a phone number ({exc._msg})") from None
    where = region or phonenumbers.region_code_for_number(parsed) or f"+{parsed.country_code}"
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible != ValidationResult.IS_POSSIBLE:
        raise DialStringError("number", number, f"{_REASONS.get(possible, 'is not possible')} for {where}")
    if not phonenumbers.is_valid_number(parsed):
        raise DialStringError("number", number, f"is not a valid number for {where} (no such number range)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_e164(number: str, field: str = "number") -> str:
    """An E.164 number exactly as FreeSWITCH will dial it: `+` then 7..15 digits, a real number range."""
    if not isinstance(number, str) or not E164_RE.fullmatch(number):
        raise DialStringError(field, number, "must be E.164: + then 7..15 digits, no spaces (e.g. +33123456789)")
    try:
        return normalise_number(None, number)
    except DialStringError as exc:
        raise DialStringError(field, number, exc.reason) from None


def validate_dtmf(digits: str) -> str:
    """DTMF for `send_dtmf`: 0-9 * # A-D, `w` (0.5 s pause) and `W` (1 s pause), 1..128 of them."""
    if not isinstance(digits, str) or not DTMF_RE.fullmatch(digits):
        raise DialStringError("digits", digits, "allowed: 1..128 of 0-9 * # A B C D w W")
    return digits


def validate_gateway(name: str) -> str:
    """A FreeSWITCH sofia gateway name as used in `sofia/gateway/<name>/...`."""
    if not isinstance(name, str) or not GATEWAY_RE.fullmatch(name):
        raise DialStringError("gateway", name, "must be 1..64 letters, digits, '_', '.' or '-'")
    return name


def validate_uuid(value: str, field: str = "uuid") -> str:
    """A channel uuid as FreeSWITCH prints it (8-4-4-4-12 hexadecimal digits)."""
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        raise DialStringError(field, value, "must be a uuid like 0a160000-0000-4000-8000-000000000016")
    return value


def validate_codecs(codecs: str) -> list[str]:
    """`PCMU,PCMA` (an absolute_codec_string) -> ["PCMU", "PCMA"]; each like `PCMU`, `opus@48000h@20i`."""
    if not isinstance(codecs, str):
        raise DialStringError("codecs", codecs, "must be text like PCMU,PCMA")
    names = [part.strip() for part in codecs.split(",")]
    if not names or any(not CODEC_RE.fullmatch(name) for name in names):
        raise DialStringError("codecs", codecs, "must be comma-separated codec names like PCMU,PCMA")
    return names


def safe_app_arg(text: str, field: str = "argument") -> str:
    """Any text passed as an application argument (speak text, playback path, app data).

    Refuses CR, LF and NUL (they would end the ESL frame) and `${` (FreeSWITCH would expand it).
    """
    if not isinstance(text, str):
        raise DialStringError(field, text, "must be text")
    for bad, label in (("\r", "a carriage return"), ("\n", "a newline"), ("\x00", "a NUL byte"), ("${", "'${'")):
        if bad in text:
            raise DialStringError(field, text, f"contains {label}")
    return text


def format_number(e164: str, number_format: NumberFormat) -> str:
    """How a gateway wants the number: `+33123456789` (e164) or `33123456789` (e164_no_plus)."""
    validate_e164(e164)
    if number_format == "e164":
        return e164
    if number_format == "e164_no_plus":
        return e164[1:]
    raise DialStringError("number_format", number_format, "allowed: e164, e164_no_plus")


RINGBACK_RE = re.compile(r"%\([0-9]{1,5}(,[0-9]{1,5}(\.[0-9]{1,3})?){1,5}\)")
EXTENSION_RE = re.compile(r"[A-Za-z0-9_+*#-]{1,32}")
CONTEXT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PROMPT_DROPPED = frozenset(",'\"{}[]^|$\\=")
PROMPT_MAX = 256


def caller_leg_bridge_vars(copy_caller_headers: bool, ringback: Optional[str] = None) -> str:
    """The `multiset` data to run on the caller's leg before every bridge to a number.

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
    return data


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


def transfer_command(uuid: str, extension: str, context: str) -> str:
    """`uuid_transfer <uuid> <extension> XML <context>`: hand the call to another agent's dialplan extension."""
    validate_uuid(uuid)
    if not isinstance(extension, str) or not EXTENSION_RE.fullmatch(extension):
        raise DialStringError("extension", extension, "must be 1..32 letters, digits or _ + * # -")
    if not isinstance(context, str) or not CONTEXT_RE.fullmatch(context):
        raise DialStringError("context", context, "must be 1..64 letters, digits or _ . -")
    return f"uuid_transfer {uuid} {extension} XML {context}"


def kill_command(uuid: str, cause: str = "ALLOTTED_TIMEOUT") -> str:
    """`uuid_kill <uuid> <CAUSE>`: end one leg (the transfer guard ends a target leg FreeSWITCH forgot)."""
    validate_uuid(uuid)
    if not isinstance(cause, str) or not re.fullmatch(r"[A-Z_]{1,40}", cause):
        raise DialStringError("cause", cause, "must be a hangup cause like ALLOTTED_TIMEOUT")
    return f"uuid_kill {uuid} {cause}"


def refer_target(target_e164: str, gateway: str, number_format: NumberFormat) -> str:
    """The `deflect` argument of a blind transfer by SIP REFER: `sip:+33123456789@<gateway>`.

    The gateway name is the Refer-To host, so in refer mode it must be a name the caller's side resolves.
    """
    return f"sip:{format_number(target_e164, number_format)}@{validate_gateway(gateway)}"


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


def originate_command(
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
