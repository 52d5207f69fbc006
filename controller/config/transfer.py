"""The transfer action's configuration: destinations, SIP headers, opening hours, messages.

Numbers are normalised to E.164 here, once, so the transfer code and the dial-string builder only
ever see `+33123456789`; header values are checked with the same validators `dialstring` applies
just before a bridge.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import (AfterValidator, BeforeValidator, Discriminator, Field, Tag, ValidationInfo, field_validator,
                      model_validator)

from controller.transfer import schedule as schedule_rules
from controller.config.base import (ActionBase, ConfigModel, Slug, SpokenText, check_jinja, check_ref, fail,
                                    no_yaml_number, refs)
from controller.esl.values import DialStringError, normalise_number, validate_header_name, validate_header_value
from controller.templating import is_template
from controller.text import fold


class SipHeader(ConfigModel):
    """One `X-` header on the outgoing INVITE; a value containing `{{` is rendered per call and
    checked again after rendering."""

    name: str
    value: Annotated[str, no_yaml_number("header value", "42")]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_header_name(value)
        except DialStringError as exc:
            raise fail(f"{value!r} {exc.reason}", "a name like X-Call-Reason") from None

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if is_template(value):
            return check_jinja(value, example="{{ customer_id }}")
        try:
            return validate_header_value(value)
        except DialStringError as exc:
            raise fail(exc.reason, "<= 256 printable ASCII characters without , ' \" { } [ ] ^ | $ \\") from None


def _yaml_bool_country(value: Any) -> Any:
    if isinstance(value, bool):
        raise fail(f"YAML read this country code as {str(value).lower()}; write it in quotes", 'e.g. country: "NO"')
    return value


class NumberDestination(ConfigModel):
    """A phone number: `country` (ISO alpha-2) + national number, or an international number.
    After validation `number` holds the E.164 form."""

    id: Optional[Slug] = None
    country: Optional[Annotated[str, BeforeValidator(_yaml_bool_country)]] = None
    number: Annotated[str, no_yaml_number("phone number", "+33123456789")]
    description: Annotated[str, Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _normalise(self) -> "NumberDestination":
        try:
            self.number = normalise_number(self.country, self.number)
        except DialStringError as exc:
            field = "country" if exc.field == "country" else "number"
            raise fail(f"{exc.value!r} {exc.reason}",
                       "a national number with its country (FR, 01 23 45 67 89) or +33123456789", [field]) from None
        if self.country is not None:
            self.country = self.country.upper()
        return self


class AgentDestination(ConfigModel):
    """A hand-off to another agent of this file, reached at its `extension` in its `context`."""

    id: Optional[Slug] = None
    agent: str
    description: Annotated[str, Field(min_length=1, max_length=200)]

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str, info: ValidationInfo) -> str:
        ctx = refs(info)
        check_ref(value, ctx.agents, "agent", "agents")
        if ctx.agents is not None and value not in ctx.handoff_agents:
            raise fail(f"agent {value!r} has no extension and context, so no call can be handed to it",
                       f"add extension and context to agents.{value}")
        return value


def _destination_kind(value: Any) -> str:
    return "agent" if isinstance(value, dict) and "agent" in value else "number"


Destination = Annotated[
    Union[Annotated[NumberDestination, Tag("number")], Annotated[AgentDestination, Tag("agent")]],
    Discriminator(_destination_kind),
]


def _checked_by(parse: Callable[[Any], Any], allowed: str, *, keep: bool = True) -> Callable[[Any], Any]:
    """A controller.transfer.schedule parser as a validator: its ValueError becomes the config error, with `allowed`;
    `keep` returns the value as written, else what the parser made of it."""
    def check(value: Any) -> Any:
        try:
            parsed = parse(value)
        except ValueError as exc:
            raise fail(str(exc), allowed) from None
        return value if keep else parsed
    return check


class Window(ConfigModel):
    days: Annotated[tuple[str, ...], BeforeValidator(_checked_by(
        schedule_rules.parse_days, "Monday, Tuesday, ... Sunday (English), or ranges like Monday-Friday", keep=False))]
    hours: Annotated[str, AfterValidator(_checked_by(
        schedule_rules.parse_hours, "HH:MM-HH:MM like 09:00-12:30; 22:00-02:00 crosses midnight"))]


class Schedule(ConfigModel):
    """Weekly opening windows in `timezone` (see controller.transfer.schedule for midnight and DST rules)."""

    timezone: Annotated[str, AfterValidator(_checked_by(
        schedule_rules.zone, "an IANA timezone name like Europe/Paris or America/Montreal"))]
    windows: Annotated[list[Window], Field(min_length=1)]
    closed_dates: list[date] = []

    def is_open(self, at: datetime) -> bool:
        return schedule_rules.is_open(self, at)

    def next_opening(self, at: datetime) -> Optional[datetime]:
        return schedule_rules.next_opening(self, at)


class Confirm(ConfigModel):
    """Ask the person who answers to press `key` before the caller is connected; the prompt travels in the
    dial string (`group_confirm_file=say:...`), hence its length limit."""

    key: str
    prompt: SpokenText

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if len(value) > 200:
            raise fail(f"is {len(value)} characters long", "at most 200 characters (it travels in the dial string)")
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> str:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not re.fullmatch(r"[0-9*#]", text):
            raise fail(f"{value!r} is not one DTMF key", "one of 0-9 * #")
        return text


class TransferMessages(ConfigModel):
    """What the agent says around a transfer (Jinja templates over the call variables)."""

    transferring: SpokenText = "Please hold, I am transferring your call."
    no_answer: SpokenText = "Nobody is answering right now. I am back with you."
    busy: SpokenText = "The line is busy right now. I am back with you."
    failed: SpokenText = "The transfer did not go through. I am back with you."
    closed: SpokenText = "This service is closed at the moment."


class TransferActionConfig(ActionBase):
    """Connect the caller to a number (bridge through a SIP connection) or hand off to another agent."""

    type: Literal["transfer"]
    sip_connection: Optional[str] = None
    max_ring_s: Annotated[int, Field(ge=5, le=45)] = 20
    schedule: Optional[Schedule] = None
    confirm: Optional[Confirm] = None
    after_bridge: Literal["hangup", "resume"] = "hangup"
    mode: Literal["bridge", "refer"] = "bridge"
    copy_caller_headers: bool = False
    sip_headers: list[SipHeader] = []
    messages: TransferMessages = Field(default_factory=TransferMessages)
    destinations: list[Destination] = []

    @field_validator("sip_connection")
    @classmethod
    def _connection(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is None:
            return None
        return check_ref(value, refs(info).sip_connections, "SIP connection", "sip_connections")

    @model_validator(mode="after")
    def _combined(self, info: ValidationInfo) -> "TransferActionConfig":
        seen: dict[str, int] = {}
        for i, header in enumerate(self.sip_headers):
            first = seen.setdefault(header.name.lower(), i)
            if first != i:
                raise fail(f"header {header.name} is set twice (sip_headers[{first}] and [{i}])",
                           "each header name once", ["sip_headers", i, "name"])
        ids: dict[str, int] = {}
        for i, dest in enumerate(self.destinations):
            if dest.id is not None and ids.setdefault(dest.id, i) != i:
                raise fail(f"destination id {dest.id!r} is used twice", "a unique id per destination",
                           ["destinations", i, "id"])
        for dest in self.destinations:
            if dest.id is None:
                dest.id = _unique(_derived_id(dest), ids)
                ids[dest.id] = -1
        if self.sip_connection is None and self.dials_numbers:
            self.sip_connection = refs(info).default_sip_connection
        if self.sip_connection is None and any(isinstance(d, NumberDestination) for d in self.destinations):
            raise fail("numbers need a SIP connection and none is set",
                       "sip_connection: NAME here, or default_sip_connection at the top level", ["sip_connection"])
        return self

    @property
    def dials_numbers(self) -> bool:
        """True when it may bridge to a number: typed numbers, or none typed (imported numbers)."""
        return not self.destinations or any(isinstance(d, NumberDestination) for d in self.destinations)


def _derived_id(dest: Union[NumberDestination, AgentDestination]) -> str:
    """The id of a destination written without one: its agent, or its description as a slug
    (`Service après-vente` -> `service_apres_vente`; characters folding cannot make ASCII are dropped)."""
    if isinstance(dest, AgentDestination):
        return dest.agent[:32]
    ascii_text = re.sub(r"[^\x00-\x7f]+", "", fold(dest.description))
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text).strip("_")[:32].strip("_")
    return slug or "n" + dest.number.lstrip("+")[:31]


def _unique(base: str, taken: dict[str, int]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate, n = base[: 32 - len(suffix)] + suffix, n + 1
    return candidate
