"""A call's queue of unread events, bounded: FreeSWITCH can write faster than a call reads.

Every event the reader takes off the socket waits in the call's inbox, and in each `listen()` queue, until the
call reads it. A call that reads nothing for a while (a long workflow, a bridge) or a peer that floods would
grow those queues without bound. Past MAX_PENDING_EVENTS events or MAX_PENDING_BYTES of them unread in one
queue, `offer` refuses and the session ends that call's connection (session.py); the other calls go on.
Both bounds are far above a real call: FreeSWITCH's events are 1-6 kB (../shared/esl-captures/), a call a few
hundred of them in all. Ending the connection, not hanging up: a peer that floods may never deliver the reply
to a `hangup`, and once the socket closes FreeSWITCH ends the `socket` app and the dialplan's next action (its
safety net) takes the caller. The frames still queued are dropped at once (`drop`): an ended session lives on
in reference cycles until a garbage collection. bench/flood.py measures the memory this bounds.
"""
from __future__ import annotations

from typing import Optional

import gevent.queue

from controller.esl.frames import Frame

MAX_PENDING_EVENTS = 10_000
MAX_PENDING_BYTES = 4 * 1024 * 1024  # wire bytes; parsed, they take three to four times that in memory


class Inbox(gevent.queue.Queue):
    """A gevent Queue of frames (None: the socket closed) that refuses a frame past either bound."""

    def __init__(self, max_events: int = MAX_PENDING_EVENTS, max_bytes: int = MAX_PENDING_BYTES) -> None:
        super().__init__()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.bytes = 0

    def offer(self, frame: Optional[Frame]) -> bool:
        """Queue `frame`; False, and nothing queued, once the bound is reached. The end mark None always fits."""
        if frame is not None and (self.qsize() >= self.max_events or self.bytes + frame.size > self.max_bytes):
            return False
        self.put(frame)
        return True

    def drop(self) -> int:
        """Discard the unread frames (a call that has ended reads none of them); returns how many."""
        count = 0
        while not self.empty():
            self.get_nowait()
            count += 1
        return count

    # gevent's Queue stores and takes every item through these two (its PriorityQueue overrides them too)
    def _put(self, item: Optional[Frame]) -> None:
        if item is not None:
            self.bytes += item.size
        super()._put(item)

    def _get(self) -> Optional[Frame]:
        item = super()._get()
        if item is not None:
            self.bytes -= item.size
        return item
