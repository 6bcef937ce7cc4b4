"""The client and pool for asyncio programs (FastAPI, bots, notebooks): the same jobs, awaited.

    async with AsyncComfyClient("http://127.0.0.1:8188") as client:
        job = await client.submit("workflows/txt2img.json", {"prompt": "a cat"})
        async for event in job.events():
            print(event)
        result = await job.result()

Which wraps which: the async API wraps the sync one. ``ComfyClient``, ``ComfyPool`` and ``Job`` hold
the whole protocol (socket first, then the prompt; filtering by prompt id; reconnects, polling, restarts,
failover, collecting outputs), and a ``Job`` is already followed in the background, by its server's few
worker threads (``follow.py``). So an ``AsyncJob`` only has to wait for what they find without blocking
the event loop: the job hands each event to the loop as it comes (``call_soon_threadsafe`` into an
``asyncio.Queue``) and its outcome to a future, with no thread of its own. Wrapping the other way round
would put the sync library (and the Gradio app, which calls it from worker threads) on an event loop of
its own, for no gain in what either can do. The errors are the sync ones, the same
exception objects: a caller catches the same classes and reads the same messages.

Blocking calls (uploading, posting a prompt, cancelling) run on a short-lived thread of their own, never
on the loop and never in the loop's default executor, whose idle threads would outlive the call. No
thread of a job's is left once it has ended (the server's idle workers end on their own).

Cancelling: ``await job.cancel()`` stops the job on the server, as ``Job.cancel`` does. Cancelling a
task that awaits ``submit``, ``result()``, ``events()``, ``run`` or ``map`` (``task.cancel()``,
``asyncio.timeout``, ``wait_for``) is asyncio's way of saying "stop", so it cancels the job too (a
submit still under way is cancelled as soon as it is queued). To stop only waiting, use
``result(timeout=...)`` (raises ``JobTimeout``, the job runs on) or ``asyncio.shield``; leaving an
``async for`` over ``events()`` early does not cancel anything either.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping, Sequence, TypeVar

from ..errors import ComfyGradioError, JobTimeout
from ..forms.schema import TabSpec
from .batch import Batch, BatchItem
from .client import ComfyClient
from .events import JobEvent
from .job import Job
from .pool import ComfyPool
from .results import RunResult
from .server import JobServer

__all__ = ["AsyncComfyClient", "AsyncComfyPool", "AsyncJob"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()  # the last item of an AsyncJob's event queue


class AsyncJob:
    """One submitted prompt, for asyncio: ``events()`` is an async iterator, ``result()`` and
    ``cancel()`` are awaited. ``job`` is the sync ``Job`` underneath (do not iterate its events too:
    they are read here). Made by ``AsyncComfyClient.submit`` / ``AsyncComfyPool.submit``."""

    def __init__(self, job: Job, owner: AsyncComfyClient | AsyncComfyPool) -> None:
        self.job = job
        self._owner = owner  # runs the blocking calls, and is closed only once they are done
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._outcome: asyncio.Future[RunResult] = self._loop.create_future()
        job._listen(self._take)

    @property
    def prompt_id(self) -> str:
        return self.job.prompt_id

    @property
    def client(self) -> JobServer:
        """The server the prompt is on now (it changes when a pool moves the job)."""
        return self.job.client

    @property
    def done(self) -> bool:
        return self._outcome.done()

    @property
    def error(self) -> ComfyGradioError | None:
        """Why the job failed (None while running or after success)."""
        return self.job.error

    async def events(self, idle: float | None = None) -> AsyncIterator[JobEvent | None]:
        """Yield progress events until the job ends, as ``Job.events`` does (with ``idle``, also None
        after every ``idle`` seconds without one)."""
        while True:
            try:
                event = await asyncio.wait_for(self._events.get(), idle)
            except asyncio.TimeoutError:
                yield None
                continue
            except asyncio.CancelledError:
                self._owner._cancel_soon(self.job)
                raise
            if event is _END:
                self._events.put_nowait(_END)  # a second iteration ends at once too
                return
            yield event

    async def result(self, timeout: float | None = None) -> RunResult:
        """The outputs once the job has ended; raises what ``Job.result`` raises."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except asyncio.TimeoutError:
            if self._outcome.done():  # it ended as the time ran out
                return self._outcome.result()
            raise JobTimeout(f"The run {self.prompt_id} is still going after {timeout} s") from None
        except asyncio.CancelledError:
            self._owner._cancel_soon(self.job)
            raise

    async def cancel(self) -> None:
        """Stop this job only: removed from the queue if waiting, interrupted if running."""
        await self._owner._call(self.job.cancel)

    def _take(self, event: JobEvent | None) -> None:
        """On the job's worker: an event into the loop's queue; the last (None) with the outcome."""
        if event is not None:
            _call_in(self._loop, self._events.put_nowait, event)
            return
        _call_in(self._loop, self._events.put_nowait, _END)
        _call_in(self._loop, self._settle)

    def _settle(self) -> None:
        try:
            self._outcome.set_result(self.job.result(timeout=0))
        except ComfyGradioError as exc:
            self._outcome.set_exception(exc)
            self._outcome.exception()  # retrieved: a job nobody awaits must not log "never retrieved"


