"""`switchboard knowledge ...` end to end with the real models: recall on the shipped corpora, and every
error a person can make ending in one clear line and exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from controller.cli.knowledge import knowledge

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "knowledge"


def write_config(path: Path, sources: dict) -> Path:
    path.write_text(yaml.safe_dump({"knowledge_sources": sources}), encoding="utf-8")
    return path


def run(*args: str, config: Path | None = None) -> Result:
    env = {"SWITCHBOARD_CONFIG": str(config) if config else None}
    return CliRunner().invoke(knowledge, list(args), env=env, catch_exceptions=False)


def result_lines(result: Result) -> int:
    """The problems listed, one per line."""
    return len(result.stderr.strip().splitlines())


def assert_clean_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_default_embedder_finds_the_answering_file_in_the_top_3_for_most_paraphrases(tmp_path, language):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "index", "language": language}})
    built = run("index", "faq", str(CORPUS / f"faq-{language}"), config=config)
    assert built.exit_code == 0, built.output
    assert "15 files" in built.stdout and "flat index" in built.stdout
    questions = yaml.safe_load((CORPUS / f"questions-{language}.yaml").read_text(encoding="utf-8"))
    assert len(questions) >= 30
    assert set(questions.values()) <= {p.name for p in (CORPUS / f"faq-{language}").iterdir()}
    found = 0
    for question, expected in questions.items():
        result = run("query", "faq", question, "-k", "3", "--json", config=config)
        hits = json.loads(result.stdout)
        assert len(hits) <= 3 and all({"text", "source", "score", "position", "chunk_id"} <= set(h) for h in hits)
        found += expected in [hit["source"] for hit in hits]
    assert found / len(questions) >= 0.8


def test_query_prints_ranked_chunks_with_scores_and_files(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "index", "language": "en"}})
    run("index", "faq", str(CORPUS / "faq-en" / "opening-hours.html"), str(CORPUS / "faq-en" / "roaming.txt"),
        config=config)
    result = run("query", "faq", "Can I call you on Sunday?", "-k", "1", config=config)
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("1. 0.") and first.endswith("opening-hours.html (chunk 0)")


def test_list_shows_built_and_unbuilt_sources_and_remove_deletes_only_the_index(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {
        "faq": {"index_dir": "index/faq", "language": "fr"},
        "later": {"index_dir": "index/later", "language": "en", "embedder": "minilm"},
    })
    (tmp_path / "index" / "faq").mkdir(parents=True)
    (tmp_path / "index" / "faq" / "keep-me.txt").write_text("not ours", encoding="utf-8")
    run("index", "faq", str(CORPUS / "faq-fr" / "facturation.md"), config=config)
    listed = run("list", config=config).stdout.splitlines()
    assert listed[0].split() == ["SOURCE", "LANG", "EMBEDDER", "CHUNKS", "FILES", "INDEX", "SIZE", "LAST", "BUILD"]
    assert listed[1].split()[:6] == ["faq", "fr", "use-m3", "4", "1", "flat"]
    assert listed[2].split() == ["later", "en", "minilm", "-", "-", "-", "-", "not", "built"]
    removed = run("remove", "faq", config=config)
    assert removed.exit_code == 0 and "removed the index of faq" in removed.stdout
    assert [p.name for p in (tmp_path / "index" / "faq").iterdir()] == ["keep-me.txt"]
    assert "not built" in run("list", config=config).stdout.splitlines()[1]
    assert "nothing removed" in run("remove", "faq", config=config).stdout


def test_a_missing_config_is_a_clear_error(tmp_path):
    assert_clean_failure(run("list"), "Missing option '--config'")
    assert_clean_failure(run("list", config=tmp_path / "nope.yaml"), "nope.yaml not found", "SWITCHBOARD_CONFIG")


def test_an_unknown_source_names_the_configured_ones(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "i", "language": "fr"}})
    assert_clean_failure(run("query", "support", "hello", config=config),
                         "unknown knowledge source 'support'", "configured in", ": faq)")


def test_a_bad_path_is_a_clear_error(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "i", "language": "fr"}})
    assert_clean_failure(run("index", "faq", str(tmp_path / "no-such-dir"), config=config),
                         "no-such-dir: no such file or directory")


def test_querying_a_source_never_built_says_how_to_build_it(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "i", "language": "fr"}})
    assert_clean_failure(run("query", "faq", "bonjour", config=config),
                         "source 'faq' has no index", "switchboard knowledge index faq PATH...")


def test_every_config_mistake_is_listed_with_its_line_and_the_fix(tmp_path):
    config = tmp_path / "sb.yaml"
    config.write_text(
        "agents: {}\n"
        "knowledge_sources:\n"
        "  faq:\n"
        "    index_dir: idx\n"
        "    language: de\n"
        "    min_score: 2\n"
        "  docs:\n"
        "    language: en\n"
        "    embedder: bert\n"
        "    colour: blue\n",
        encoding="utf-8",
    )
    assert_clean_failure(
        run("list", config=config),
        f"{config}:5: knowledge_sources.faq.language: 'de' is not allowed; allowed: fr, en",
        f"{config}:6: knowledge_sources.faq.min_score: 2 is out of range; allowed: 0..1",
        f"{config}:7: knowledge_sources.docs.index_dir: is required but missing",
        f"{config}:9: knowledge_sources.docs.embedder: unknown embedder 'bert'; allowed: minilm, use-m3",
        f"{config}:10: knowledge_sources.docs.colour: unknown key",
    )
    assert result_lines(run("list", config=config)) == 5  # the agents section is not this command's business


def test_a_model_dir_that_holds_no_sentence_transformers_model_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    config = write_config(tmp_path / "sb.yaml", {"faq": {"index_dir": "index", "language": "fr", "embedder": {
        "backend": "sentence-transformers", "model_dir": "empty"}}})
    assert_clean_failure(run("list", config=config), "knowledge_sources.faq.embedder.model_dir",
                         "is not a sentence-transformers model directory (no modules.json)")


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    config = tmp_path / "sb.yaml"
    config.write_text("knowledge_sources:\n  faq: [unclosed\n", encoding="utf-8")
    assert_clean_failure(run("list", config=config), f"{config}:3: malformed YAML")


def test_a_source_naming_itself_differently_from_its_key_is_refused(tmp_path):
    config = write_config(tmp_path / "sb.yaml", {"faq": {"name": "docs", "index_dir": "index", "language": "fr"}})
    assert_clean_failure(run("list", config=config), "knowledge_sources.faq.name: 'docs' differs from its key 'faq'")
