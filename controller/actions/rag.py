"""The RAG action: answer from a local knowledge base, saying the optional message while the search runs."""
from __future__ import annotations

from typing import Any

from controller.actions.base import Action, ActionOutcome, register
from controller.actions.context import ActionContext
from controller.phrases import phrase

TOP_K = 3


@register
class RagAction(Action):
    """Searches the configured source with the brain's query; the top chunks go back to the brain.

    The pre-message is queued on FreeSWITCH first (`speak` returns as soon as it is accepted), so the caller
    hears it while the query is embedded and searched here; the answer is queued behind it. Below the source's
    `min_score` (or when the source could not be loaded at start) the agent says `message_no_answer`.
    """

    type = "rag"
    parameters = {"type": "object", "required": ["query"], "additionalProperties": False,
                  "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 500,
                                           "description": "the caller's question, in their words"}}}
    fillable = ("query",)

    def run(self, ctx: ActionContext, arguments: dict[str, Any]) -> ActionOutcome:
        query = arguments["query"].strip()
        no_answer = self.config.message_no_answer or phrase(ctx.language, "rag_no_answer")
        kb, error = self.services.knowledge(self.config.source)
        if kb is None:
            return ActionOutcome("unavailable", say=no_answer, progress=False,
                                 detail={"query": query, "chunks": [], "error": error})
        before = self.config.message_before
        if before.enabled:
            ctx.say(before.text or phrase(ctx.language, "rag_before"))
        with self.services.latencies.rag.time():
            hits = kb.search(query, k=TOP_K)
        chunks = [{"text": h.text, "source": h.source, "score": round(h.score, 4), "position": h.position}
                  for h in hits]
        if not hits:
            return ActionOutcome("no_answer", say=no_answer, progress=False,
                                 detail={"query": query, "chunks": [], "source": self.config.source})
        return ActionOutcome("answered", detail={"query": query, "chunks": chunks, "source": self.config.source})
