"""During-call actions, one module per type, registered by type (duplicates refused in `base.register`)."""
from __future__ import annotations

from typing import Any

from controller.actions import hangup, keypad, rag, transfer, wait, workflow  # noqa: F401  (registration side effect)
from controller.actions.base import REGISTRY, Action


def build_actions(agent: Any, runtime: Any) -> dict[str, Action]:
    """One Action instance per configured during-call action of `agent`, by name."""
    actions: dict[str, Action] = {}
    for config in agent.actions.during_call:
        cls = REGISTRY.get(config.type)
        if cls is None:
            raise ValueError(f"agent {agent.id}: no implementation for action type {config.type!r}")
        actions[config.name] = cls(config, runtime, agent)
    return actions
