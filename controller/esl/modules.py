"""Which FreeSWITCH modules the configured features need, checked once per FreeSWITCH (its Core-UUID).

Executing an app whose module is not loaded makes FreeSWITCH hang the caller up with DESTINATION_OUT_OF_ORDER
(../shared/esl-captures/06), so a feature whose module is missing is disabled and logged instead of tried.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gevent.lock

from controller.esl import commands
from controller.esl.session import EslError, EslSession

log = logging.getLogger("switchboard.modules")


@dataclass(frozen=True)
class LoadedModules:
    """What this FreeSWITCH can do for us: module name -> loaded."""

    modules: dict[str, bool] = field(default_factory=dict)

    def has(self, module: str | None) -> bool:
        return not module or self.modules.get(module, False)

    def missing(self) -> list[str]:
        return sorted(m for m, ok in self.modules.items() if not ok)


class ModuleChecker:
    """Caches `api module_exists` answers per Core-UUID; one check per FreeSWITCH, not per call."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = set(modules) | {"mod_dptools", "mod_commands"}
        self._cache: dict[str, LoadedModules] = {}
        self._lock = gevent.lock.Semaphore()

    def for_session(self, session: EslSession) -> LoadedModules:
        core = session.channel.get("Core-UUID", "")
        cached = self._cache.get(core)
        if cached is not None:
            return cached
        with self._lock:  # the first calls of a new FreeSWITCH wait for one check instead of each running one
            cached = self._cache.get(core)
            if cached is not None:
                return cached
            answers: dict[str, bool] = {}
            for module in sorted(self.modules):
                try:
                    answers[module] = session.api(commands.module_exists(module)).strip() == "true"
                except EslError as exc:
                    log.warning("module_exists %s failed (%s); assuming it is missing", module, exc,
                                extra={"uuid": session.uuid})
                    answers[module] = False
            loaded = LoadedModules(answers)
            missing = loaded.missing()
            if missing:
                log.error("FreeSWITCH %s lacks %s: the features that need them are disabled until it is "
                          "loaded (load it in modules.conf.xml, then restart Switchboard or wait for a new "
                          "FreeSWITCH Core-UUID)", core or "?", ", ".join(missing), extra={"uuid": session.uuid})
            else:
                log.info("FreeSWITCH %s has every module the configuration needs", core or "?",
                         extra={"uuid": session.uuid})
            self._cache[core] = loaded
            return loaded
