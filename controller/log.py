"""Logging set-up: every line carries the call uuid; JSON when stderr is not a terminal.

The person on call at 3 a.m. greps one uuid and sees the whole call, so call code logs
through `call_logger(uuid)` rather than a bare module logger.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Callable

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        uuid = getattr(record, "uuid", None)
        prefix = f"[{uuid}] " if uuid else ""
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """Configure the root logger once; JSON unless stderr is a terminal (or told otherwise)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class CallLogger(logging.LoggerAdapter):
    """A logger whose every record carries `uuid` (and any extra context given)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return msg, kwargs


def call_logger(uuid: str, name: str = "switchboard.call", **context: Any) -> CallLogger:
    """Logger for one call: `call_logger(uuid).info("answered")` -> `[uuid] answered`."""
    return CallLogger(logging.getLogger(name), {"uuid": uuid, **context})


class Throttle:
    """Rate-limits one repeated log line: the first occurrence is logged at once, then at most one line per
    `interval_s` carrying the count since the last line, so a flood of the same warning neither fills the disk
    nor buries the other calls' lines.

        if n := throttle.hit():
            log.warning("... (%d time(s) since the last line)", n)
    """

    def __init__(self, interval_s: float = 10.0, now: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._now = now
        self._last: float | None = None
        self.pending = 0  # occurrences counted but not reported yet

    def hit(self) -> int:
        """Count one occurrence; returns how many to report now (0: stay quiet, the count is kept)."""
        self.pending += 1
        now = self._now()
        if self._last is not None and now - self._last < self.interval_s:
            return 0
        self._last = now
        return self.flush()

    def flush(self) -> int:
        """The occurrences not reported yet (for a closing summary line); the count starts again from zero."""
        count, self.pending = self.pending, 0
        return count
