"""Micro-batching worker: one OS thread per loaded model, one model call per round of requests.

A tokenizer or model object must not be entered by two threads at once (Hugging Face fast tokenizers fail
with "Already borrowed"), and the gevent hub must never run a forward pass. So every request goes through
a queue: a collector greenlet takes everything pending, runs ONE batch call on the model's dedicated thread
(`gevent.threadpool.ThreadPool(1)`, whose `apply` parks only the collector greenlet) and hands each caller
its rows. While one batch runs, new requests pile up and become the next batch, so under load the batch
size grows by itself and the per-query cost drops.

It behaves the same in the monkey-patched server and in a plain CLI process: the pool thread is a native
thread either way, and waiting callers are greenlets of the thread that created the worker.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import numpy as np
from gevent import monkey
from gevent.event import AsyncResult
from gevent.queue import Queue
from gevent.threadpool import ThreadPool

T = TypeVar("T")
BatchFn = Callable[[list[str]], np.ndarray]

# The real thread id even when `threading` is monkey-patched (there it would be a greenlet id).
_get_ident = monkey.get_original("threading", "get_ident")


def apply_quietly(pool: ThreadPool, fn: Callable[..., T], *args: Any) -> T:
    """`pool.apply(fn, args)`, with an exception re-raised in the calling greenlet only.

    A bare `apply` also has gevent print the exception's traceback to stderr; an expected error (a damaged
    index, a bad model directory) must reach the caller as a clean message instead.
    """
    def guarded() -> tuple[bool, Any]:
        try:
            return True, fn(*args)
        except Exception as exc:  # handed over to the caller, who raises it
            return False, exc

    ok, value = pool.apply(guarded)
    if not ok:
        raise value
    return value


class _Request:
    __slots__ = ("texts", "result")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.result: AsyncResult = AsyncResult()


class BatchWorker:
    """Runs `batch_fn` on one dedicated thread, merging concurrent requests into one call.

    `call(fn, *args)` runs any one-off function on that same thread (model loading, so a 4-second import
    never blocks the hub); `start(batch_fn)` then enables `run(texts)`.
    """

    def __init__(self, name: str, max_batch: int = 256) -> None:
        self.name = name
        self.max_batch = max_batch
        self._owner = _get_ident()
        self._pool = ThreadPool(1)
        self._queue: Queue = Queue()
        self._batch_fn: BatchFn | None = None
        self._collector: gevent.Greenlet | None = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the worker's thread; blocks the calling greenlet only."""
        self._check_thread()
        return apply_quietly(self._pool, fn, *args)

    def start(self, batch_fn: BatchFn) -> None:
        """Set the batch function (e.g. the loaded model's encode) and start collecting requests."""
        self._check_thread()
        self._batch_fn = batch_fn
        if self._collector is None:
            self._collector = gevent.spawn(self._collect)

    def run(self, texts: list[str]) -> np.ndarray:
        """Rows of `batch_fn(texts)` (texts non-empty), computed together with whatever else is pending."""
        if self._batch_fn is None:
            raise RuntimeError(f"worker {self.name!r} is not started")
        if not texts:
            raise ValueError("BatchWorker.run needs at least one text")
        self._check_thread()
        request = _Request(list(texts))
        self._queue.put(request)
        return request.result.get()

    def close(self) -> None:
        """Stop collecting and release the thread (pending callers get an error)."""
        if self._collector is not None:
            self._collector.kill(block=False)
            self._collector = None
        while not self._queue.empty():
            self._queue.get_nowait().result.set_exception(RuntimeError(f"worker {self.name!r} closed"))
        self._pool.kill()

    def _check_thread(self) -> None:
        if _get_ident() != self._owner:
            raise RuntimeError(
                f"worker {self.name!r} belongs to the thread that created it; call it from greenlets of that thread"
            )

    def _collect(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Let every greenlet made runnable in this loop iteration enqueue first: they join this batch.
            gevent.sleep(0)
            size = len(batch[0].texts)
            while size < self.max_batch and not self._queue.empty():
                request = self._queue.get_nowait()
                batch.append(request)
                size += len(request.texts)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            rows = apply_quietly(self._pool, self._batch_fn, texts)
        except Exception as exc:  # every caller of this batch gets the model's error, the worker lives on
            for request in batch:
                request.result.set_exception(exc)
            return
        offset = 0
        for request in batch:
            count = len(request.texts)
            request.result.set(rows[offset:offset + count])
            offset += count
