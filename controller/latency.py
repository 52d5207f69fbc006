"""Latency histograms this process observes on the call path: the brain's turn and the RAG search.

Kept in the process's memory (Prometheus scrapes every `serve`; the histograms are per process, as latencies
are), observed where the time is spent (a turn in call/conversation.py, a search in actions/rag.py) and
exposed by the ops floor. An observation is a few list increments: nothing reaches Redis or the wire.
"""
from __future__ import annotations

from typing import Iterator

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric

# a brain's turn: from the caller's words (or keys) to the answer queued on FreeSWITCH
TURN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# a knowledge-base search: the query's embedding (gevent's threadpool) and the FAISS search
RAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Latencies:
    """One per process: the runtime gives it to every configuration version, so a reload keeps the counts."""

    def __init__(self) -> None:
        self.turn = Histogram("switchboard_turn_latency_seconds",
                              "from the caller's turn to the agent's answer queued on FreeSWITCH",
                              buckets=TURN_BUCKETS, registry=None)
        self.rag = Histogram("switchboard_rag_latency_seconds", "a knowledge-base search, embedding included",
                             buckets=RAG_BUCKETS, registry=None)

    def collect(self) -> Iterator[Metric]:
        yield from self.turn.collect()
        yield from self.rag.collect()
