"""Action configuration by moment: what may run before, during and after a call.

- before_call: workflow (HTTP while the phone rings; kept fields become call variables)
- during_call: transfer, workflow, hangup, rag, keypad, wait
- after_call: email, workflow (a webhook receiving the call record)

Each list is discriminated on `type`, so an unknown type is one precise error, not six.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Iterator, Literal, Optional, Union

from pydantic import (AfterValidator, BeforeValidator, Field, PrivateAttr, ValidationInfo, field_validator,
                      model_validator)

from controller.address_policy import AddressPolicy
from controller.config.transfer import TransferActionConfig
from controller.config.base import (ActionBase, ConfigModel, EmailList, EnvVarName, LineTemplate, SpokenText,
                                     UrlTemplate, VarName, check_jinja, check_ref, check_template_text, fail,
                                     no_yaml_number, pattern, refs)
from controller.esl.values import DialStringError, validate_dtmf

HttpHeaderName = Annotated[str, pattern(r"[A-Za-z0-9-]{1,64}", "an HTTP header name like Authorization", "header")]
DottedPath = Annotated[str, pattern(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,15}",
                                    "a dotted path into the JSON response like customer.name or items.0.id", "path")]
JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object")
SCHEMA_KEYS = ("type", "properties", "required", "description", "additionalProperties")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _check_json(value: Any, path: list[str | int]) -> None:
    """A request body: JSON values only; every string is a Jinja template."""
    if isinstance(value, str):
        check_jinja(value, example="{{ caller_number }}", field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(f"key {key!r} is not text", "JSON object keys are strings: quote it", path)
            _check_json(item, path + [key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, path + [i])
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise fail(f"{value!r} is not a JSON value", "text, numbers, true/false, null, lists, mappings; quote dates",
                   path)


class HttpRequest(ConfigModel):
    """An HTTP call; `url`, header values and every string of `body` are Jinja templates over call data.
    Without `method`: POST when there is a body, GET otherwise."""

    method: Optional[Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_upper)]] = None
    url: UrlTemplate
    headers: dict[HttpHeaderName, LineTemplate] = {}
    body: Any = None

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        _check_json(value, [])
        return value

    _policy: AddressPolicy = PrivateAttr(default=AddressPolicy())

    @property
    def policy(self) -> AddressPolicy:
        """The configuration's `webhooks.allow`, checked on the address every request connects to."""
        return self._policy

    @model_validator(mode="after")
    def _keep_policy(self, info: ValidationInfo) -> "HttpRequest":
        self._policy = refs(info).webhook_policy
        return self

    @model_validator(mode="after")
    def _method(self) -> "HttpRequest":
        if self.method is None:
            self.method = "GET" if self.body is None else "POST"
        if self.method == "GET" and self.body is not None:
            raise fail("a GET request cannot carry a body", "method: POST, PUT or PATCH, or no body", ["body"])
        return self


class WebhookRequest(HttpRequest):
    """An after-call webhook: the body is the call record as JSON, unless `body` (a template over the
    record) is given."""

    method: Optional[Annotated[Literal["POST", "PUT", "PATCH"], BeforeValidator(_upper)]] = None

    @model_validator(mode="after")
    def _method(self) -> "WebhookRequest":
        self.method = self.method or "POST"
        return self


def _classifications(values: list[str], info: ValidationInfo) -> list[str]:
    for i, name in enumerate(values):
        check_ref(name, refs(info).classifications, "classification", "classifications", [i])
    return values


ClassificationRefs = Annotated[list[str], AfterValidator(_classifications)]


class BeforeWorkflowActionConfig(ActionBase):
    """HTTP request while the phone rings, within the agent's ring budget; `keep` turns response
    fields into call variables (`customer_name: customer.name`). With `secret_env`, every request is signed
    (workflow/signature.py)."""

    type: Literal["workflow"]
    request: HttpRequest
    timeout_s: Annotated[float, Field(ge=0.5, le=30)] = 5
    keep: dict[VarName, DottedPath] = {}
    secret_env: Optional[EnvVarName] = None


