"""One app run on a call's channel, as `EslSession.start_execute` queues it and its reader resolves it.

Every execute carries an `Event-UUID`; FreeSWITCH echoes it as `Application-UUID` on the app's CHANNEL_EXECUTE
(started) and CHANNEL_EXECUTE_COMPLETE (done), so two runs of the same app never take each other's result.
"""
from __future__ import annotations

import gevent
import gevent.event

from controller.esl.frames import EslTimeout, Frame


class Execution:
    """One app run on the channel: its CHANNEL_EXECUTE marks it started, its EXECUTE_COMPLETE resolves it."""

    def __init__(self, app: str, arg: str | None, app_uuid: str) -> None:
        self.app = app
        self.arg = arg
        self.app_uuid = app_uuid
        self.began = gevent.event.Event()  # its CHANNEL_EXECUTE came
        self.result: gevent.event.AsyncResult = gevent.event.AsyncResult()

    @property
    def started(self) -> bool:
        return self.began.is_set()

    @property
    def done(self) -> bool:
        return self.result.ready()

    def wait(self, timeout: float | None) -> Frame:
        """The completion frame; EslTimeout after `timeout` seconds (None only for an answered bridge)."""
        try:
            return self.result.get(timeout=timeout)
        except gevent.Timeout:
            raise EslTimeout(f"{self.app} did not complete within {timeout:.1f}s") from None


def follow_executions(executions: dict[str, Execution], frame: Frame) -> bool:
    """Mark an execute started (CHANNEL_EXECUTE) or done (CHANNEL_EXECUTE_COMPLETE), matched on Application-UUID;
    True when the frame was one of the two."""
    if frame.name == "CHANNEL_EXECUTE":
        execution = executions.get(frame.get("Application-UUID", ""))
        if execution:
            execution.began.set()
        return True
    if frame.name == "CHANNEL_EXECUTE_COMPLETE":
        execution = executions.pop(frame.get("Application-UUID", ""), None)
        if execution:
            execution.result.set(frame)
        return True
    return False
