"""The `openai` brain: any OpenAI-compatible `/v1/chat/completions` server on-premise (vLLM, llama.cpp, Ollama).

Each offered action is a tool (slug name, the action's description, its argument schema); the request says
`parallel_tool_calls: false` and only the first tool call of a reply runs. Whatever goes wrong (HTTP error, timeout,
an unknown tool, arguments that fail the schema) the agent says the fallback line and the call goes on; the error
is in `Decision.detail["error"]` for the call record. HTTP goes through `http.client`, which is cooperative once
gevent has monkey-patched the process, so a slow model blocks only the calling greenlet.
"""
from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlsplit

import gevent

from ..log import call_logger
from .base import ActionCall, BrainContext, Decision, Turn
from .lines import line
from .tools import Toolset, build_toolset, slugify, validate_arguments

_LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
_TURN_NOTES = {
    "no_input": "[silence: the caller said nothing]",
    "no_match": "[the caller spoke but the words could not be recognised]",
    "start": "[the call was just answered and the greeting has been said]",
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
        self.fallback_text = fallback_text or line(language, "fallback")

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
        try:
            message = reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise BrainError(f"reply without choices[0].message: {json.dumps(reply)[:200]}") from None
        say = (message.get("content") or "").strip()
        if not say and turn.kind == "action_result":
            say = (turn.result or {}).get("say") or ""
        calls = message.get("tool_calls") or []
        if not calls:
            return Decision(say=say, note="answered without a tool")
        function = calls[0].get("function") or {}
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
        """POST the request; the socket timeout bounds each read, `gevent.Timeout` bounds the whole exchange."""
        parts = urlsplit(self.url)
        conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env or "", "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn = conn_class(parts.netloc, timeout=self.timeout_s)
        try:
            with gevent.Timeout(self.timeout_s, BrainError(f"no reply from {self.url} within {self.timeout_s} s")):
                conn.request("POST", parts.path, body=json.dumps(body).encode(), headers=headers)
                response = conn.getresponse()
                payload = response.read()
        except TimeoutError:
            raise BrainError(f"no reply from {self.url} within {self.timeout_s} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise BrainError(f"request to {self.url} failed: {exc}") from None
        finally:
            conn.close()
        if response.status != 200:
            raise BrainError(f"HTTP {response.status} from {self.url}: {payload[:200].decode(errors='replace')}")
        try:
            return json.loads(payload)
        except ValueError:
            raise BrainError(f"reply from {self.url} is not JSON: {payload[:120]!r}") from None


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
    if context.variables:
        lines.append("Known about this call:")
        lines += [f"- {key}: {value}" for key, value in sorted(context.variables.items())]
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
