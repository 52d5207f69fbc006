"""The far end's audio during one wait: the receiver, the `unicast` that feeds it, the label of each second.

FreeSWITCH streams a parked channel's audio only until the next app runs (capture 15), and a wait runs apps
(`detect_speech resume` after each result): so the stream starts at the start of the wait and again after
every app the wait ran. No audio (a FreeSWITCH that refuses unicast, a channel that is not parked) is not an
error: the wait then times its menus by the recogniser alone, as it would without this.
"""
from __future__ import annotations

from collections import Counter

from controller.actions.context import ActionContext
from controller.audio.classify import StreamClassifier
from controller.audio.unicast import UnicastReceiver, free_udp_port
from controller.esl.frames import CallHangup, EslError
from controller.esl.values import DialStringError


class HoldAudio:
    """Open for one wait (a context manager): `start()` (again after each app), `poll()` for new labels."""

    def __init__(self, ctx: ActionContext) -> None:
        self.ctx = ctx
        self.receiver = UnicastReceiver()
        self.local_port = free_udp_port()
        self.classifier = StreamClassifier()
        self.starts = 0
        self.last = ""  # the latest label ("" before the first second arrives)
        self.heard: Counter[str] = Counter()

    def start(self) -> None:
        """Ask FreeSWITCH to stream the channel's audio to our receiver (again: an app has ended the last one)."""
        try:
            self.ctx.unicast(self.local_port, self.receiver.port)
            self.starts += 1
        except CallHangup:
            raise
        except (EslError, DialStringError) as exc:
            self.ctx.log.warning("wait: unicast refused (%s); timing menus by speech recognition only", exc)

    def poll(self) -> list[str]:
        """The labels of the seconds received since the last poll."""
        labels = self.classifier.feed(self.receiver.take())
        if labels:
            self.last = labels[-1]
            self.heard.update(labels)
        return labels

    def summary(self) -> dict[str, object]:
        return {"unicast_starts": self.starts, "audio_seconds": dict(self.heard), "audio_last": self.last}

    def __enter__(self) -> "HoldAudio":
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.close()
