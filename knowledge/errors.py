"""The one exception of the knowledge package.

Every problem a person can fix (missing index, corrupted file, embedder mismatch, bad config) raises
`KnowledgeError` with a message that names the source or file and says what to run; the CLI turns it
into a one-line error and exit code 2, the in-call RAG action into a spoken fallback.
"""
from __future__ import annotations


class KnowledgeError(Exception):
    """A knowledge-base problem with a message that names what is wrong and the fix."""
