"""Which FreeSWITCH modules the configured features need, checked once per FreeSWITCH (its Core-UUID).

Executing an app whose module is not loaded makes FreeSWITCH hang the caller up with DESTINATION_OUT_OF_ORDER
(../shared/esl-captures/06), so a feature whose module is missing is disabled and logged instead of tried.

Only FreeSWITCH's answers are kept. A check that gets none (the call's socket closed, a timeout, an -ERR) stops
that call's checks: the call treats the modules left unchecked as missing, and the next call of that FreeSWITCH
checks them again. Caching them would disable their features for every call until a restart.
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
    """Caches `api module_exists` answers per Core-UUID; one answer per module and FreeSWITCH, not per call."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = set(modules) | {"mod_dptools", "mod_commands"}
        self._answers: dict[str, dict[str, bool]] = {}  # Core-UUID -> module -> loaded, as FreeSWITCH answered
        self._lock = gevent.lock.Semaphore()

    def for_session(self, session: EslSession) -> LoadedModules:
        core = session.channel.get("Core-UUID", "")
        answers = self._answers.setdefault(core, {})
        if self.modules <= answers.keys():
            return LoadedModules(dict(answers))
        with self._lock:  # the first calls of a new FreeSWITCH wait for one check instead of each running one
            todo = sorted(self.modules - answers.keys())  # none left when the call ahead of this one got them all
            for module in todo:
                try:
                    answers[module] = session.api(commands.module_exists(module)).strip() == "true"
                except EslError as exc:
                    unchecked = sorted(self.modules - answers.keys())
                    log.warning("module_exists %s got no answer (%s): this call treats %s as missing; the next call "
                                "checks again", module, exc, ", ".join(unchecked), extra={"uuid": session.uuid})
                    return LoadedModules({m: answers.get(m, False) for m in self.modules})
            loaded = LoadedModules(dict(answers))
            if todo:
                self._report(core, loaded, session.uuid)
            return loaded

    @staticmethod
    def _report(core: str, loaded: LoadedModules, uuid: str) -> None:
        """Once per FreeSWITCH, by the call that got its last answer."""
        missing = loaded.missing()
        if missing:
            log.error("FreeSWITCH %s lacks %s: the features that need them are disabled until it is "
                      "loaded (load it in modules.conf.xml, then restart Switchboard or wait for a new "
                      "FreeSWITCH Core-UUID)", core or "?", ", ".join(missing), extra={"uuid": uuid})
        else:
            log.info("FreeSWITCH %s has every module the configuration needs", core or "?", extra={"uuid": uuid})
