"""The running Switchboard: configuration, Redis, FreeSWITCH module checks, brains and actions, the listener.

Everything a call needs is built once here, before the first call is accepted (brains embed their action
descriptions, knowledge bases load), so a call greenlet only looks things up.

SIGHUP reloads the configuration file: a file that does not validate, or whose brains cannot be built, is
refused and the running configuration stays. Otherwise agents, actions, brains, knowledge sources and the
after-call actions are rebuilt, then swapped in at once for the calls that arrive next; a live call ends with
what it started with. What the process was started with (listening address, state_dir, Redis,
time_scale, run_worker, max_connections) changes only at the next restart, and the reload says so. Each
reload's outcome goes to the log and to `<state_dir>/reload.json`, which `switchboard reload` waits for.

A configuration version (call/version.py) bundles the services, agents, actions and brains one configuration
gives; a call takes the current version when it connects and keeps it to its end, whatever the reloads after.
"""
from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, Callable

import gevent
import gevent.event
import gevent.lock
from gevent.pywsgi import WSGIServer

from controller.actions import build_actions
from controller.actions.context import LoadedSource, Services
from controller.call.recovery import recover_orphans
from controller.call.session import CallSession
from controller.call.version import AgentPieces, ConfigVersion
from controller.clock import Clock
from controller.config.schema import Config, KnowledgeSource
from controller.esl.listener import Listener
from controller.esl.modules import ModuleChecker
from controller.esl.session import EslSession
from controller.latency import Latencies
from controller.ops.metrics import Probe, health, redis_answers, serve_metrics
from controller.ops.systemd import Notifier
from controller.state.private import write_private
from controller.state.store import HEARTBEAT_S, Store

log = logging.getLogger("switchboard.runtime")

# Settings the running process was built with: a reload reports their change and keeps the old value.
RESTART_ONLY = ("server.host", "server.port", "server.state_dir", "server.time_scale", "server.run_worker",
                "server.max_connections", "redis")


def needed_modules(config: Config) -> set[str]:
    """The FreeSWITCH modules the configured features use (checked with `module_exists`)."""
    modules: set[str] = set()
    for agent in config.agents.values():
        modules.add(agent.speech.tts.module)
        if agent.speech.asr and agent.speech.asr.module:
            modules.add(agent.speech.asr.module)
        for action in agent.actions.during_call:
            if action.type == "transfer":
                modules.add("mod_sofia")
        if agent.machine_detection.enabled != "off":
            modules.add("mod_avmd")
    return {m for m in modules if m}


def used_sources(config: Config) -> set[str]:
    """Knowledge sources some agent uses (RAG actions, semantic brains): loaded before the first call."""
    names = set()
    for agent in config.agents.values():
        names.update(a.source for a in agent.actions.during_call if a.type == "rag")
        if getattr(agent.brain, "rag_source", None):
            names.add(agent.brain.rag_source)
    return names


def open_source(source: KnowledgeSource) -> LoadedSource:
    """Load one source's current index; a missing or damaged index is logged, and RAG answers "no answer"."""
    from knowledge.errors import KnowledgeError
    from knowledge.search import KnowledgeBase
    try:
        return KnowledgeBase.open(source.spec()), None
    except (KnowledgeError, ValueError, OSError) as exc:
        log.error("knowledge source %s unavailable, calls go on without it: %s", source.name, exc)
        return None, str(exc)


def kb_hits(knowledge: dict[str, LoadedSource], source: str, query: str) -> list[dict[str, Any]]:
    """The top chunks of a loaded source as the brains take them; [] when the source is unavailable."""
    kb, _ = knowledge.get(source, (None, None))
    if kb is None:
        return []
    return [{"text": h.text, "source": h.source, "score": h.score} for h in kb.search(query, k=3)]


