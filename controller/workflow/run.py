"""The workflow action: one HTTP request rendered from call data, at every moment of a call.

Before the call (while it rings) its kept fields become call variables; during the call the brain's
arguments are among the variables and the result goes back to the brain; after the call it is the
webhook that receives the call record. All three go through `run_workflow`, which never raises: a
`WorkflowResult` says what happened, and the after-call worker turns a failure into a retry.

Rendering: `method`, `url`, each header value and each string inside `body` are sandboxed Jinja templates
over the variables. A `body` given as a mapping or list is sent as JSON (its strings rendered); a `body`
given as a string is rendered and sent as is. Header values may not contain line breaks after rendering.
The response is parsed as JSON and each `keep` entry (`var: a.b.0.c`, dict keys and list indexes) becomes
a variable; a path the response lacks gives None and a log line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from controller.clock import Clock
from controller.delivery import DeliveryError
from controller.workflow.signature import SigningError, signed_headers
from controller.workflow.http import HttpError, request, safe_url
from controller.log import call_logger
from controller.templating import TemplateError, render

_UNSET: Any = object()
_RETRYABLE_STATUS = {408, 425, 429}


@dataclass
class WorkflowResult:
    ok: bool
    status: Optional[int] = None
    variables: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    elapsed_ms: float = 0.0
    data: Any = None
    permanent: bool = False
    timed_out: bool = False


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _render_body(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, Mapping):
        return {k: _render_body(v, variables) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_body(v, variables) for v in value]
    return value


def render_request(action: Any, variables: dict[str, Any],
                   body: Any = _UNSET) -> tuple[str, str, dict[str, str], Optional[bytes]]:
    """(method, url, headers, body bytes) for `action.request` over `variables`; a given `body` is sent as is."""
    spec = _get(action, "request")
    name, template = _get(action, "name", "?"), _get(spec, "body")
    try:
        if body is not _UNSET:  # supplied by the caller, already final (the after-call record)
            payload = body.encode() if isinstance(body, str) else body
        elif isinstance(template, str):
            payload = render(template, variables).encode()
        elif template is not None:
            payload = json.dumps(_render_body(template, variables), ensure_ascii=False, default=str).encode()
        else:
            payload = None
        method = render(_get(spec, "method") or ("POST" if payload is not None else "GET"), variables).strip().upper()
        url = render(_get(spec, "url"), variables, url=True).strip()
        headers = {str(k): render(str(v), variables) for k, v in (_get(spec, "headers") or {}).items()}
    except TemplateError as exc:
        raise DeliveryError(f"workflow {name}: {exc}", permanent=True) from None
    if not method.isalpha():
        raise DeliveryError(f"workflow {name}: method rendered as {method!r}", permanent=True)
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise DeliveryError(f"workflow {name}: url contains spaces or control characters after rendering "
                            "(use the urlencode filter on call data)", permanent=True)
    for header, value in headers.items():
        if any(c in value for c in "\r\n\0"):
            raise DeliveryError(f"workflow {name}: header {header} contains a line break after rendering "
                                "(refused: header injection from call data)", permanent=True)
    if payload is not None and not any(h.lower() == "content-type" for h in headers):
        headers["Content-Type"] = "application/json"
    return method, url, headers, payload


def extract(data: Any, path: str) -> tuple[bool, Any]:
    """Follow `a.b.0.c` through dicts and lists; (False, None) when a step is missing."""
    current = data
    for step in str(path).split("."):
        if isinstance(current, Mapping) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.lstrip("-").isdigit() and -len(current) <= int(step) < len(current):
            current = current[int(step)]
        else:
            return False, None
    return True, current


def run_workflow(action: Any, variables: dict[str, Any], *, uuid: str, clock: Optional[Clock] = None,
                 body: Any = _UNSET, max_s: Optional[float] = None,
                 headers: Optional[Mapping[str, str]] = None) -> WorkflowResult:
    """Render, send within `timeout_s` (or `max_s` if shorter; call seconds, scaled by the clock), parse, keep;
    never raises. `headers` (and the signature headers of an action with `secret_env`) are sent as given, over
    the action's own of the same name."""
    clock = clock or Clock()
    log = call_logger(uuid, "switchboard.workflow", action=_get(action, "name"))
    name = _get(action, "name", "?")
    timeout_s = float(_get(action, "timeout_s") or 10)
    if max_s is not None:
        timeout_s = min(timeout_s, max_s)
    try:
        method, url, rendered, payload = render_request(action, variables, body)
        ours = {**(headers or {}), **signed_headers(_get(action, "secret_env"), payload, clock.wall())}
        sent = {k: v for k, v in rendered.items() if k.lower() not in {h.lower() for h in ours}}
        response = request(method, url, headers={**sent, **ours}, body=payload, timeout_s=clock.scaled(timeout_s),
                           policy=_get(_get(action, "request"), "policy"))
    except SigningError as exc:
        log.error("workflow not sent: %s", exc)
        return WorkflowResult(ok=False, error=str(exc), permanent=True)
    except (DeliveryError, HttpError) as exc:
        log.warning("workflow failed: %s", exc)
        return WorkflowResult(ok=False, error=str(exc), permanent=exc.permanent,
                              timed_out=getattr(exc, "timed_out", False))
    where = f"{method} {safe_url(url)}"
    if not 200 <= response.status < 300:
        snippet = response.body[:200].decode("utf-8", "replace")
        error = f"workflow {name}: HTTP {response.status} from {where}: {snippet}"
        log.warning("%s", error)
        permanent = 400 <= response.status < 500 and response.status not in _RETRYABLE_STATUS
        return WorkflowResult(ok=False, status=response.status, error=error, elapsed_ms=response.elapsed_ms,
                              permanent=permanent)
    data: Any = None
    if response.body.strip():
        try:
            data = json.loads(response.body)
        except ValueError:
            log.info("workflow response from %s is not JSON; nothing kept", where)
    kept: dict[str, Any] = {}
    for var, path in (_get(action, "keep") or {}).items():
        found, kept[var] = extract(data, path)
        if not found:
            log.warning("workflow response has no %s; variable %s is None", path, var)
    log.info("workflow ok", extra={"status": response.status, "elapsed_ms": round(response.elapsed_ms, 1)})
    return WorkflowResult(ok=True, status=response.status, variables=kept, elapsed_ms=response.elapsed_ms, data=data)


def run_after_call(action: Any, record: dict[str, Any], variables: dict[str, Any], *, uuid: str,
                   clock: Optional[Clock] = None) -> WorkflowResult:
    """The webhook after the call: the record as JSON unless the action sets its own body; raises on failure.

    Every attempt carries `Idempotency-Key: <call uuid>.<action name>`, the same across retries, requeues and
    worker restarts: a receiver that saw the key already knows the delivery is a repeat.
    """
    spec = _get(action, "request")
    body = _UNSET if _get(spec, "body") is not None else json.dumps(record, ensure_ascii=False, default=str)
    result = run_workflow(action, variables, uuid=uuid, clock=clock, body=body,
                          headers={"Idempotency-Key": f"{uuid}.{_get(action, 'name', 'webhook')}"})
    if not result.ok:
        raise DeliveryError(result.error or "workflow failed", permanent=result.permanent)
    return result
