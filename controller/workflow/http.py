"""One HTTP request with a whole-request deadline and a capped body, for workflows at every moment.

http.client rather than urllib: no redirect following (a webhook that redirects is misconfigured), no
exception for non-2xx (the caller decides), and the socket timeout can be reset to the time left before
each step, so `timeout_s` bounds connect + send + headers + body together (a server dripping one byte a
second cannot hold a ringing call). Under `serve` the process is gevent monkey-patched, so this blocks only
its own greenlet.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import urlsplit

from controller.address_policy import AddressPolicy

MAX_BODY = 1024 * 1024
_CHUNK = 64 * 1024


class HttpError(Exception):
    """The request did not get a complete response: bad URL, refused, timed out, reset, or body too large.

    `permanent` is True when retrying cannot help (bad URL, certificate rejected, body over the cap).
    """

    def __init__(self, message: str, *, permanent: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.timed_out = timed_out


@dataclass
class HttpResponse:
    status: int
    body: bytes
    elapsed_ms: float
    headers: dict[str, str] = field(default_factory=dict)


def safe_url(url: str) -> str:
    """scheme://host/path, without credentials or query, for logs and error messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def request(method: str, url: str, *, headers: Optional[Mapping[str, str]] = None, body: Optional[bytes] = None,
            timeout_s: float, max_body: int = MAX_BODY, policy: Optional[AddressPolicy] = None) -> HttpResponse:
    """Send one request and read the whole response within `timeout_s`; raises HttpError otherwise.

    With `policy`, the address the socket connected to must pass it before anything of the request is sent.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"URL {safe_url(url)!r} must be http:// or https:// with a host", permanent=True)
    try:
        port = parts.port
    except ValueError:
        raise HttpError(f"URL {safe_url(url)!r} has an invalid port", permanent=True) from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    deadline = started + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        return remaining

    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout_s, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout_s)
    try:
        conn.connect()
        sock = conn.sock  # kept: http.client drops conn.sock when the response says Connection: close
        refusal = policy.refusal(parts.hostname, sock.getpeername()[0]) if policy is not None else None
        if refusal:
            raise HttpError(f"{method} {safe_url(url)}: not sent: {refusal}", permanent=True)
        sock.settimeout(left())
        conn.request(method, target, body=body, headers=dict(headers or {}))
        sock.settimeout(left())
        response = conn.getresponse()
        chunks, size = [], 0
        while True:
            sock.settimeout(left())
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_body:
                raise HttpError(f"{method} {safe_url(url)}: response body over {max_body} bytes", permanent=True)
            chunks.append(chunk)
        return HttpResponse(status=response.status, body=b"".join(chunks),
                            elapsed_ms=(time.monotonic() - started) * 1000,
                            headers={k.lower(): v for k, v in response.getheaders()})
    except (socket.timeout, TimeoutError):
        raise HttpError(f"{method} {safe_url(url)}: no complete response within {timeout_s:g} s",
                        timed_out=True) from None
    except ssl.SSLCertVerificationError as exc:
        raise HttpError(f"{method} {safe_url(url)}: certificate rejected: {exc.verify_message}",
                        permanent=True) from None
    except ValueError as exc:  # http.client refusing a header name or value
        raise HttpError(f"{method} {safe_url(url)}: {exc}", permanent=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise HttpError(f"{method} {safe_url(url)}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