class DuringWorkflowActionConfig(BeforeWorkflowActionConfig):
    """A workflow the brain calls during the conversation, filling `arguments` (a JSON schema)."""

    arguments: Optional[dict[str, Any]] = None
    say_result: Optional[SpokenText] = None
    say_while_running: Optional[SpokenText] = None  # said as the request starts ("Je regarde votre dossier.")

    @field_validator("arguments")
    @classmethod
    def _schema(cls, schema: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if schema is None:
            return None
        example = "{type: object, properties: {order_id: {type: string}}, required: [order_id]}"
        for key in schema:
            if key not in SCHEMA_KEYS:
                raise fail(f"unknown schema key {key!r}", ", ".join(SCHEMA_KEYS), [key])
        if schema.get("type") != "object":
            raise fail("the arguments schema must have type: object", example, ["type"])
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            raise fail("the arguments schema needs properties", example, ["properties"])
        for name, prop in props.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise fail(f"argument name {name!r} is not allowed", "letters, digits and _", ["properties", name])
            if not isinstance(prop, dict):
                raise fail("each property is a schema mapping", "{type: string, description: ...}",
                           ["properties", name])
            if "type" in prop and prop["type"] not in JSON_TYPES:
                raise fail(f"type {prop['type']!r} is not a JSON schema type", ", ".join(JSON_TYPES),
                           ["properties", name, "type"])
        required = schema.get("required", [])
        if not isinstance(required, list) or any(r not in props for r in required):
            raise fail("required lists names that are not properties", f"a list among {', '.join(props)}", ["required"])
        return schema


class AfterWorkflowActionConfig(ActionBase):
    """A webhook receiving the call record, optionally only for some classifications."""

    type: Literal["workflow"]
    request: WebhookRequest
    timeout_s: Annotated[float, Field(ge=0.5, le=30)] = 5
    when_classified: ClassificationRefs = []
    secret_env: Optional[EnvVarName] = None


class HangupActionConfig(ActionBase):
    """End the call once `condition` (natural language) has been met `min_attempts` times, and/or as soon as
    machine detection finds the call `answered_by` one of those (outbound calls): for a machine with
    `leave_message`, that message is spoken after the beep first. Without `condition` the brain never calls it."""

    type: Literal["hangup"]
    condition: Optional[Annotated[str, Field(min_length=1, max_length=500)]] = None
    min_attempts: Annotated[int, Field(ge=1, le=5)] = 1
    message: Optional[SpokenText] = None
    answered_by: list[Literal["machine", "ivr"]] = []
    leave_message: Optional[SpokenText] = None

    @model_validator(mode="after")
    def _when(self) -> "HangupActionConfig":
        if self.condition is None and not self.answered_by:
            raise fail("a hang-up needs a condition, an answered_by, or both",
                       "condition: <when the brain should hang up>, or answered_by: [machine]", ["condition"])
        if len(set(self.answered_by)) != len(self.answered_by):
            raise fail("lists an answerer twice", "each of machine, ivr at most once", ["answered_by"])
        if self.leave_message is not None and "machine" not in self.answered_by:
            raise fail("leave_message is spoken to an answering machine after its beep",
                       "add answered_by: [machine], or remove leave_message", ["leave_message"])
        return self


class MessageBefore(ConfigModel):
    enabled: bool = True
    text: Optional[SpokenText] = None  # None: a built-in line in the agent's language


class RagActionConfig(ActionBase):
    """Answer from a knowledge source built with `switchboard knowledge index`."""

    type: Literal["rag"]
    source: str
    message_before: MessageBefore = Field(default_factory=MessageBefore)
    message_no_answer: Optional[SpokenText] = None  # None: a built-in line in the agent's language

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        return check_ref(value, refs(info).sources, "knowledge source", "knowledge_sources")


class KeypadActionConfig(ActionBase):
    """Send DTMF to an IVR: fixed `digits`, or digits the brain chooses; the agent stays quiet meanwhile."""

    type: Literal["keypad"]
    digits: Optional[Annotated[str, no_yaml_number("digit sequence", "0123#")]] = None
    tone_ms: Annotated[int, Field(ge=40, le=1000)] = 100

    @field_validator("digits")
    @classmethod
    def _digits(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        try:
            return validate_dtmf(value)
        except DialStringError as exc:
            raise fail(f"{value!r} is not a DTMF sequence", exc.reason.removeprefix("allowed: ")) from None


class WaitActionConfig(ActionBase):
    """Stay silent on hold or during an IVR menu; resume on the first `resume_on` signal."""

    type: Literal["wait"]
    max_wait_s: Annotated[int, Field(ge=5, le=600)] = 120
    resume_on: Annotated[list[Literal["speech", "menu_end", "unhold"]], Field(min_length=1)] = [
        "speech", "menu_end", "unhold"]
    message_after: Optional[SpokenText] = None

    @field_validator("resume_on")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise fail("lists a signal twice", "each of speech, menu_end, unhold at most once")
        return value


class EmailTemplates(ConfigModel):
    """HTML and/or text body: a file path (relative to the config file) or an inline template."""

    html: Optional[Annotated[str, AfterValidator(check_template_text)]] = None
    text: Optional[Annotated[str, AfterValidator(check_template_text)]] = None

    @model_validator(mode="after")
    def _one(self) -> "EmailTemplates":
        if self.html is None and self.text is None:
            raise fail("has neither html nor text", "html: templates/x.html and/or text: templates/x.txt")
        return self


class EmailActionConfig(ActionBase):
    """An email after the call (SMTP from the `smtp` section), optionally only for some classifications."""

    type: Literal["email"]
    subject: Annotated[LineTemplate, Field(min_length=1, max_length=300)]
    to: Annotated[EmailList, Field(min_length=1)]
    cc: EmailList = []
    bcc: EmailList = []
    template: Optional[EmailTemplates] = None  # None: the built-in call summary (aftercall/summary_email.py)
    when_classified: ClassificationRefs = []


DuringAction = Annotated[
    Union[TransferActionConfig, DuringWorkflowActionConfig, HangupActionConfig, RagActionConfig, KeypadActionConfig,
          WaitActionConfig],
    Field(discriminator="type"),
]
AfterAction = Annotated[Union[EmailActionConfig, AfterWorkflowActionConfig], Field(discriminator="type")]
AnyAction = Union[BeforeWorkflowActionConfig, DuringAction, AfterAction]
MOMENTS = ("before_call", "during_call", "after_call")  # the keys under `actions`, in the order a call meets them


def _before_call_type(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value and value["type"] != "workflow":
        raise fail(f"type {value['type']!r} cannot run before_call", "workflow (the other actions go under "
                   "during_call or after_call)", ["type"])
    return value


class Actions(ConfigModel):
    before_call: list[Annotated[BeforeWorkflowActionConfig, BeforeValidator(_before_call_type)]] = []
    during_call: list[DuringAction] = []
    after_call: list[AfterAction] = []

    def all(self) -> Iterator[tuple[str, AnyAction]]:
        """(moment, action) for every action, in file order."""
        for moment in MOMENTS:
            for action in getattr(self, moment):
                yield moment, action

    def get(self, name: str) -> Optional[AnyAction]:
        return next((action for _, action in self.all() if action.name == name), None)