class _Wrapper:
    """What the async client and pool share: the calls they have running on threads (submits, and
    cancels the loop does not wait for), which ``aclose`` lets finish before it closes the sync object:
    a cancel cut short by a closed connection would leave its prompt running."""

    sync: Any
    _own: bool

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    async def _call(self, call: Callable[[], T], **kwargs: Any) -> T:
        return await _in_thread(call, started=self._track, **kwargs)

    def _cancel_soon(self, job: Job) -> None:
        """Cancel ``job`` on a thread, without waiting for the server's answer (nobody awaits it)."""
        if not job.done:
            thread = threading.Thread(target=self._cancel_quietly, args=(job,), name=f"cancel-{job.prompt_id[:8]}",
                                      daemon=True)
            self._track(thread)
            thread.start()

    @staticmethod
    def _cancel_quietly(job: Job) -> None:
        try:
            job.cancel()
        except ComfyGradioError as exc:  # nobody is there to be told
            log.warning("Could not cancel prompt %s: %s", job.prompt_id, exc)

    def _track(self, thread: threading.Thread) -> None:
        with self._threads_lock:
            self._threads = {t for t in self._threads if t.is_alive()} | {thread}

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Let the submits and cancels under way finish (10 s at most each; a submit may start a cancel),
        then close what was made here."""
        previous: list[threading.Thread] = []
        while True:
            with self._threads_lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads or threads == previous:  # none left, or one that will not end
                break
            await _in_thread(lambda: [t.join(10) for t in threads])
            previous = threads
        if self._own:
            self.sync.close()


class AsyncComfyClient(_Wrapper):
    """``ComfyClient`` for asyncio. Give a URL and ``ComfyClient``'s keyword arguments, or a
    ``ComfyClient`` to share (then ``aclose`` leaves it open). ``sync`` is the client underneath,
    for the plain HTTP calls (``await asyncio.to_thread(client.sync.system_stats)``)."""

    def __init__(self, client: ComfyClient | str = "http://127.0.0.1:8188", **options: Any) -> None:
        super().__init__()
        self.sync, self._own = _own_or_given(client, ComfyClient, options)

    async def __aenter__(self) -> "AsyncComfyClient":
        return self

    async def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
                     timeout: float | None = None, output_dir: Path | None = None, logs: bool = False) -> AsyncJob:
        """``ComfyClient.submit``: upload, queue, and return the job being followed."""
        submit = functools.partial(self.sync.submit, workflow, values, timeout=timeout, output_dir=output_dir,
                                   logs=logs)
        return AsyncJob(await self._call(submit, orphan=self._cancel_soon), self)

    async def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None) -> RunResult:
        """Run a workflow to the end; raise a ``ComfyGradioError`` if it does not succeed."""
        return await (await self.submit(workflow, values, timeout=timeout)).result()

    async def map(self, workflow: TabSpec | Path | str, values: Sequence[Mapping[str, Any]], *,
                  concurrency: int = 2, timeout: float | None = None) -> list[BatchItem]:
        """``ComfyClient.map``, awaited: one ``BatchItem`` per value, in input order."""
        tab = await self._call(functools.partial(self.sync.load, workflow))
        batch = Batch(functools.partial(self.sync.submit, tab, timeout=timeout), values, concurrency)
        return await self._call(batch.run, on_cancel=batch.stop)


class AsyncComfyPool(_Wrapper):
    """``ComfyPool`` for asyncio. Give a ``ComfyPool`` (then ``aclose`` leaves it open), or its servers
    (``ComfyClient`` s or URLs) and ``ComfyPool``'s keyword arguments. ``sync`` is the pool underneath."""

    def __init__(self, pool: ComfyPool | Sequence[ComfyClient | str], **options: Any) -> None:
        super().__init__()
        if not isinstance(pool, ComfyPool):
            pool = [c if isinstance(c, ComfyClient) else ComfyClient(c) for c in pool]
        self.sync, self._own = _own_or_given(pool, ComfyPool, options)

    async def __aenter__(self) -> "AsyncComfyPool":
        return self

    async def start(self) -> "AsyncComfyPool":
        """Check every server now, then keep checking in the background (``ComfyPool.start``)."""
        await self._call(self.sync.start)
        return self

    async def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
                     timeout: float | None = None, output_dir: Path | None = None, retry: bool = False,
                     logs: bool = False) -> AsyncJob:
        """``ComfyPool.submit``: the best server now, another one if that server is lost."""
        submit = functools.partial(self.sync.submit, workflow, values, timeout=timeout, output_dir=output_dir,
                                   retry=retry, logs=logs)
        return AsyncJob(await self._call(submit, orphan=self._cancel_soon), self)

    async def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None) -> RunResult:
        return await (await self.submit(workflow, values, timeout=timeout)).result()

    async def map(self, workflow: TabSpec | Path | str, values: Sequence[Mapping[str, Any]], *,
                  concurrency: int | None = None, timeout: float | None = None,
                  retry: bool = False) -> list[BatchItem]:
        """``ComfyPool.map``, awaited (default: two jobs in flight per server)."""
        tab = await self._call(functools.partial(self.sync.load, workflow))
        bound = 2 * len(self.sync.clients) if concurrency is None else concurrency
        batch = Batch(functools.partial(self.sync.submit, tab, timeout=timeout, retry=retry), values, bound)
        return await self._call(batch.run, on_cancel=batch.stop)


