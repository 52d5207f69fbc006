"""`switchboard knowledge ...`: build, query, list and remove the knowledge bases the rag action searches.

Every command takes `--config CONFIG` (or SWITCHBOARD_CONFIG) and reads only its `knowledge_sources`
section, validated by config.load as `check` validates it, so indexes can be built while the agents are still
being written. Every error a person can fix ends the command with one clear line on
stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from controller.config.errors import ConfigError
from controller.config.load import load_knowledge_sources
from knowledge import DEFAULT_CHUNK_TOKENS, DEFAULT_HNSW_THRESHOLD, DEFAULT_OVERLAP_TOKENS
from knowledge.errors import KnowledgeError
from knowledge.sources import SourceSpec


class _Failure(click.ClickException):
    exit_code = 2


def _config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        envvar="SWITCHBOARD_CONFIG",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Switchboard YAML config whose knowledge_sources section declares the sources (env: SWITCHBOARD_CONFIG).",
    )(fn)


def _clear_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """KnowledgeError and OS errors become `Error: ...` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KnowledgeError as exc:
            raise _Failure(str(exc)) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise _Failure(f"{where}{exc.strerror or exc}") from None

    return wrapper


def _sources(config_path: Path) -> dict[str, SourceSpec]:
    if not config_path.exists():
        raise KnowledgeError(f"config file {config_path} not found: pass --config FILE or set SWITCHBOARD_CONFIG")
    try:
        return {name: source.spec() for name, source in load_knowledge_sources(config_path).items()}
    except ConfigError as exc:
        raise KnowledgeError(str(exc)) from None


def _source(config_path: Path, name: str) -> SourceSpec:
    sources = _sources(config_path)
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise KnowledgeError(
            f"unknown knowledge source {name!r} (configured in {config_path}: {known}); "
            "declare it under knowledge_sources with index_dir and language"
        )
    return sources[name]


@click.group("knowledge")
def knowledge() -> None:
    """Knowledge bases for the rag action: index files offline, query, list, remove."""


@knowledge.command("index")
@click.argument("source")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_config_option
@click.option("--chunk-tokens", type=click.IntRange(16), default=None,
              help=f"Chunk size in the embedder's tokens [default: {DEFAULT_CHUNK_TOKENS}, at most the model's window].")
@click.option("--overlap-tokens", type=click.IntRange(0), default=DEFAULT_OVERLAP_TOKENS, show_default=True,
              help="Tokens of trailing sentences repeated at the start of the next chunk.")
@click.option("--hnsw-threshold", type=click.IntRange(1), default=DEFAULT_HNSW_THRESHOLD, show_default=True,
              help="Above this many chunks the index is HNSW (approximate) instead of exact.")
@_clear_errors
def index_command(source: str, paths: tuple[Path, ...], config_path: Path, chunk_tokens: int | None,
                  overlap_tokens: int, hnsw_threshold: int) -> None:
    """Index PATH... (files, or directories of .txt .md .html .pdf) as the content of SOURCE.

    Unchanged files keep their vectors, new and changed ones are embedded, files not under PATH... are
    dropped. The new generation replaces the old one atomically; running processes pick it up.
    """
    from knowledge.build import build_source

    spec = _source(config_path, source)
    report = build_source(spec, list(paths), chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens,
                          hnsw_threshold=hnsw_threshold)
    for path, reason in report.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    for note in report.notes:
        click.echo(note, err=True)
    files = len(report.embedded) + len(report.reused)
    click.echo(f"{source}: {files} files, {report.chunks} chunks, {report.index_type} index, {report.generation}")
    click.echo(f"  embedded {len(report.embedded)} new or changed file(s), kept {len(report.reused)} unchanged, "
               f"dropped {len(report.dropped)}, skipped {len(report.skipped)}")


@knowledge.command("query")
@click.argument("source")
@click.argument("question")
@_config_option
@click.option("-k", "--top", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="Chunks to show.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {text, source, position, score, chunk_id}.")
@_clear_errors
def query_command(source: str, question: str, config_path: Path, k: int, as_json: bool) -> None:
    """Print the chunks of SOURCE that best answer QUESTION, with scores and files."""
    from knowledge.search import KnowledgeBase

    hits = KnowledgeBase.open(_source(config_path, source)).search(question, k)
    if as_json:
        click.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no chunk scores above the source's min_score")
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank}. {hit.score:.3f}  {hit.source} (chunk {hit.position})")
        click.echo(textwrap.indent(textwrap.fill(hit.text, 100), "    "))


@knowledge.command("list")
@_config_option
@_clear_errors
def list_command(config_path: Path) -> None:
    """Show each configured source: language, embedder, chunks, files, index type, size, last build."""
    from knowledge.index import Manifest, current_name, disk_size

    sources = _sources(config_path)
    if not sources:
        click.echo(f"no knowledge_sources in {config_path}")
        return
    rows = [("SOURCE", "LANG", "EMBEDDER", "CHUNKS", "FILES", "INDEX", "SIZE", "LAST BUILD")]
    for name, spec in sorted(sources.items()):
        try:
            generation = current_name(spec.index_dir)
            if generation is None:
                rows.append((name, spec.language, spec.embedder.name, "-", "-", "-", "-", "not built"))
                continue
            m = Manifest.from_json(spec.index_dir / generation / "manifest.json")
        except KnowledgeError as exc:
            rows.append((name, spec.language, spec.embedder.name, "-", "-", "-", "-", f"damaged: {exc}"))
            continue
        rows.append((name, spec.language, m.embedder, str(m.chunk_count), str(len(m.files)), m.index_type,
                     _human_size(disk_size(spec.index_dir)), m.built_at))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@knowledge.command("remove")
@click.argument("source")
@_config_option
@_clear_errors
def remove_command(source: str, config_path: Path) -> None:
    """Delete the index of SOURCE (its entry in the config stays; remove it there by hand)."""
    from knowledge.index import remove_index

    spec = _source(config_path, source)
    if remove_index(spec.index_dir):
        click.echo(f"removed the index of {source} ({spec.index_dir})")
    else:
        click.echo(f"{source} has no index in {spec.index_dir}; nothing removed")


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
