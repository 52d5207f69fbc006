"""Signed workflow requests, so a receiver can tell a request came from this Switchboard and was not replayed.

As Stripe and GitHub sign theirs: `X-Switchboard-Timestamp: <unix seconds>` and
`X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the key being the value of the
environment variable the action names in `secret_env`. The receiver recomputes it over the raw body, compares in
constant time, and refuses timestamps older than a few minutes (README: "Signed workflows").
"""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Optional

TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
SIGNATURE_HEADER = "X-Switchboard-Signature"


class SigningError(ValueError):
    """The action asks for a signature and its secret is not available: the request is not sent unsigned."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret_env: Optional[str], body: Optional[bytes], now_s: float) -> dict[str, str]:
    """The two signature headers for a request with `body` (empty without one); {} without `secret_env`."""
    if not secret_env:
        return {}
    secret = os.environ.get(secret_env)
    if not secret:
        raise SigningError(f"environment variable {secret_env} (secret_env) is not set; the request was not sent "
                           "unsigned: export it in the service's environment")
    timestamp = str(int(now_s))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret.encode(), timestamp, body or b"")}
