"""Many jobs followed by a few threads: a job's follower is a generator run in steps.

Following a prompt reads best as one sequence (wait for the next message or a timeout, look over
HTTP, send the prompt again, collect), so ``job.Job`` writes it as a generator that yields what it waits for:

    item = yield Wait(5.0)     # the next item put in its inbox; queue.Empty is raised after 5 s
    yield Sleep(0.2)           # let time pass; items put meanwhile wait in the inbox

A ``Follower`` runs such a generator: each step, from one yield to the next, on a thread of its server's
``Workers``; between steps the job holds no thread, only a place in the ``Clock`` if it waits with a
timeout. A ``put`` into the inbox of a waiting follower schedules its next step. So 500 jobs in flight on
two servers need two sockets (``hub.SocketHub``), a few worker threads per server and one clock thread,
where a thread per job held 500 (``benchmarks/inflight.py``). One follower's steps never overlap: the
generator and its inbox are only touched by the step that runs.

Steps block on HTTP as the code always did; ``Workers`` bounds how many run at once per server (so a slow
or dead server ties up its own threads only), and its idle threads end after ``idle_exit`` seconds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Generator

__all__ = ["CLOCK", "Clock", "Follower", "Sleep", "Steps", "Wait", "Workers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wait:
    """Yielded by a follower: resume with the next inbox item, or raise ``queue.Empty`` into it after
    ``seconds`` (None: no time limit) without one."""

    seconds: float | None


@dataclass(frozen=True)
class Sleep:
    """Yielded by a follower: resume (with None) after ``seconds``; the inbox keeps its items."""

    seconds: float


Steps = Generator["Wait | Sleep", Any, None]


class Clock:
    """One thread that calls callbacks at their time (``time.monotonic()``), in order. A callback must
    be quick: it runs on the clock's thread (a ``Follower`` only hands its step to ``Workers``)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._changed:
            heapq.heappush(self._heap, (when, next(self._order), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="comfyui-gradio-clock", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # a bug in one callback must not stop the others' timers
                log.exception("A timer callback failed")


CLOCK = Clock()
"""The process's clock, shared by every follower."""


class Workers:
    """At most ``size`` daemon threads running submitted calls in order; a thread is started when a call
    waits and none is free, and ends after ``idle_exit`` seconds without work."""

    idle_exit: float = 30.0

    def __init__(self, name: str, size: int = 8) -> None:
        self.name = name
        self.size = size
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the three counts
        self._threads = 0
        self._idle = 0  # threads waiting for a call
        self._pending = 0  # calls no thread has taken yet

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, call: Callable[[], None]) -> None:
        self._calls.put(call)
        with self._lock:
            self._pending += 1
            start = self._pending > self._idle and self._threads < self.size
            self._threads += start
        if start:
            threading.Thread(target=self._work, name=f"{self.name}-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                call = self._calls.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._pending == 0:  # under the lock: a submit from now on starts a thread
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
                self._pending -= 1
            try:
                call()
            except Exception:  # a bug in one call must not take a worker away
                log.exception("A call on %s failed", self.name)


class _State(str, Enum):
    RUNNING = "running"  # a step runs, or is submitted to run
    WAITING = "waiting"  # parked on Wait: an inbox item (or the timeout) resumes it
    SLEEPING = "sleeping"  # parked on Sleep: only the clock resumes it
    ENDED = "ended"


class Follower:
    """Runs ``steps`` (see the module docstring) on ``workers()`` (asked at every step: the job may have
    moved to another server). ``put`` and ``get_nowait`` are the inbox, as a ``queue.Queue`` has them."""

    def __init__(self, steps: Steps, workers: Callable[[], Workers], clock: Clock = CLOCK) -> None:
        self._steps = steps
        self._workers = workers
        self._clock = clock
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._state = _State.RUNNING
        self._parked = 0  # which park a timer belongs to: a stale timer finds another number

    def start(self) -> None:
        self._workers().submit(lambda: self._run(self._steps.send, None))

    def put(self, item: Any) -> None:
        with self._lock:
            if self._state is _State.ENDED:
                return  # nobody reads it any more
            self._items.append(item)
            if self._state is not _State.WAITING:
                return
            self._state = _State.RUNNING
            self._parked += 1
        self._workers().submit(lambda: self._run(self._steps.send, self._pop()))

    def get_nowait(self) -> Any:
        """The next inbox item (for the generator, during its step); ``queue.Empty`` if there is none."""
        with self._lock:
            if not self._items:
                raise queue.Empty
            return self._items.popleft()

    def _pop(self) -> Any:
        with self._lock:
            return self._items.popleft()

    @property
    def ended(self) -> bool:
        return self._state is _State.ENDED

    def _run(self, resume: Callable[[Any], Any], value: Any) -> None:
        """One step, and the next ones at once while the inbox has what the follower waits for."""
        while True:
            try:
                request = resume(value)
            except StopIteration:
                self._end()
                return
            except BaseException:
                self._end()
                log.exception("A job's follower failed")  # a bug: the generator must end the job itself
                return
            with self._lock:
                if isinstance(request, Sleep):
                    self._park(_State.SLEEPING, request.seconds)
                    return
                if self._items:
                    resume, value = self._steps.send, self._items.popleft()
                    continue
                if request.seconds is not None and request.seconds <= 0:
                    resume, value = self._steps.throw, queue.Empty()
                    continue
                self._park(_State.WAITING, request.seconds)
                return

    def _end(self) -> None:
        with self._lock:
            self._state = _State.ENDED
            self._items.clear()

    def _park(self, state: _State, seconds: float | None) -> None:
        """Under ``_lock``: no thread until an item (when WAITING) or the clock resumes the follower."""
        self._state = state
        self._parked += 1
        if seconds is not None:
            parked = self._parked
            self._clock.call_at(time.monotonic() + seconds, lambda: self._wake(parked))

    def _wake(self, parked: int) -> None:
        """On the clock's thread: the time of park number ``parked`` has come."""
        with self._lock:
            if self._parked != parked or self._state not in (_State.WAITING, _State.SLEEPING):
                return  # an item came first
            sleeping = self._state is _State.SLEEPING
            self._state = _State.RUNNING
        if sleeping:
            self._workers().submit(lambda: self._run(self._steps.send, None))
        else:
            self._workers().submit(lambda: self._run(self._steps.throw, queue.Empty()))
