"""One configuration version as the calls see it: its services, each agent's actions and brain, its module checks.

The runtime builds one at start and one per accepted reload; a call takes the current one when FreeSWITCH
connects it and keeps it to the end (actions/context.py says why), so a reload only changes the calls after it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from controller.actions.base import Action
from controller.actions.context import Services
from controller.brain.base import Brain
from controller.config.agent import AgentConfig
from controller.esl.modules import ModuleChecker


@dataclass(frozen=True)
class AgentPieces:
    """An agent of one version: its configuration, its during-call actions by name, its brain."""

    agent: AgentConfig
    actions: Mapping[str, Action]
    brain: Brain


@dataclass(frozen=True)
class ConfigVersion:
    """Everything a call needs from the configuration it started under; `number` counts reloads (0 at start)."""

    services: Services
    agents: Mapping[str, AgentPieces]
    modules: ModuleChecker
    number: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", MappingProxyType(dict(self.agents)))

    def choose_agent(self, agent_id: str | None, call_log: logging.LoggerAdapter) -> AgentPieces:
        """The agent the dialplan named (`set switchboard_agent=...`), else the default agent, said in the log."""
        config = self.services.config
        if agent_id and agent_id in self.agents:
            return self.agents[agent_id]
        if agent_id:
            call_log.warning("unknown switchboard_agent %r: using the default agent %s (check the dialplan's "
                             "`set switchboard_agent=...`)", agent_id, config.default_agent)
        return self.agents[config.default_agent]
