"""Configurations and wire helpers shared by the transfer tests (the simulator against the real controller)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from tests.support.controller import write_config

ASKS_FOR_ADVISOR = "je voudrais parler à un conseiller"
CONNECTIONS = """
sip_connections:
  trunk: {gateway: trunk_main}
"""


def agent_yaml(transfer: dict[str, Any], **agent: Any) -> str:
    """A French semantic agent with one transfer action (`to_advisor` unless named) and a hang-up action."""
    action = {"type": "transfer", "name": "to_advisor",
              "description": "Transférer l'appel à un conseiller humain quand l'appelant demande à parler à "
                             "quelqu'un. Exemples : \"je voudrais parler à un conseiller\", \"passez-moi un "
                             "conseiller à Lyon\".", **transfer}
    body = {"language": "fr", "brain": {"type": "semantic", "fallback_text": "Pardon, pouvez-vous reformuler ?"},
            "speech": {"asr": {"module": "mod_unimrcp", "engine": "unimrcp", "grammar": "builtin:speech/transcribe"},
                       "greeting": "Bonjour, que puis-je faire pour vous ?"},
            **agent,
            "actions": {"during_call": [action, {
                "type": "hangup", "name": "end_call", "condition": "L'appelant prend congé.",
                "description": "Raccrocher quand l'appelant dit au revoir ou n'a plus de question. Exemples : "
                               "\"merci au revoir\", \"c'est tout, au revoir\"."}]}}
    return yaml.safe_dump(body, allow_unicode=True, sort_keys=False)


def transfer_config(directory: Path, transfer: dict[str, Any] | None = None, extra: str = CONNECTIONS,
                    agents: dict[str, str] | None = None, **server: Any) -> Path:
    transfer = transfer or {"destinations": [{"country": "FR", "number": "01 70 36 39 50",
                                              "description": "Conseillers Paris"}]}
    return write_config(directory, agents or {"support": agent_yaml(transfer)}, textwrap.dedent(extra), **server)


def wire(recording, app: str) -> list[str]:
    """The arguments of every execute of `app` the controller sent, in order."""
    return [c.app_arg or "" for c in recording.commands if c.name == "sendmsg" and c.app == app]


def apis(recording) -> list[str]:
    return [c.arg for c in recording.commands if c.name == "api"]


def transfer_entry(record: dict[str, Any], name: str = "to_advisor") -> dict[str, Any]:
    [entry] = [a for a in record["actions"] if a["name"] == name]
    return entry


def seconds_between(recording, first, then) -> float:
    """Call seconds from the first frame matching `first` to the next frame after it matching `then`."""
    start = next(f for f in recording.frames if first(f))
    end = next(f for f in recording.frames if f.t >= start.t and f is not start and then(f))
    return end.t - start.t


def is_event(name: str, application: str | None = None):
    def match(frame) -> bool:
        if frame.direction != "out" or frame.headers.get("Content-Type") != "text/event-plain":
            return False
        event = frame.event
        return event.get("Event-Name") == name and (application is None or event.get("Application") == application)
    return match


def is_execute(app: str):
    def match(frame) -> bool:
        if frame.direction != "in":
            return False
        text = frame.raw.decode("utf-8", "replace").lower()
        return text.startswith("sendmsg") and f"execute-app-name: {app}\n" in text
    return match


# The agent a hand-off reaches (uuid_transfer to 2002 XML default).
SALES = """
language: fr
extension: "2002"
context: default
brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}
speech:
  asr: {module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}
  greeting: "Service commercial, bonjour."
actions:
  during_call:
    - type: hangup
      name: end_call
      description: 'Raccrocher quand l''appelant dit au revoir. Exemples : "merci au revoir", "au revoir".'
      condition: L'appelant prend congé.
"""
