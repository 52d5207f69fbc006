"""Run the real controller in-process against the simulator over real TCP, with a real (embedded) Redis.

One redis-server serves the whole test session; each test gets its own key prefix, so tests stay independent
without paying for a server start each.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from controller.clock import Clock
from controller.config.load import load_config
from controller.state.embedded_redis import EmbeddedRedis, _pid_alive
from controller.runtime import Runtime
from fssim import Scenario, Simulator
from controller.state.connection import StoreSettings
from controller.state.store import Store

TIME_SCALE = 0.05
_prefixes = itertools.count(1)

BASE_AGENT = """
language: fr
brain: {type: semantic, fallback_text: "Pardon, pouvez-vous reformuler ?"}
speech:
  asr: {module: mod_unimrcp, engine: unimrcp, grammar: "builtin:speech/transcribe"}
  greeting: "Bonjour, que puis-je faire pour vous ?"
actions:
  during_call:
    - type: hangup
      name: end_call
      description: >-
        Raccrocher quand l'appelant prend congé et n'a plus besoin de rien.
        Exemples : "au revoir", "merci, bonne journée", "c'est tout pour moi, merci".
      condition: L'appelant prend congé.
    - type: keypad
      name: menu_choice
      description: >-
        Dans un serveur vocal, choisir l'option du suivi de colis.
        Exemples : "pour le suivi de votre colis tapez 1", "tapez 1 pour suivre une livraison".
      digits: "1"
"""

# Billion laughs: nine levels of nine aliases each, 9**9 (387 million) strings once expanded.
ALIAS_BOMB = "\n".join(["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
                       + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)])
ALIAS_BOMB_AGENT = BASE_AGENT + """    - type: workflow
      name: lookup
      description: Look up the caller's order.
      request:
        url: http://127.0.0.1:9/orders
        body:
""" + textwrap.indent(ALIAS_BOMB, " " * 10) + "\n"


class SessionRedis:
    """The session's redis-server (started on first use, stopped at exit by the conftest fixture)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sb-redis-", dir="/tmp"))
        self.server = EmbeddedRedis(self.dir / "redis").start()

    def store(self, state_dir: Path, clock: Clock) -> Store:
        settings = StoreSettings(url=self.server.url, key_prefix=f"t{next(_prefixes)}", call_ttl_s=600,
                                 max_attempts=3, retry_backoff_s=0.5)
        return Store(settings, state_dir, clock).start(maintain=False)

    def stop(self) -> None:
        """Stopped even when a client is still connected (EmbeddedRedis.stop leaves it running then): once its
        directory is gone, nobody would ever stop it."""
        pid = self.server.pid
        self.server.stop()
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def write_config(directory: Path, agents: dict[str, str] | None = None, extra: str = "", **server: Any) -> Path:
    """A config file with `agents` (id -> YAML text of the agent) and server settings for tests."""
    agents = agents or {"support": BASE_AGENT}
    server = {"state_dir": str(directory / "state"), "time_scale": TIME_SCALE, "command_timeout_s": 5,
              "execute_timeout_s": 10, **server}
    text = "server:\n" + textwrap.indent(yaml.safe_dump(server, sort_keys=True), "  ")
    text += f"default_agent: {next(iter(agents))}\nagents:\n"
    for agent_id, body in agents.items():
        text += f"  {agent_id}:\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    text += textwrap.dedent(extra)
    path = directory / "switchboard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def running(config_path: Path, session_redis: SessionRedis, **kwargs: Any) -> Iterator[Runtime]:
    """A started Runtime on an ephemeral port (no worker unless asked), stopped afterwards."""
    config = load_config(config_path)
    clock = Clock(config.server.time_scale)
    store = session_redis.store(config.server.state_dir, clock)
    runtime = Runtime(config, clock=clock, store=store, port=0, run_worker=kwargs.pop("run_worker", False),
                      **kwargs)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop(drain_timeout=2)
        store.close()


def simulator(runtime: Runtime) -> Simulator:
    """The runtime's simulator (one per runtime, made at first use)."""
    return runtime.__dict__.setdefault("_test_simulator", Simulator(("127.0.0.1", runtime.listener.port),
                                                                     time_scale=runtime.clock.time_scale))


def call(runtime: Runtime, scenario: dict[str, Any]):
    """Play one scenario (a dict as in examples/scenarios/) against the runtime; returns the recording."""
    sim = simulator(runtime)
    # The caller waits 5 s of agent silence before hanging up (not the default 2): on a loaded CI machine a
    # decision can take longer than 2 call seconds at this time scale.
    return sim.run(Scenario.from_dict({"name": "test", "end_after_s": 5, **scenario}))


def records(runtime: Runtime) -> list[dict[str, Any]]:
    """Every call record appended to the after-call stream, oldest first."""
    return [json.loads(fields[b"record"]) for _, fields in runtime.store.redis.xrange(runtime.store.stream_key)]


def sent(recording, app: str | None = None) -> list[str]:
    """Commands the controller sent, as readable one-liners (`sendmsg execute speak <arg>`, `api ...`)."""
    lines = []
    for command in recording.commands:
        if command.name == "sendmsg" and command.app:
            if app is None or command.app == app:
                lines.append(f"{command.app} {command.app_arg or ''}".strip())
        elif app is None:
            lines.append(f"{command.name} {command.arg}".strip())
    return lines
