"""Hand-offs between two sessions of one channel: the old one must be gone before the new one parks.

When any event-socket session of a channel ends, FreeSWITCH clears the channel's CF_CONTROLLED flag, which ends
whichever `socket` app is parked on it at that moment (capture 18); see `EslSession.release`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import gevent.event

RELEASE_TIMEOUT_S = 2.0  # how long a leaving session waits for FreeSWITCH to close its end (it takes ~1 ms)
# mod_event_socket clears CF_CONTROLLED a few statements after closing its end of the socket: this much more
# covers a listener thread descheduled in between, before the gate lets the next session park
RELEASE_SETTLE_S = 0.02


class HandoffGate:
    """Holds new sessions back from `connect` while a session of this process is leaving its channel.

    FreeSWITCH parks the next session's channel only once that session has sent `connect`; an old session whose
    listener ends after that ends the new park (CF_CONTROLLED, capture 18). The old session marks itself leaving
    before `uuid_transfer` and clears the mark once FreeSWITCH has closed its end, so in between no new session
    of this process sends `connect`. The wait is bounded: a session on another host is not held, and relies on
    the old session closing within the ~20 ms FreeSWITCH takes to run the new extension's dialplan.
    """

    def __init__(self) -> None:
        self._leaving = 0
        self._clear = gevent.event.Event()
        self._clear.set()

    @contextmanager
    def leaving(self) -> Iterator[None]:
        self._leaving += 1
        self._clear.clear()
        try:
            yield
        finally:
            self._leaving -= 1
            if not self._leaving:
                self._clear.set()

    def wait(self, timeout: float = RELEASE_TIMEOUT_S) -> bool:
        """True once no session is leaving (at once, nearly always); False after `timeout`."""
        return self._clear.wait(timeout)
