"""The `openai` brain: any OpenAI-compatible `/v1/chat/completions` server on-premise (vLLM, llama.cpp, Ollama).

Each offered action is a tool (slug name, the action's description, its argument schema); the request says
`parallel_tool_calls: false` and only the first tool call of a reply runs. Whatever goes wrong (HTTP error, timeout,
an unknown tool, arguments that fail the schema) the agent says the fallback line and the call goes on; the error
is in `Decision.detail["error"]` for the call record. HTTP goes through `controller.workflow.http` (whole-request
deadline, capped body), cooperative once gevent has monkey-patched the process: a slow model blocks only its call.
"""
from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from controller.workflow.http import HttpError, request, safe_url
from controller.log import call_logger
from controller.brain.base import ActionCall, BrainContext, Decision, Turn
from controller.phrases import phrase
from controller.brain.tools import Toolset, build_toolset, slugify, validate_arguments

MAX_REPLY = 4 * 1024 * 1024  # a chat reply is a few kB; this only stops a runaway server
_MAX_VALUE_CHARS = 200
_LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
_TURN_NOTES = {
    "no_input": "[silence: the caller said nothing]",
    "no_match": "[the caller spoke but the words could not be recognised]",
}


class BrainError(Exception):
    """The chat server could not give a usable answer (the message is recorded as the decision's error)."""


