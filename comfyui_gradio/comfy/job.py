"""A submitted prompt followed to its end: the ``Job`` handle and its trackers.

Lifecycle (ComfyUI's own reference client, ``script_examples/websockets_api_example.py``): the
job joins its server's one socket (``hub.SocketHub``, opened with the ``feature_flags`` handshake, so
previews carry their prompt id) under its client-made ``prompt_id`` first, then ``POST /prompt``
carries the hub's ``client_id`` and that ``prompt_id``, so messages that arrive before the HTTP answer
already reach the job. The hub hands the job its own prompt's messages only. The
outputs are read from ``/history/{id}`` (authoritative) and downloaded through ``/view`` into the
job's folder by ``collect.collect_outputs``. The job talks to its server only through the narrow
``server.JobServer`` interface (``ComfyClient`` serves it from ``/api/jobs`` where the server has it).
``progress_state`` messages keep ``graph_progress``, the share of the whole prompt that is done.

A job holds no thread of its own: ``_follow`` is a generator that yields what it waits for, run in steps
on its server's few worker threads (``follow.Follower``; the hub's ``workers``), so hundreds of jobs in
flight cost a few threads. The queue is read once for all the server's jobs (``SocketHub.queue_state``):
after each ``status`` broadcast for their places, and for the looks below.

The socket is not trusted alone: a restarted ComfyUI forgets its queue, and a socket can stay open
with nothing on it (a proxy). So while following the socket the job also looks over HTTP every
``socket_check_interval`` seconds, and at once after the hub reopened a dropped socket. The hub reopens a dropped socket once
with the same client id; if that fails, or the socket was refused in the first place, the job is
finished by polling ``/history`` and ``/queue`` (``tracker="http"`` does only that).

A prompt the server lost (it stopped answering, or it answers but has the prompt in neither its
queue nor its history) is sent again if it had not started: to another server of a pool
(``JobHooks.failover``), else to the same one once it answers again (within ``server_wait`` s). A
started prompt is sent again only with ``JobHooks.retry_running``; a cancelled one never.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

from ..errors import (ComfyGradioError, ExecutionFailed, InputError, JobCancelled, JobTimeout, ProtocolError,
                     ServerError, ServerUnavailable)
from ..forms.prepare import PreparedPrompt
from ..forms.schema import TabSpec
from .collect import collect_outputs, node_title
from .follow import Follower, Sleep, Steps, Wait
from .handle import JobOutcome
from .events import (Cached, MessageType, NodeStarted, Notification, OutputReady, Preview, PreviewFrame,
                     Progress, Queued, Resubmitted, Started, TextFrame, WireMessage, graph_progress, log_lines)
from .hub import Place, SocketHub, SocketNews, SocketState, queue_places
from .results import NO_OUTPUT, RunResult
from .server import JobServer

if TYPE_CHECKING:
    from .client import LocalFile

__all__ = ["Job", "JobHooks"]

log = logging.getLogger(__name__)

_CANCEL = object()  # put into a job's inbox by Job.cancel()


class _PromptGone(Exception):
    """The server answers but has the prompt in neither its queue nor its history (e.g. it restarted)."""


class QueuePlace(str, Enum):
    """Where ``GET /queue`` shows a prompt."""

    RUNNING = "running"
    PENDING = "pending"
    GONE = "gone"  # on neither list: finished, cancelled, or lost in a restart


@dataclass
class JobHooks:
    """Optional callbacks a pool gives a job.

    ``failover(job)`` returns another server's client when this one is lost (None: give up);
    ``finished(job, ok)`` is called once when the job ends; ``retry_running`` allows one
    resubmission of a job whose server died while running it.
    """

    failover: Callable[["Job"], JobServer | None] | None = None
    finished: Callable[["Job", bool], None] | None = None
    retry_running: bool = False


class Job(JobOutcome):
    """One submitted prompt. Iterate ``events()`` for progress; ``result()`` waits for the outputs.

    Its server's workers follow the prompt and feed both; ``cancel()`` may be called from any thread.
    ``client`` is the server the prompt is on now (it changes when a pool moves the job).
    """

    socket_check_interval: float = 5.0  # seconds between looks over HTTP while following the socket
    server_wait: float = 60.0  # seconds to wait for a lost server to answer again before giving up
    max_resubmits: int = 3  # times a job is sent again after its server lost it
    history_delays: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5, 1.0)  # before each read of a finished prompt

    def __init__(self, client: JobServer, tab: TabSpec, prepared: PreparedPrompt, *, timeout: float | None,
                 output_dir: Path, uploads: dict[str, LocalFile] | None = None,
                 hooks: JobHooks | None = None, prompt_id: str | None = None,
                 logs: bool = False) -> None:
        super().__init__()
        self.client = client
        self.logs = logs  # subscribe this job's socket to the server's log (LogLines events)
        self.uploads = uploads or {}
        self.hooks = hooks or JobHooks()
        self._retried = False
        self._resubmits = 0
        self._misses = 0  # looks in a row that found the prompt in neither the queue nor the history
        self.tab = tab
        self.prepared = prepared
        self.prompt_id = _canonical(prompt_id) if prompt_id else str(uuid.uuid4())
        self.client_id = uuid.uuid4().hex  # the hub's once posted through one
        self.job_dir = output_dir / self.prompt_id
        self._deadline = time.monotonic() + timeout if timeout else None
        self._inbox = Follower(self._follow(), lambda: self.client.socket_hub().workers)
        self._hub: SocketHub | None = None  # the hub the job is in while it follows the socket
        self._started = False
        self._cancelled = False
        self._submitted_at = 0.0
        self._place: int | None = -1  # the last Queued position emitted (-1: none yet)
        self._posted_at = 0.0  # time.monotonic() when the prompt was last posted: a queue read before misses it
        self.started_at: float | None = None  # time.monotonic() when the server began running it
        self.graph_progress: float | None = None  # share (0..1) of the prompt done, from progress_state
        self._shown: dict[str, str] = {}  # node id -> the node the user sees, where the server says another
        self._cached: frozenset[str] = frozenset()  # nodes the server took from its cache

    def cancel(self) -> None:
        """Stop this job only: remove it from the queue if waiting, interrupt it if running."""
        if self._done.is_set():
            return
        self._cancelled = True
        try:
            self.client.delete_from_queue([self.prompt_id])  # first: a waiting prompt can't start afterwards
            self.client.interrupt(self.prompt_id)
        except ServerUnavailable as exc:  # down: nothing to remove there, and the job is never sent again
            log.warning("Could not tell ComfyUI to cancel prompt %s: %s", self.prompt_id, exc)
        finally:
            self._inbox.put(_CANCEL)

    # ---- start ------------------------------------------------------------------------------

    def _start(self, post: bool = True) -> None:
        """Queue the prompt (unless ``post`` is False: it was queued earlier, see ``ComfyClient.attach``;
        with no socket of its own the job then follows it by polling) and follow it in the background."""
        self._submitted_at = time.monotonic()
        if post:
            self._post()
        self._inbox.start()

    def _post(self) -> None:
        """Join the server's socket hub (if tracking by WebSocket), then queue the prompt on ``self.client``."""
        if self.client.tracker == "websocket":
            hub = self.client.socket_hub()
            self.client_id = hub.client_id
            if hub.join(self.prompt_id, self._inbox, logs=self.logs):
                self._hub = hub
        try:
            self.client.post_prompt(self.tab, self.prepared, self.prompt_id, self.client_id)
        except BaseException:
            self._close_socket()
            raise
        self._posted_at = time.monotonic()

    def _close_socket(self) -> None:
        """Leave the hub: the socket stays open for the server's other jobs."""
        hub, self._hub = self._hub, None
        if hub is not None:
            hub.leave(self.prompt_id)

    # ---- follow -----------------------------------------------------------------------------

    def _follow(self) -> Steps:
        try:
            yield from self._follow_to_end()
            self._result = yield from self._collect()
        except ComfyGradioError as exc:
            self._error = exc
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("Job %s failed unexpectedly", self.prompt_id)
            self._error = ProtocolError(f"Unexpected error while following the run: {exc}")
        finally:
            self._close_socket()
            if self.hooks.finished:  # first: whoever the result wakes sees the pool's count without this job
                self.hooks.finished(self, self._error is None)
            with self._callbacks_lock:
                self._done.set()
            self._run_callbacks()
            self._emit(None)

    def _follow_to_end(self) -> Steps:
        """Follow the prompt until it finishes, sending it again if its server loses it."""
        while True:  # its place: from the hub after the status ComfyUI broadcasts, or the first poll
            try:
                if not (self._hub is not None and (yield from self._follow_socket())):
                    yield from self._follow_http()
                return
            except ServerUnavailable as exc:
                yield from self._server_lost(exc)
            except _PromptGone:
                self._prompt_gone()

    def _may_resend(self) -> bool:
        """Whether a lost prompt may be sent again: always before it started, once after if allowed."""
        return not self._started or (self.hooks.retry_running and not self._retried)

    def _server_lost(self, lost: ServerUnavailable) -> Steps:
        """The server stopped answering: move to another server, or wait for this one to come back."""
        lost_url = self.client.url
        if not self._may_resend():
            raise ServerError(f"ComfyUI at {lost_url} stopped responding while running this job; nothing "
                              "was saved. Run it again.") from lost
        other = self.hooks.failover(self) if self.hooks.failover else None
        if other is not None:
            self._resubmit(other, f"ComfyUI at {lost_url} stopped answering; your job was sent to {other.url}")
        elif not (yield from self._wait_for_server()):
            raise lost
        # Back again: following resumes, and sends the prompt again if the server lost it (a restart).

    def _wait_for_server(self) -> Generator[Wait | Sleep, Any, bool]:
        """Poll the server until it answers (True), for at most ``server_wait`` seconds."""
        log.warning("ComfyUI at %s stopped answering; waiting up to %.0f s for it", self.client.url,
                    self.server_wait)
        until = time.monotonic() + self.server_wait
        while time.monotonic() < until:
            yield from self._pause(self.client.poll_interval)
            try:  # one read for all the server's waiting jobs
                self.client.socket_hub().queue_state(time.monotonic() - self.client.poll_interval / 2)
            except ServerUnavailable:
                continue
            return True
        return False

    def _pause(self, seconds: float) -> Steps:
        """Wait ``seconds`` unless cancelled (or out of time); other inbox items are stale here."""
        try:
            item = yield from self._next(seconds)
        except queue.Empty:
            return
        if item is _CANCEL:
            raise JobCancelled("Cancelled before it started." if not self._started else "Cancelled by you.")
        if isinstance(item, SocketNews) and item.hub is self._hub and item.state is SocketState.LOST:
            self._hub = None  # the hub has let it go: poll when following resumes

    def _prompt_gone(self) -> None:
        """The server answers but no longer has the prompt: send it again if allowed."""
        if self._cancelled:
            raise JobCancelled("Cancelled by you; nothing was saved from this run.")
        if not self._may_resend():
            raise ServerError(f"ComfyUI at {self.client.url} lost this job while running it (it restarted, or "
                              "the run was removed from its queue); nothing was saved. Run it again.")
        self._resubmit(self.client, "ComfyUI restarted and lost your job; it was sent again")

    def _resubmit(self, server: JobServer, reason: str) -> None:
        """Send the prompt (same id, same uploads) to ``server`` and follow it there from the start."""
        if self._resubmits >= self.max_resubmits:
            raise ServerError(f"ComfyUI lost this job {self._resubmits} times; it was not sent again. Run it "
                              "again later.")
        log.warning("Sending prompt %s again, to %s: %s", self.prompt_id, server.url, reason)
        self._resubmits += 1
        self._retried = self._retried or self._started
        self._started = False
        self._misses = 0
        self._place = -1
        self.graph_progress, self._cached = None, frozenset()
        self._close_socket()
        self._drain_inbox()
        self.client = server
        if server.upload_all(self.uploads) != {k: self.prepared.values[k] for k in self.uploads}:
            raise ServerError(f"ComfyUI at {server.url} stored the uploaded images under other names; run it "
                              "again.")
        self._post()
        self._emit(Resubmitted(server.url, reason))

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is _CANCEL:
                self._inbox.put(_CANCEL)
                return

    def _next(self, wait: float | None) -> Generator[Wait | Sleep, Any, Any]:
        """The next inbox item, honouring the job deadline; ``queue.Empty`` after ``wait`` seconds."""
        remaining = None if self._deadline is None else self._deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            self._give_up()
        limits = [x for x in (wait, remaining) if x is not None]
        return (yield Wait(min(limits) if limits else None))

    def _give_up(self) -> None:
        self.cancel()
        raise JobTimeout(f"The run took longer than allowed and was cancelled (prompt {self.prompt_id}).")

    def _follow_socket(self) -> Generator[Wait | Sleep, Any, bool]:
        """Follow the WebSocket, looking over HTTP now and then; True when the prompt finished,
        False to continue by polling (the socket could not be reopened)."""
        next_look = time.monotonic() + self.socket_check_interval
        while True:
            try:
                item = yield from self._next(max(next_look - time.monotonic(), 0.0))
            except queue.Empty:
                if self._look_while_connected():
                    return True
                next_look = self._after_look()
                continue
            if item is _CANCEL:
                if not self._started:
                    raise JobCancelled("Cancelled before it started.")
                continue
            if isinstance(item, SocketNews):
                if item.hub is not self._hub:
                    continue  # from a server this job has left
                if item.state is SocketState.LOST:
                    self._hub = None  # the hub has let it go
                    return False
                if self._look():  # it may have ended, or been lost in a restart, while the socket was away
                    return True
                next_look = self._after_look()
                continue
            if self._handle(item):
                return True

    def _look_while_connected(self) -> bool:
        """``_look``, except that an HTTP failure is only logged: the open socket says when the
        server is really gone (it drops), and a run must not fail over one lost poll."""
        try:
            return self._look(max_age=self.client.poll_interval)
        except ServerError as exc:
            log.warning("Could not look up prompt %s over HTTP (%s); still following its socket", self.prompt_id,
                        exc)
            return False

    def _after_look(self) -> float:
        """When to look again: soon while the prompt is missing, else after the usual interval."""
        return time.monotonic() + (self.client.poll_interval if self._misses else self.socket_check_interval)

    def _handle(self, item: WireMessage | PreviewFrame | TextFrame | Place | None) -> bool:
        """Turn one wire message into job events; True when this prompt has finished."""
        if isinstance(item, PreviewFrame):
            if item.prompt_id in (None, self.prompt_id):
                self._emit(Preview(item.image, item.mime, item.node_id))
            return False
        if isinstance(item, TextFrame):
            if item.prompt_id in (None, self.prompt_id):
                self._emit(OutputReady(item.node_id, self._title(item.node_id), {"text": [item.text]}))
            return False
        if isinstance(item, Place):
            self._queued(item.position)
            return False
        if item is None:
            return False
        if item.type is MessageType.NOTIFICATION:
            self._emit(Notification(str(item.data.get("value", "")), item.data.get("id")))
            return False
        if item.type is MessageType.LOGS:
            if self.logs:
                self._emit(log_lines(item.data))
            return False
        if item.prompt_id not in (None, self.prompt_id):
            return False
        return self._handle_own(item)

    def _handle_own(self, item: WireMessage) -> bool:
        data = item.data
        if item.type is MessageType.EXECUTION_START:
            self._mark_started()
        elif item.type is MessageType.EXECUTION_CACHED and data.get("nodes"):
            cached = tuple(str(n) for n in data["nodes"])
            self._cached = frozenset(cached)
            self._emit(Cached(cached))
        elif item.type is MessageType.EXECUTING:
            if item.node is None:
                return item.prompt_id == self.prompt_id
            self._mark_started()
            self._node_started(item.node, item.display_node)
        elif item.type is MessageType.PROGRESS and item.node:
            self._emit(Progress(item.node, self._title(self._shown.get(item.node, item.node)),
                                      int(data.get("value", 0)), int(data.get("max", 0))))
        elif item.type is MessageType.PROGRESS_STATE and item.prompt_id == self.prompt_id:
            self.graph_progress = graph_progress(item, len(self.prepared.prompt), self._cached)
        elif item.type is MessageType.EXECUTED and item.node:
            self._emit(OutputReady(item.node, self._title(item.node), dict(data.get("output") or {})))
        elif item.type is MessageType.EXECUTION_ERROR:
            raise self._failure(data)
        elif item.type is MessageType.EXECUTION_INTERRUPTED:
            raise self._interrupted(data)
        return False

    def _node_started(self, node_id: str, display_node: str | None) -> None:
        """NodeStarted, titled after the node the user sees when the server names another one that
        the prompt has (a node expanded at run time shows as the node it came from)."""
        if display_node not in (None, node_id) and display_node in self.prepared.prompt:
            self._shown[node_id] = display_node
            self._emit(NodeStarted(node_id, self._title(display_node), display_node))
        else:
            self._emit(NodeStarted(node_id, self._title(node_id)))

    def _mark_started(self) -> None:
        if not self._started:
            self._started = True
            self.started_at = time.monotonic()
            self._emit(Started())

    def _follow_http(self) -> Steps:
        """Poll /history and /queue until the prompt ends (the fallback tracker)."""
        while not self._look(max_age=self.client.poll_interval / 2):
            try:
                item = yield from self._next(self.client.poll_interval)
            except queue.Empty:
                continue
            if item is _CANCEL and not self._started:
                raise JobCancelled("Cancelled before it started.")

    def _look(self, max_age: float = 0.0) -> bool:
        """One look over HTTP: True when the prompt has finished. Raises ``_PromptGone`` when it is
        in neither the queue nor the history three looks in a row (at once if it was cancelled).

        The queue first, as read for all the server's jobs at most ``max_age`` s ago (one ``GET /queue``
        for hundreds of jobs); the prompt's own history only when it is not waiting there."""
        place = self._queue_place(time.monotonic() - max_age)
        if place is not QueuePlace.PENDING and self.client.history(self.prompt_id) is not None:
            return True
        if place is not QueuePlace.GONE:
            self._misses = 0
            return False
        self._misses += 1
        if self._cancelled or self._misses >= 3:
            raise _PromptGone()
        return False

    def _queue_place(self, since: float) -> QueuePlace:
        state = self.client.socket_hub().queue_state(since)
        if any(item[1] == self.prompt_id for item in state.get("queue_running", [])):
            self._mark_started()
            return QueuePlace.RUNNING
        pending = state.get("queue_pending", [])
        if any(item[1] == self.prompt_id for item in pending):
            self._queued(self._position(state))
            return QueuePlace.PENDING
        return QueuePlace.GONE

    def _queued(self, position: int | None) -> None:
        """``Queued(position)``, unless the job has started or was told that place already."""
        if not self._started and position != self._place:
            self._place = position
            self._emit(Queued(position))

    def _position(self, state: dict[str, list[Any]]) -> int | None:
        """Prompts ahead of this one (``hub.queue_places``); None if it is not waiting."""
        return queue_places(state).get(self.prompt_id)

    def _check_history(self, entry: dict[str, Any]) -> None:
        """Raise unless the history entry's status says success."""
        status = entry.get("status") or {}
        if status.get("status_str") == "success" or status.get("completed"):
            return
        for name, data in status.get("messages", []):
            if name == "execution_error":
                raise self._failure(data)
            if name == "execution_interrupted":
                raise self._interrupted(data)
        raise ExecutionFailed("?", "the workflow", f"ComfyUI reported status {status.get('status_str')!r}")

    def _failure(self, data: dict[str, Any]) -> ExecutionFailed:
        node_id = str(data.get("node_id", "?"))
        return ExecutionFailed(node_id, self._title(node_id), str(data.get("exception_message", "")),
                               str(data.get("exception_type", "")))

    def _interrupted(self, data: dict[str, Any]) -> JobCancelled:
        node_id = str(data.get("node_id", ""))
        at = f" at {self._title(node_id)}" if node_id else ""
        who = "by you" if self._cancelled else "on the server"
        return JobCancelled(f"Cancelled {who}{at}; nothing was saved from this run.")

    def _title(self, node_id: str) -> str:
        return node_title(self.prepared.prompt, node_id, self.tab.workflow.groups)

    # ---- collect ----------------------------------------------------------------------------

    def _collect(self) -> Generator[Wait | Sleep, Any, RunResult]:
        entry = yield from self._history_with_retry()
        self._check_history(entry)
        files = collect_outputs(entry.get("outputs") or {}, self.tab, self.prepared.prompt, self.client.download,
                                self.job_dir)
        if not files:
            log.warning("Prompt %s: %s", self.prompt_id, NO_OUTPUT)
        return RunResult(
            prompt_id=self.prompt_id, status="success", duration=time.monotonic() - self._submitted_at,
            seeds=dict(self.prepared.seeds), values=dict(self.prepared.values), outputs=files,
            server=self.client.url, prompt=self.prepared.prompt, warnings=[] if files else [NO_OUTPUT],
            queued_for=(self.started_at or self._submitted_at) - self._submitted_at)

    def _history_with_retry(self) -> Generator[Wait | Sleep, Any, dict[str, Any]]:
        for delay in self.history_delays:
            if delay > 0:
                yield Sleep(delay)
            entry = self.client.history(self.prompt_id)
            if entry is not None:
                return entry
        raise ProtocolError(f"ComfyUI finished prompt {self.prompt_id} but has no history for it")


def _canonical(prompt_id: str) -> str:
    """``prompt_id`` if it is a UUID in canonical form, which newer servers require (``POST /prompt``
    answers 400 ``invalid_prompt_id`` otherwise: ``comfy_execution/jobs.py`` ``validate_job_id``)."""
    try:
        if str(uuid.UUID(prompt_id)) == prompt_id:
            return prompt_id
    except (ValueError, TypeError, AttributeError):
        pass
    raise InputError("prompt_id", f"must be a UUID in canonical form such as {uuid.uuid4()}, not {prompt_id!r}")
