"""The one validating builder for every value that reaches an ESL command or a SIP header.

Pure functions, no I/O. Everything an operator or a caller can influence (numbers, header values,
DTMF, gateway names, uuids, spoken text) passes through here before it is written on the event
socket, so a value can never smuggle a newline (a new ESL command), a `${...}` (FreeSWITCH
expansion) or a dial-string separator (`,` `|` `[` `]` `{` `}` `^`) into a command.
"""
from __future__ import annotations

import re
from typing import Literal, Optional

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

NumberFormat = Literal["e164", "e164_no_plus"]

HEADER_NAME_RE = re.compile(r"X-[A-Za-z0-9-]{1,64}")
HEADER_VALUE_MAX = 256
HEADER_VALUE_FORBIDDEN = frozenset(",'\"{}[]^|$\\")
GATEWAY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
DTMF_RE = re.compile(r"(?P<keys>[0-9*#A-DwW]{1,99})(?:@(?P<ms>[0-9]{2,4}))?")
DTMF_MS = (40, 2000)
DTMF_MODES = ("rfc2833", "info", "inband")
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
    """DTMF for `send_dtmf`: 1..99 of 0-9 * # A-D, `w` (0.5 s pause), `W` (1 s pause), then optionally `@<ms>`,
    each tone's length (40..2000 ms), as FreeSWITCH's `send_dtmf 12@200` reads it."""
    match = DTMF_RE.fullmatch(digits) if isinstance(digits, str) else None
    if match is None:
        raise DialStringError("digits", digits, "allowed: 1..99 of 0-9 * # A B C D w W, optionally @ms (e.g. 12@200)")
    if match.group("ms") is not None and not DTMF_MS[0] <= int(match.group("ms")) <= DTMF_MS[1]:
        raise DialStringError("digits", digits, f"allowed: a tone length @{DTMF_MS[0]}..@{DTMF_MS[1]} ms")
    return digits


def dtmf_type(mode: str) -> str:
    """The sofia `dtmf_type` channel variable for a SIP connection's `dtmf` mode: rfc2833 and info are sofia's own;
    inband tones come from `start_dtmf_generate` on the channel, so sofia sends none itself (`none`)."""
    if mode not in DTMF_MODES:
        raise DialStringError("dtmf", mode, "allowed: " + ", ".join(DTMF_MODES))
    return "none" if mode == "inband" else mode


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
