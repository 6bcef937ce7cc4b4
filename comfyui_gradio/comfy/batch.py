"""Batch runs: one workflow over a list of values, a bounded number at a time, results in input order.

    items = client.map("workflows/txt2img.json", [{"prompt": "a cat", "seed": s} for s in range(8)])
    for item in items:
        print(item.result.images[0].path if item.ok else f"item {item.index} failed: {item.error}")

ComfyUI's API guide makes a batch by looping over seeds and queueing each prompt. ``map`` does that
with at most ``concurrency`` jobs in flight (queued or running) at a time, so a long list does not fill
the server's queue, and a pool spreads them over its servers.

The answer is a list as long as the input and in its order, whatever order the jobs finished in: one
``BatchItem`` per value, holding its ``result`` or its ``error`` (never both). An item's own failure
(its prompt rejected, a node failing, its time limit, a server that cannot be reached) is kept in its
item and the others go on; ``unwrap()`` returns the result or raises the error. Anything else ends the
whole batch and cancels its jobs in flight on the server: a bug, ``KeyboardInterrupt``, ``stop()``
(which the async ``map`` calls when the task awaiting it is cancelled).

One implementation, ``Batch``, serves ``ComfyClient.map``, ``ComfyPool.map`` and their async twins in
``aio`` (which run it on a thread of their own). It needs no thread itself: it submits from the caller's
thread and sleeps until a job's done-callback says one ended.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import ComfyGradioError, JobCancelled
from .results import RunResult

if TYPE_CHECKING:
    from .job import Job

__all__ = ["Batch", "BatchItem", "STOPPED"]

STOPPED = "The batch was stopped; its jobs still in flight were cancelled on the server."
_STOP = object()  # put in a batch's queue of ended jobs by Batch.stop()
_STOP_WAIT = 5.0  # seconds to wait for each cancelled job to end before leaving it


@dataclass(frozen=True)
class BatchItem:
    """One value of a batch and what became of it. ``prompt_id`` is None if it was never queued
    (refused before sending: a bad value, the server down)."""

    index: int
    values: Mapping[str, Any]
    result: RunResult | None = None
    error: ComfyGradioError | None = None
    prompt_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> RunResult:
        """The result; raise the item's error if it failed."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Batch:
    """``values`` run through ``submit`` (which queues one and returns its ``Job``), at most
    ``concurrency`` at a time. ``run()`` once; ``stop()`` from any thread."""

    def __init__(self, submit: Callable[[Mapping[str, Any]], Job], values: Sequence[Mapping[str, Any]],
                 concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._submit = submit
        self._values = list(values)
        self._concurrency = concurrency
        self._ended: queue.Queue[Any] = queue.Queue()  # indices of jobs that ended, or _STOP
        self._stopped = threading.Event()
        self._running: dict[int, Job] = {}
        self._items: list[BatchItem | None] = [None] * len(self._values)

    def run(self) -> list[BatchItem]:
        """Every item, in input order. Raises ``JobCancelled`` (``STOPPED``) after ``stop()``."""
        try:
            for index, values in enumerate(self._values):
                while len(self._running) >= self._concurrency:
                    self._settle_next()
                if self._stopped.is_set():
                    raise JobCancelled(STOPPED)
                self._start(index, values)
            while self._running:
                self._settle_next()
        except BaseException:
            self._cancel_running()
            raise
        return [item for item in self._items if item is not None]

    def stop(self) -> None:
        """End ``run``: no more jobs are sent, and those in flight are cancelled."""
        self._stopped.set()
        self._ended.put(_STOP)

    def _start(self, index: int, values: Mapping[str, Any]) -> None:
        try:
            job = self._submit(values)
        except ComfyGradioError as exc:
            self._items[index] = BatchItem(index, values, error=exc)
            return
        self._running[index] = job
        job.add_done_callback(lambda _job: self._ended.put(index))

    def _settle_next(self) -> None:
        """Wait for a job to end and keep its outcome."""
        index = self._ended.get()
        if index is _STOP:
            raise JobCancelled(STOPPED)
        job = self._running.pop(index)
        values = self._values[index]
        try:
            self._items[index] = BatchItem(index, values, result=job.result(), prompt_id=job.prompt_id)
        except ComfyGradioError as exc:
            self._items[index] = BatchItem(index, values, error=exc, prompt_id=job.prompt_id)

    def _cancel_running(self) -> None:
        """Cancel every job in flight, then give each a moment to end (its threads with it)."""
        jobs, self._running = list(self._running.values()), {}
        for job in jobs:
            job.cancel()
        for job in jobs:
            try:
                job.result(timeout=_STOP_WAIT)
            except ComfyGradioError:
                pass
