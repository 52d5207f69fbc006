"""The one failure of sending what a call produced (a workflow's request, a webhook, an email).

Email and workflows fail the same way for the after-call worker: it retries a failure, and dead-letters at
once one that `permanent` says cannot succeed, so both raise this type.
"""
from __future__ import annotations


class DeliveryError(Exception):
    """Nothing was sent; `permanent` when sending the same thing again cannot succeed (bad template, refused
    address, HTTP 4xx)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
