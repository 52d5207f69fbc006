"""What a knowledge source is to the knowledge package: where its index lives, which embedder reads it, and
the score floor of its answers.

The `knowledge_sources` section of the configuration has one parser, controller/config/schema.py
(`load_knowledge_sources` for the knowledge CLI, `load_config` for the rest); its `KnowledgeSource.spec()`
makes the SourceSpec used here. This module stays free of model libraries: the configuration imports it
before anything heavy is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from knowledge.errors import KnowledgeError

BUILTIN_EMBEDDERS = ("minilm", "use-m3")
ST_BACKEND = "sentence-transformers"
LANGUAGES = ("fr", "en")

# Measured by bench/rag.py on the shipped question sets (examples/knowledge/questions-*.yaml), recall@3 / top-1:
# fr: use-m3 0.96 / 0.81, minilm 0.58 / 0.42; en: use-m3 0.96 / 0.87, minilm 0.96 / 0.79. English is a tie at
# recall@3 that use-m3 wins at top-1 while encoding a query about 5x faster, so it is the default for both.
_DEFAULT_BY_LANGUAGE = {"fr": "use-m3", "en": "use-m3"}


@dataclass(frozen=True)
class EmbedderSpec:
    """Which embedder to load: a built-in name, or a local sentence-transformers directory."""

    backend: str
    model_dir: Path | None = None

    @property
    def name(self) -> str:
        """The config spelling, recorded in each index manifest."""
        if self.backend == ST_BACKEND:
            return f"{ST_BACKEND}:{self.model_dir.name}"
        return self.backend

    @property
    def model_id(self) -> str:
        """The model behind the name; an index built with another model cannot be searched with this one."""
        if self.backend == "minilm":
            return "sentence-transformers/all-MiniLM-L6-v2"
        if self.backend == "use-m3":
            return "google/universal-sentence-encoder-multilingual/3"
        return f"local:{self.model_dir.name}"


def default_embedder(language: str) -> EmbedderSpec:
    """The embedder that scores best on the shipped question set for `language` (use-m3 for fr and en)."""
    try:
        return EmbedderSpec(_DEFAULT_BY_LANGUAGE[language])
    except KeyError:
        raise KnowledgeError(f"no default embedder for language {language!r}; allowed: {', '.join(LANGUAGES)}") from None


@dataclass(frozen=True)
class SourceSpec:
    """One knowledge source: where its index lives, how it is embedded, and the score floor for answers."""

    name: str
    index_dir: Path
    embedder: EmbedderSpec
    language: str
    min_score: float = 0.0