def _own_or_given(given: Any, kind: type, options: dict[str, Any]) -> tuple[Any, bool]:
    """The sync object to wrap, and whether it was made here (and so is closed here)."""
    if isinstance(given, kind):
        if options:
            raise TypeError(f"options are for a new {kind.__name__}; this one was made already")
        return given, False
    return kind(given, **options), True


async def _in_thread(call: Callable[[], T], *, on_cancel: Callable[[], None] | None = None,
                     orphan: Callable[[T], None] | None = None,
                     started: Callable[[threading.Thread], None] | None = None) -> T:
    """``call()`` on a new thread (handed to ``started`` first), awaited. If the awaiting task is
    cancelled, ``on_cancel()`` runs at once, and ``orphan(result)`` (on that thread) once the call has
    returned what nobody will take."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    taken = threading.Event()  # set in the loop when the result reached a waiting task

    delivered = threading.Event()  # deliver() has run

    def deliver(ok: bool, value: Any) -> None:
        if not future.cancelled():
            taken.set()
            future.set_result(value) if ok else future.set_exception(value)
        delivered.set()

    def work() -> None:
        try:
            value, ok = call(), True
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            value, ok = exc, False
        if _call_in(loop, deliver, ok, value):
            delivered.wait(5.0)  # if this runs out, the loop stopped before taking it
        if ok and orphan is not None and not taken.is_set():
            orphan(value)

    thread = threading.Thread(target=work, name="comfyui-gradio-aio", daemon=True)
    if started is not None:
        started(thread)
    thread.start()
    try:
        return await future
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        raise


def _call_in(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """``callback(*args)`` on ``loop``'s thread; False if the loop has closed (nobody is waiting)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True
