"""During-call actions, one module per type, registered by type (duplicates refused in `base.register`)."""
from __future__ import annotations

from controller.actions import hangup, keypad, rag, transfer, wait, workflow  # noqa: F401  (registration)
from controller.actions.base import REGISTRY, Action
from controller.actions.context import Services
from controller.config.agent import AgentConfig


def build_actions(agent: AgentConfig, services: Services) -> dict[str, Action]:
    """One Action instance per configured during-call action of `agent`, by name, for one configuration version."""
    actions: dict[str, Action] = {}
    for config in agent.actions.during_call:
        cls = REGISTRY.get(config.type)
        if cls is None:
            raise ValueError(f"agent {agent.id}: no implementation for action type {config.type!r}")
        actions[config.name] = cls(config, agent, services)
    return actions
