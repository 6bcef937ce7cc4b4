"""What every job handle shares, whatever follows the run: its events, its outcome, its done-callbacks.

``job.Job`` (ComfyUI's own protocol) and ``backend.RemoteJob`` (the remote kinds) fill these in as they
follow the run: events with ``_emit`` (None last), the outcome in ``_result`` / ``_error`` before ``_done``
is set (under ``_callbacks_lock``), then ``_run_callbacks()``. Events wait in a queue for ``events()``,
unless a listener takes them as they come (``_listen``: how ``aio.AsyncJob`` gets them without a thread).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Iterator

from ..errors import ComfyGradioError, JobTimeout
from .events import JobEvent
from .results import RunResult

__all__ = ["JobOutcome"]

log = logging.getLogger(__name__)


class JobOutcome:
    """Events until the end, then a result or an error; ``add_done_callback`` for whoever waits."""

    prompt_id: str

    def __init__(self) -> None:
        self._events: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self._callbacks: list[Callable[[Any], None]] = []
        self._callbacks_lock = threading.Lock()
        self._result: RunResult | None = None
        self._error: ComfyGradioError | None = None
        self._listener: Callable[[JobEvent | None], None] | None = None
        self._emit_lock = threading.Lock()  # events reach the queue or the listener in order

    def events(self, idle: float | None = None) -> Iterator[JobEvent | None]:
        """Yield progress events until the job ends (then ``result()`` returns or raises).

        With ``idle``, also yield None after every ``idle`` seconds without an event, so a
        consumer (a Gradio generator) gets the chance to stop while the job waits in a queue.
        """
        while True:
            try:
                event = self._events.get(timeout=idle)
            except queue.Empty:
                yield None
                continue
            if event is None:
                self._events.put(None)  # a second iteration ends at once too
                return
            yield event

    def result(self, timeout: float | None = None) -> RunResult:
        if not self._done.wait(timeout):
            raise JobTimeout(f"The run {self.prompt_id} is still going after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> ComfyGradioError | None:
        """Why the job failed (None while running or after success)."""
        return self._error if self._done.is_set() else None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(job)`` once the job has ended (at once if it already has)."""
        with self._callbacks_lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _emit(self, event: JobEvent | None) -> None:
        with self._emit_lock:
            if self._listener is None:
                self._events.put(event)
            else:
                self._listener(event)

    def _listen(self, listener: Callable[[JobEvent | None], None]) -> None:
        """Hand every event to ``listener`` (quick, any thread) from now on, those queued so far first;
        ``events()`` then has nothing to read."""
        with self._emit_lock:
            while not self._events.empty():
                listener(self._events.get_nowait())
            self._listener = listener

    def _run_callbacks(self) -> None:
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # one listener's bug must not hide the result from the others
                log.exception("A done-callback of job %s failed", self.prompt_id)