def _setting(config: Config, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


class Runtime:
    """Owns the process-wide pieces (store, listener, worker) and the current configuration version."""

    def __init__(self, config: Config, *, clock: Clock | None = None, store: Store | None = None,
                 port: int | None = None, run_worker: bool | None = None) -> None:
        self.config = config
        self.clock = clock or Clock(config.server.time_scale)
        self.state_dir = Path(config.server.state_dir)
        self.store = store or Store(config.redis, config.server.state_dir, self.clock)
        self._own_store = store is None
        self.listener = Listener(self.handle, host=config.server.host,
                                 port=config.server.port if port is None else port,
                                 max_connections=config.server.max_connections,
                                 command_timeout=config.server.command_timeout_s,
                                 connect_timeout=config.server.connect_timeout_s,
                                 on_refusal=lambda what: self.store.incr(f"calls:{what}"))
        self.run_worker = config.server.run_worker if run_worker is None else run_worker
        self.version: ConfigVersion | None = None
        self.observers: list[Callable[[CallSession, dict[str, Any]], None]] = []
        self._greenlets: list[gevent.Greenlet] = []
        self.worker = None
        self.metrics: WSGIServer | None = None
        self.latencies = Latencies()
        self._worker_run: gevent.Greenlet | None = None
        self.stopped = gevent.event.Event()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> int:
        """Connect Redis, write the records of calls a dead process left, build brains and actions, bind the
        socket; returns the bound port."""
        if self._own_store:
            self.store.start()
        self.store.hold_state_dir()
        self._recover_orphans()  # before the first call: the heartbeat exists before any call names this start
        self.version = self._build(self.config)
        port = self.listener.bind()
        self._greenlets.append(gevent.spawn(self.listener.listen))
        self._greenlets.append(gevent.spawn(self._own_calls))
        if self.run_worker:
            from controller.aftercall.worker import build_worker
            self.worker = build_worker(self.config, self.store, self.clock)
            self._worker_run = gevent.spawn(self.worker.run, self.stopped)
            self._greenlets.append(self._worker_run)
        self.listener.ready.wait(5)
        if self.config.server.metrics_port is not None:
            self.metrics = serve_metrics(self.config.server.metrics_port, self._probe())
        return port

    def _probe(self) -> Probe:
        """What /metrics and /healthz read, at scrape time."""
        store, listener = self.store, self.listener
        return Probe(live_calls=lambda: listener.connection_count,
                     listening=lambda: listener.accepting,
                     accept_errors=lambda: listener.accept_errors, counters=store.counters,
                     queue=lambda: (int(store.redis.xlen(store.stream_key)),
                                    int(store.redis.xlen(store.dead_letter_key))),
                     redis_ok=lambda: redis_answers(store), latencies=self.latencies,
                     worker_alive=lambda: None if self._worker_run is None else not self._worker_run.dead)

    def _own_calls(self) -> None:
        """Every HEARTBEAT_S until stopped: stay alive for other processes, and recover the calls of dead ones
        (another host's serve, whose heartbeat expires)."""
        while not self.stopped.wait(HEARTBEAT_S):
            self._recover_orphans()

    def _recover_orphans(self) -> None:
        try:
            recover_orphans(self.store, self.clock)
        except Exception:  # never stops the process; the next round tries again
            log.exception("recovering the calls of a dead process failed; next try in %.0f s", HEARTBEAT_S)

    def _build(self, config: Config) -> ConfigVersion:
        """A configuration version: sources loaded, each agent's actions and brain built (descriptions embedded
        now, not on a caller's turn)."""
        from controller.brain import make_brain  # brains import embedders: only once the process runs
        current = self.version.services if self.version is not None else None
        knowledge: dict[str, LoadedSource] = {}
        for name in sorted(used_sources(config)):
            loaded = current.sources.get(name, (None, None)) if current is not None else (None, None)
            unchanged = current is not None and current.config.knowledge_sources.get(name) == \
                config.knowledge_sources[name]
            # a reload keeps a loaded index (it follows new generations by itself) unless its source changed
            if not unchanged or loaded[0] is None:
                loaded = open_source(config.knowledge_sources[name])
            knowledge[name] = loaded
        services = Services(config, self.store, self.clock, knowledge, self.latencies)

        def lookup(source: str, query: str) -> list[dict[str, Any]]:
            return kb_hits(knowledge, source, query)

        agents = {}
        for agent_id, agent in config.agents.items():
            actions = build_actions(agent, services)
            brain = make_brain(agent, lookup)
            if hasattr(brain, "prepare"):
                brain.prepare([a.base_spec() for a in actions.values() if a.offered])
            agents[agent_id] = AgentPieces(agent, actions, brain)
        number = self.version.number + 1 if self.version is not None else 0
        return ConfigVersion(services, agents, ModuleChecker(needed_modules(config)), number)

    def reload(self) -> tuple[bool, str]:
        """Read the configuration file again and use it for new calls; (taken, what happened)."""
        from controller.config.errors import ConfigError
        from controller.config.load import load_config
        path = self.config.path
        try:
            config = gevent.get_hub().threadpool.apply(load_config, (path,))  # 20 ms+ of parsing: off the hub
            version = self._build(config)
        except ConfigError as exc:
            return self._reloaded(False, f"reload refused, the running configuration stays: {path}:\n{exc}")
        except Exception as exc:  # a brain or source that cannot be built: same outcome, with the reason
            log.exception("reload failed while building agents")
            return self._reloaded(False, f"reload refused, the running configuration stays: {exc}")
        kept = [name for name in RESTART_ONLY if _setting(self.config, name) != _setting(config, name)]
        self.config, self.version = config, version
        self.listener.command_timeout = config.server.command_timeout_s
        if self.worker is not None:
            from controller.aftercall.worker import after_call_settings
            self.worker.configure(*after_call_settings(config))
        message = (f"configuration reloaded from {path} (version {version.number}): {len(version.agents)} agent(s) "
                   "for new calls; live calls keep the version they started with")
        if kept:
            message += f"; {', '.join(kept)} changed and take effect at the next restart"
        return self._reloaded(True, message)

    def _reloaded(self, ok: bool, message: str) -> tuple[bool, str]:
        (log.info if ok else log.error)(message)
        status = self.state_dir / "reload.json"
        tmp = status.with_suffix(".tmp")
        write_private(tmp, json.dumps({"at": self.clock.wall(), "ok": ok, "message": message, "pid": os.getpid()}))
        os.replace(tmp, status)
        return ok, message

    def stop(self, drain_timeout: float | None = None) -> int:
        """Stop accepting, drain live calls, stop the worker and the embedded Redis; returns calls cut."""
        timeout = self.config.server.drain_timeout_s if drain_timeout is None else drain_timeout
        left = self.listener.drain(timeout)
        self.stopped.set()
        gevent.joinall(self._greenlets, timeout=5)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.metrics is not None:
            self.metrics.stop(timeout=1)
        self.store.release_ownership()
        if self._own_store:
            self.store.close()
        return left

    def serve_forever(self) -> int:
        """Run until SIGTERM/SIGINT, then drain (`drain_timeout_s`) and exit 0; SIGHUP reloads the configuration.
        Under systemd (`Type=notify`) it says READY, RELOADING, STOPPING, and pings the watchdog while healthy."""
        stop = gevent.event.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, stop.set)
        reloading = gevent.lock.Semaphore()
        systemd, draining = Notifier(), gevent.event.Event()
        where = f"{self.config.server.host}:{self.listener.port}"

        def reload() -> None:
            with reloading:
                systemd.reloading()
                ok, _ = self.reload()
                systemd.ready(f"accepting calls on {where}, configuration version {self.version.number}"
                              + ("" if ok else " (the last reload was refused: see the log)"))

        gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload))
        pid_file = self.state_dir / "serve.pid"
        write_private(pid_file, f"{os.getpid()}\n")
        probe = self._probe()
        systemd.ready(f"accepting calls on {where}")
        systemd.watch(lambda: health(probe, redis=False), draining)
        try:
            stop.wait()
            log.info("signal received: no new calls; draining live calls for up to %ss",
                     self.config.server.drain_timeout_s)
            draining.set()
            systemd.stopping(f"draining live calls for up to {self.config.server.drain_timeout_s:g} s")
            left = self.stop()
        finally:
            pid_file.unlink(missing_ok=True)
            systemd.close()
        log.info("stopped (%d call(s) handed back to the dialplan)", left)
        return 0

    # ---------------------------------------------------------------- per call
    def handle(self, esl: EslSession) -> None:
        """A new socket session: the call runs under the version current now, to its end."""
        CallSession(esl, self.version, self.on_call_ended).run()

    def on_call_ended(self, call: CallSession, record: dict[str, Any]) -> None:
        for observer in list(self.observers):
            try:
                observer(call, record)
            except Exception:
                log.exception("call-ended observer failed", extra={"uuid": call.uuid})
