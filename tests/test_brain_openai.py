"""The openai brain against a real HTTP server on loopback that speaks `/v1/chat/completions`.

The fake server answers from a script keyed by the last message's content (like livekit's fake_llm), records
every request (headers and JSON body), and can answer 500 or stall to exercise the failure paths.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from controller.brain import make_brain
from controller.brain.base import ActionSpec, BrainContext, Turn
from controller.brain.openai import OpenAIBrain, chat_completions_url

SALES = ActionSpec("transfer sales", "transfer", "Transfer to sales when the caller wants to buy.",
                   {"type": "object", "properties": {"destination": {"type": "string", "minLength": 2}},
                    "required": ["destination"], "additionalProperties": False},
                   state="closed", next_opening="2026-03-02T09:00:00+01:00", fillable=("destination",))
KEYPAD = ActionSpec("keypad", "keypad", "Press keys in an automated menu.",
                    {"type": "object", "properties": {"digits": {"type": "string", "pattern": "^[0-9*#wW]{1,32}$"}},
                     "required": ["digits"], "additionalProperties": False})
HANGUP = ActionSpec("hangup", "hangup", "End the call when the caller says goodbye.", {})


def tool_reply(*calls: tuple[str, Any], content: str | None = None) -> dict[str, Any]:
    tool_calls = [{"id": f"call_{i}", "type": "function",
                   "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                  for i, (name, args) in enumerate(calls)]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "local",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}]}


class FakeChatServer:
    """A chat-completions server on 127.0.0.1 with scripted replies; `requests` holds what it received."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = server.script.get(body["messages"][-1]["content"], tool_reply(content="scripted default"))
                if reply == "stall":
                    server.release.wait(10)
                    reply = tool_reply(content="too late")
                status, payload = (500, b'{"error": "model crashed"}') if reply == 500 else (
                    200, json.dumps(reply).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


SCRIPT = {
    "I want to buy ten phones": tool_reply(("transfer_sales", {"destination": "sales"}),
                                           content="Let me put you through to sales."),
    "what are you": tool_reply(content="I am the virtual assistant of Acme."),
    "call the moon": tool_reply(("fly_to_the_moon", {})),
    "press letters": tool_reply(("keypad", {"digits": "abc"})),
    "broken json": tool_reply(("keypad", "{digits: 1")),
    "two tools": tool_reply(("keypad", {"digits": "1#"}), ("hangup", {})),
    "crash": 500,
    "garbage": {"choices": [{"message": "not an object"}]},
    "slow": "stall",
}


@pytest.fixture
def server():
    fake = FakeChatServer(SCRIPT)
    yield fake
    fake.stop()


def context(transcript: list[dict[str, Any]] | None = None, language: str = "en") -> BrainContext:
    return BrainContext("uuid-1", "acme", language, transcript or [],
                        {"caller_name": "Ada", "plan": "gold", "_hangup_attempts": {"hangup": 1}},
                        [SALES, KEYPAD, HANGUP])


def brain(server: FakeChatServer, **kwargs: Any) -> OpenAIBrain:
    options: dict[str, Any] = {"timeout_s": 2.0, **kwargs}
    return OpenAIBrain(server.base_url, "local-model", **options)


def test_a_tool_call_is_mapped_back_to_its_action_with_the_models_words(server):
    decision = brain(server).decide(Turn("speech", "I want to buy ten phones"), context())
    assert decision.say == "Let me put you through to sales."
    assert decision.action is not None
    assert (decision.action.name, decision.action.arguments) == ("transfer sales", {"destination": "sales"})
    assert decision.detail == {"tool_call_id": "call_0"}


def test_the_request_offers_every_action_as_a_tool_without_parallel_calls(server):
    brain(server, temperature=0.1).decide(Turn("speech", "what are you"), context())
    [request] = server.requests
    body = request["body"]
    assert request["path"] == "/v1/chat/completions"
    assert body["model"] == "local-model" and body["temperature"] == 0.1
    assert body["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in body["tools"]] == ["transfer_sales", "keypad", "hangup"]
    assert body["tools"][1]["function"]["parameters"] == KEYPAD.parameters
    assert "Authorization" not in request["headers"]


def test_the_system_prompt_carries_language_variables_and_closed_transfers_and_the_transcript_follows(server):
    transcript = [{"who": "agent", "text": "Bonjour, que puis-je faire ?"}, {"who": "system", "text": "barge-in"},
                  {"who": "caller", "text": "what are you"}]
    decision = brain(server).decide(Turn("speech", "what are you"), context(transcript, "fr-FR"))
    assert decision.say == "I am the virtual assistant of Acme." and decision.action is None
    messages = server.requests[0]["body"]["messages"]
    system = messages[0]["content"]
    assert messages[0]["role"] == "system"
    assert "Speak French." in system and "- caller_name: Ada" in system and "- plan: gold" in system
    assert "_hangup_attempts" not in system
    assert "The action transfer sales is closed now and opens next at 2026-03-02T09:00:00+01:00." in system
    assert messages[1:] == [{"role": "assistant", "content": "Bonjour, que puis-je faire ?"},
                            {"role": "user", "content": "what are you"}]


def test_an_action_result_reaches_the_model_as_the_answer_to_its_own_tool_call(server):
    result = {"action": "transfer sales", "type": "transfer", "result": "closed", "detail": {"opens": "9:00"},
              "say": "Sales opens at nine."}
    tool_content = json.dumps({"result": "closed", "detail": {"opens": "9:00"}, "say": "Sales opens at nine."})
    server.script[tool_content] = tool_reply()
    decision = brain(server).decide(Turn("action_result", result=result), context())
    assert decision.say == "Sales opens at nine."  # the model said nothing: the action's own words
    call, answer = server.requests[0]["body"]["messages"][-2:]
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "transfer_sales"
    assert answer == {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": tool_content}


def test_a_refused_call_tells_the_model_why(server):
    turn = Turn("refused", result={"action": "keypad", "reason": "arguments.digits: does not match"})
    brain(server).decide(turn, context())
    answer = server.requests[0]["body"]["messages"][-1]
    assert answer["role"] == "tool" and json.loads(answer["content"]) == {"refused": "arguments.digits: does not match"}


def test_an_unknown_tool_makes_the_agent_say_the_fallback_line_and_records_why(server):
    decision = brain(server, fallback_text="Sorry, say again?").decide(Turn("speech", "call the moon"), context())
    assert decision.say == "Sorry, say again?" and decision.action is None
    assert decision.detail["error"].startswith("unknown tool 'fly_to_the_moon' (offered: transfer_sales, keypad")


def test_arguments_that_fail_the_schema_or_are_not_json_are_never_run(server):
    bad = brain(server).decide(Turn("speech", "press letters"), context())
    assert bad.action is None and bad.say == "Sorry, I can't help with that. Could you say it another way?"
    assert "tool 'keypad': bad arguments: arguments.digits: 'abc' does not match" in bad.detail["error"]
    broken = brain(server).decide(Turn("speech", "broken json"), context())
    assert broken.action is None and "tool 'keypad': arguments are not JSON" in broken.detail["error"]


def test_only_the_first_of_several_tool_calls_runs(server):
    decision = brain(server).decide(Turn("speech", "two tools"), context())
    assert decision.action is not None
    assert (decision.action.name, decision.action.arguments) == ("keypad", {"digits": "1#"})
    assert "1 further tool call(s) ignored" in decision.note


def test_an_http_500_makes_the_agent_say_the_fallback_line_in_its_language(server):
    decision = brain(server, language="fr").decide(Turn("speech", "crash"), context(language="fr"))
    assert decision.say.startswith("Désolé") and decision.action is None
    assert decision.detail["error"].startswith(f"HTTP 500 from {server.base_url}/chat/completions")


def test_a_reply_that_is_not_a_chat_completion_gives_the_fallback_line(server):
    decision = brain(server).decide(Turn("speech", "garbage"), context())
    assert decision.action is None and decision.detail["error"].startswith("reply is not a chat completion")


def test_a_server_that_does_not_answer_in_time_gives_the_fallback_line(server):
    decision = brain(server, timeout_s=0.3).decide(Turn("speech", "slow"), context())
    assert decision.action is None and decision.say.startswith("Sorry")
    assert decision.detail["error"].endswith("no complete response within 0.3 s")


def test_a_refused_connection_gives_the_fallback_line():
    decision = OpenAIBrain("http://127.0.0.1:9", "m", timeout_s=1).decide(Turn("speech", "hi"), context())
    assert decision.action is None
    assert decision.detail["error"].startswith("POST http://127.0.0.1:9/v1/chat/completions: ConnectionRefusedError")


def test_non_speech_turns_are_described_to_the_model(server):
    b = brain(server)
    for turn, said in [(Turn("no_input"), "[silence: the caller said nothing]"),
                       (Turn("dtmf", "12#"), "[keypad: the caller pressed 12#]"),
                       (Turn("event", "hold"), "[event: hold]")]:
        b.decide(turn, context())
        assert server.requests[-1]["body"]["messages"][-1] == {"role": "user", "content": said}
    logged = [{"who": "caller", "text": "12#", "dtmf": True}]
    b.decide(Turn("dtmf", "12#"), context(logged))
    assert server.requests[-1]["body"]["messages"][1:] == [
        {"role": "user", "content": "[keypad: the caller pressed 12#]"}]


def test_make_brain_reads_the_api_key_from_the_environment_and_sends_it_as_a_bearer_token(server, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_TEST_LLM_KEY", "sk-local-123")
    agent = SimpleNamespace(id="acme", language="en", brain=SimpleNamespace(
        type="openai", base_url=server.base_url, model="local-model", api_key_env="SWITCHBOARD_TEST_LLM_KEY",
        timeout_s=2, temperature=0.0))
    made = make_brain(agent)
    assert made.name == "openai"
    made.decide(Turn("speech", "what are you"), context())
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-local-123"
    monkeypatch.delenv("SWITCHBOARD_TEST_LLM_KEY")
    with pytest.raises(ValueError, match="agent acme: brain.api_key_env: environment variable "
                                         "SWITCHBOARD_TEST_LLM_KEY is not set"):
        make_brain(agent)


def test_the_base_url_may_be_given_with_or_without_v1():
    assert chat_completions_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("https://llm.local/api/v1") == "https://llm.local/api/v1/chat/completions"
    with pytest.raises(ValueError, match="brain.base_url 'llm.local': expected http"):
        chat_completions_url("llm.local")
