"""The RAG action during a call: the pre-message plays while the search runs, answers come from the index."""
from __future__ import annotations

import gevent
import pytest

from controller.config.load import load_config
from tests.support.controller import BASE_AGENT, call, records, running, sent, write_config
from knowledge.build import build_source
from knowledge.index import current_name

CORPUS = {
    "horaires.md": "# Horaires\n\nLe service client répond du lundi au vendredi de 8 h à 20 h, et le samedi de 9 h à 18 h.\n",
    "paiement.md": "# Payer sa facture\n\nVous pouvez payer par prélèvement automatique, par carte bancaire "
                   "dans l'espace client, ou par chèque à l'ordre de Lumio.\n",
    "demenagement.md": "# Déménager\n\nPrévenez-nous deux semaines avant votre départ : nous transférons votre "
                       "contrat à la nouvelle adresse sans frais.\n",
}
RAG_AGENT = BASE_AGENT + """    - type: rag
      name: faq
      description: >-
        Répondre aux questions sur les horaires, le paiement des factures et le déménagement.
        Exemples : "comment payer ma facture", "quels sont vos horaires", "je déménage".
      source: kb
      message_before: {enabled: true, text: "Un instant, je cherche la réponse dans notre documentation."}
      message_no_answer: Je ne trouve pas cette information.
"""
QUESTION = "Comment est-ce que je peux payer ma facture ?"


def rag_config(tmp_path, min_score: float = 0.3):
    return write_config(tmp_path, {"support": RAG_AGENT}, extra=f"""
knowledge_sources:
  kb: {{index_dir: kb, embedder: use-m3, language: fr, min_score: {min_score}}}
""")


@pytest.fixture
def built(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    config = rag_config(tmp_path)
    build_source(load_config(config).knowledge_sources["kb"].spec(), [corpus], progress=False)
    return config


def test_the_answer_is_queued_while_the_pre_message_still_plays(built, session_redis):
    with running(built, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "speak_seconds_per_char": 0.12,
                             "script": [{"say": QUESTION}]})
        gevent.sleep(0.1)
        [record] = [r for r in records(runtime) if r["uuid"] == rec.uuid]
        searches = runtime.latencies.rag.collect()[0].samples
        turns = runtime.latencies.turn.collect()[0].samples
    speaks = [c for c in rec.commands if c.app == "speak"]
    pre = next(c for c in speaks if "je cherche la réponse" in (c.app_arg or ""))
    answer = next(c for c in speaks if "prélèvement" in (c.app_arg or ""))
    pre_uuid = pre.headers["Event-UUID"]
    pre_done = next(f.t for f in rec.frames if f.direction == "out" and f.event_name == "CHANNEL_EXECUTE_COMPLETE"
                    and f.event.get("Application-UUID") == pre_uuid)
    assert pre.t < answer.t < pre_done  # the search ran while the caller heard the pre-message
    [rag] = [a for a in record["actions"] if a["name"] == "faq"]
    assert rag["result"] == "answered"
    assert rag["detail"]["chunks"][0]["source"] == "paiement.md"
    count = {s.name: s.value for s in searches if s.name.endswith("_count")}
    assert count == {"switchboard_rag_latency_seconds_count": 1.0}  # one search timed for /metrics
    assert {s.name: s.value for s in turns}["switchboard_turn_latency_seconds_count"] == len(
        record["metrics"]["turn_latency_ms"]) >= 1


def test_below_min_score_the_agent_says_the_no_answer_message(tmp_path, session_redis):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    config = rag_config(tmp_path, min_score=0.99)
    build_source(load_config(config).knowledge_sources["kb"].spec(), [corpus], progress=False)
    with running(config, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": QUESTION}]})
        gevent.sleep(0.1)
        [record] = [r for r in records(runtime) if r["uuid"] == rec.uuid]
    assert any("Je ne trouve pas cette information" in s for s in sent(rec, "speak"))
    [rag] = [a for a in record["actions"] if a["name"] == "faq"]
    assert rag["result"] == "no_answer" and rag["detail"]["chunks"] == []


def test_a_corrupted_index_is_reported_and_the_call_goes_on_without_rag(built, session_redis, caplog):
    index_dir = load_config(built).knowledge_sources["kb"].index_dir
    generation = index_dir / current_name(index_dir)
    for path in generation.iterdir():
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    with running(built, session_redis) as runtime:
        rec = call(runtime, {"agent": "support", "script": [{"say": QUESTION}]})
        gevent.sleep(0.1)
        [record] = [r for r in records(runtime) if r["uuid"] == rec.uuid]
    assert any("knowledge source kb unavailable" in r.getMessage() for r in caplog.records)
    [rag] = [a for a in record["actions"] if a["name"] == "faq"]
    assert rag["result"] == "unavailable" and "kb" in rag["detail"]["error"]
    assert any("Je ne trouve pas cette information" in s for s in sent(rec, "speak"))
    assert record["hangup_by"] == "caller"
