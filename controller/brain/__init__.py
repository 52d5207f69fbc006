"""Brains: the `semantic` brain (default, offline) and the `openai` brain, built from an agent's config.

`make_brain(agent)` reads `agent.brain` and `agent.language` by attribute (the validated config models, or any
object shaped like them). Building a semantic brain loads its embedder (on the embedder's own thread).
"""
from __future__ import annotations

import os
from typing import Any

from controller.brain.base import ActionCall, ActionSpec, Brain, BrainContext, Decision, Turn
from controller.brain.openai import OpenAIBrain
from controller.brain.semantic import KbLookup, SemanticBrain

__all__ = ["ActionCall", "ActionSpec", "Brain", "BrainContext", "Decision", "Turn", "OpenAIBrain", "SemanticBrain",
           "make_brain"]


def make_brain(agent: Any, kb_lookup: KbLookup | None = None) -> Brain:
    """The agent's brain. `kb_lookup(source, query)` -> chunks ({text, source, score}, best first, already above
    the source's min_score) lets a semantic brain with `rag_source` answer from it when no action matched."""
    config = agent.brain
    kind = getattr(config, "type", "semantic")
    language = getattr(agent, "language", "en")
    where = f"agent {getattr(agent, 'id', '?')}: brain"
    if kind == "openai":
        env = getattr(config, "api_key_env", None)
        if env and env not in os.environ:
            raise ValueError(f"{where}.api_key_env: environment variable {env} is not set; export it or remove "
                             f"api_key_env for a server without a key")
        return OpenAIBrain(config.base_url, config.model, language=language, api_key_env=env,
                           timeout_s=getattr(config, "timeout_s", 8.0), temperature=getattr(config, "temperature", 0.2),
                           fallback_text=getattr(config, "fallback_text", None))
    if kind != "semantic":
        raise ValueError(f"{where}.type: unknown brain {kind!r}; allowed: semantic, openai")
    rag_source = getattr(config, "rag_source", None)
    if rag_source and not callable(kb_lookup):
        raise TypeError(f"{where}.rag_source {rag_source!r} needs make_brain(agent, kb_lookup) with a callable "
                        f"(source, query) -> chunks; got {type(kb_lookup).__name__}")
    from knowledge.embedders import get_embedder  # loads numpy models lazily
    from knowledge.sources import EmbedderSpec, default_embedder

    embedder_config = getattr(config, "embedder", None)
    if embedder_config is None:
        spec = default_embedder(language.split("-")[0])
    elif isinstance(embedder_config, str):
        spec = EmbedderSpec(embedder_config)
    else:
        spec = EmbedderSpec(embedder_config.backend, getattr(embedder_config, "model_dir", None))
    return SemanticBrain(get_embedder(spec), language=language, threshold=_explicit(config, "threshold"),
                         margin=_explicit(config, "margin"), fallback_text=_explicit(config, "fallback_text"),
                         rag_source=rag_source, kb_lookup=kb_lookup)


def _explicit(config: Any, field: str) -> Any:
    """The value the operator wrote, or None so the embedder's calibrated default applies.

    A pydantic model records which fields were given (`model_fields_set`); a schema default is not a choice.
    """
    fields_set = getattr(config, "model_fields_set", None)
    if fields_set is not None and field not in fields_set:
        return None
    return getattr(config, field, None)