class OpenAIBrain:
    """Decides each turn with a chat-completions request; one request per turn, no retries (the caller waits)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, *, language: str = "en", api_key_env: str | None = None,
                 timeout_s: float = 10.0, temperature: float = 0.2, fallback_text: str | None = None) -> None:
        self.url = chat_completions_url(base_url)
        self.model = model
        self.language = language
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.fallback_text = fallback_text or phrase(language, "fallback")

    def decide(self, turn: Turn, context: BrainContext) -> Decision:
        toolset = build_toolset(context.actions)
        body: dict[str, Any] = {"model": self.model, "temperature": self.temperature,
                                "messages": build_messages(turn, context, toolset)}
        if toolset.tools:
            body.update(tools=toolset.tools, tool_choice="auto", parallel_tool_calls=False)
        log = call_logger(context.uuid, "switchboard.brain")
        try:
            reply = self._post(body)
            decision = self._read_reply(reply, toolset, turn)
        except BrainError as exc:
            log.warning("openai brain: %s; saying the fallback line", exc)
            return Decision(say=self.fallback_text, note="brain error", detail={"error": str(exc)})
        log.info("openai brain: %s", decision.note)
        return decision

    def _read_reply(self, reply: dict[str, Any], toolset: Toolset, turn: Turn) -> Decision:
        message = _first_message(reply)
        calls = message.get("tool_calls") or []
        say = str(message.get("content") or "").strip()
        if not say and turn.kind == "action_result":
            say = (turn.result or {}).get("say") or ""
        if not calls:
            return Decision(say=say, note="answered without a tool")
        function = calls[0].get("function") if isinstance(calls[0].get("function"), dict) else {}
        slug = function.get("name", "")
        spec = toolset.by_slug.get(slug)
        if spec is None:
            raise BrainError(f"unknown tool {slug!r} (offered: {', '.join(toolset.by_slug) or 'none'})")
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise BrainError(f"tool {slug!r}: arguments are not JSON ({exc}): {raw[:120]!r}") from None
        errors = validate_arguments(spec, arguments)
        if errors:
            raise BrainError(f"tool {slug!r}: bad arguments: {'; '.join(errors)}")
        note = f"tool {slug} -> action {spec.name}"
        if len(calls) > 1:
            note += f" ({len(calls) - 1} further tool call(s) ignored)"
        return Decision(say=say, action=ActionCall(spec.name, arguments), note=note,
                        detail={"tool_call_id": calls[0].get("id", "")})

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST the request; `timeout_s` bounds connect, send and the whole reply together."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            response = request("POST", self.url, headers=headers, body=json.dumps(body).encode(),
                               timeout_s=self.timeout_s, max_body=MAX_REPLY)
        except HttpError as exc:
            raise BrainError(str(exc)) from None
        if response.status != 200:
            raise BrainError(f"HTTP {response.status} from {safe_url(self.url)}: "
                             f"{response.body[:200].decode(errors='replace')}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise BrainError(f"reply from {safe_url(self.url)} is not JSON: {response.body[:120]!r}") from None


def _first_message(reply: Any) -> dict[str, Any]:
    """`choices[0].message` when the reply has the chat-completion shape (tool calls as objects)."""
    try:
        message = reply["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if isinstance(calls, list) and all(isinstance(call, dict) for call in calls):
            return message
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    raise BrainError(f"reply is not a chat completion with choices[0].message: {json.dumps(reply)[:200]}")


def chat_completions_url(base_url: str) -> str:
    """`http://h:8000/v1` or `http://h:8000` -> `http://h:8000/v1/chat/completions` (the OpenAI client convention)."""
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"brain.base_url {base_url!r}: expected http(s)://host:port[/v1]")
    return base + ("/chat/completions" if parts.path.endswith("/v1") else "/v1/chat/completions")


def system_prompt(context: BrainContext) -> str:
    """Language, call variables and closed transfers: what the model needs besides the tools and the transcript."""
    base = context.language.split("-")[0].lower()
    lines = [
        "You are a phone agent answering a live call. Your words are spoken aloud: keep them short, plain, "
        "without markup or lists.",
        f"Speak {_LANGUAGE_NAMES.get(base, context.language)}.",
        "Call a tool when the caller's request matches its description; call at most one tool per reply.",
    ]
    known = {k: v for k, v in sorted(context.variables.items()) if not k.startswith("_")}  # `_`: internal state
    if known:
        lines.append("Known about this call:")
        lines += [f"- {key}: {str(value)[:_MAX_VALUE_CHARS]}" for key, value in known.items()]
    closed = [a for a in context.actions if a.state == "closed"]
    for spec in closed:
        when = f"opens next at {spec.next_opening}" if spec.next_opening else "has no upcoming opening"
        lines.append(f"The action {spec.name} is closed now and {when}.")
    return "\n".join(lines)


def build_messages(turn: Turn, context: BrainContext, toolset: Toolset) -> list[dict[str, Any]]:
    """System prompt, the transcript (caller -> user, agent -> assistant), then the turn being decided.

    An action result or a refusal becomes an assistant tool call followed by its tool message, so the model reads
    it as the outcome of its own call.
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(context)}]
    for entry in context.transcript:
        role = {"caller": "user", "agent": "assistant"}.get(entry.get("who", ""))
        if role and entry.get("text"):
            text = _keypad(entry["text"]) if entry.get("dtmf") else entry["text"]
            messages.append({"role": role, "content": text})
    if turn.kind in ("action_result", "refused"):
        result = turn.result or {}
        name = result.get("action", "")
        call_id = f"call_{len(context.transcript)}"
        messages.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function", "function": {
                "name": toolset.slug_of(name) or slugify(name),
                "arguments": json.dumps(result.get("arguments") or {}, ensure_ascii=False)}}]})
        content = ({"refused": result.get("reason", "")} if turn.kind == "refused" else
                   {k: result[k] for k in ("result", "detail", "say") if k in result})
        messages.append({"role": "tool", "tool_call_id": call_id,
                         "content": json.dumps(content, ensure_ascii=False, default=str)})
        return messages
    said = {"speech": turn.text, "dtmf": _keypad(turn.text), "event": f"[event: {turn.text}]"}.get(
        turn.kind, _TURN_NOTES.get(turn.kind, f"[{turn.kind}]"))
    if messages[-1] != {"role": "user", "content": said}:  # the conversation may have logged it already
        messages.append({"role": "user", "content": said})
    return messages


def _keypad(digits: str) -> str:
    return f"[keypad: the caller pressed {digits}]"
