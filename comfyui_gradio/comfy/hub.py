"""One WebSocket per server, shared by every job on it: ``SocketHub``.

ComfyUI sends every message of a prompt to the socket of the ``client_id`` it was posted with, and
puts the ``prompt_id`` on each (``server.py`` ``send_sync``; previews carry it in their metadata
after the ``feature_flags`` handshake, text frames after ``supports_progress_text_metadata``). So a
client needs one socket, not one per job: the hub opens ``/ws?clientId=<hub id>``, jobs post with
that id, and one reader thread hands each message to the inbox of the job it names. Tried with 100
jobs in flight on one ComfyUI, a socket per job held 81 connections and 124 threads.

Routing (a job sees what it saw on a socket of its own, and nothing of the other prompts):

* a message or frame with a ``prompt_id`` goes to that prompt's job only (none: another client's);
* ``feature_flags`` and ``notification`` go to every job;
* ``status`` (the queue changed) goes to no job as such: the hub reads the queue once (at most every
  ``place_interval`` seconds) and puts ``Place(position)`` in the inbox of each waiting job whose place
  changed, so a broadcast wakes the few jobs it concerns, not all of the hundreds in flight;
* ``logs`` goes to the jobs that asked for logs (``subscribe_logs`` is per client id: the hub
  subscribes its id while one of them is in, and unsubscribes when the last leaves);
* anything else without a prompt id (0.3.64's text frames, previews from a server without metadata,
  the ``executing`` a reconnected socket gets) goes to the prompt ComfyUI is running now, which the
  hub knows from the last ``execution_start``/``executing`` (ComfyUI runs one prompt at a time);
  with none known, to the only job in, if there is one (else nobody can tell whose it is).

Jobs ``join`` before posting (prompt ids are client-made, so a message arriving before the HTTP
answer finds its job) and ``leave`` when done. The socket lives as long as the client
(``ComfyClient.close``, then until its jobs in flight have left). When it drops, the hub reopens it once with the same id after
``reconnect_delay`` and puts ``SocketNews(RECONNECTED)`` in every job's inbox (each then looks over
HTTP, as it may have ended meanwhile); if it cannot, ``SocketNews(LOST)``: every job of the server
falls back to polling at once, and leaves. A job joining while the socket is down tries to reopen it,
at most once per ``reopen_interval`` seconds, else it polls from the start (as with a refused socket).

The hub also holds what the server's jobs share besides the socket: ``workers``, the few threads their
followers run on (``follow.py``), and ``queue_state(since)``, one ``GET /queue`` for all the jobs that ask
for a queue read at or after a moment (after a ``status`` broadcast, ``status_at``; or for a look).

A pool's ``QueueWatch`` listens on the same socket (``watch``): told of every ``status`` broadcast, it
keeps the socket open while no job is in, so a server costs the pool one socket for routing and jobs.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from ..errors import ComfyGradioError, ProtocolError, ServerError, ServerUnavailable
from .follow import CLOCK, Workers
from .events import MessageType, PreviewFrame, TextFrame, WireMessage, parse_binary, parse_text
from .jobs_api import ServerFeatures
from .server import JobServer
from .transport import WebSocketClosed, WebSocketConnection

__all__ = ["CLIENT_FEATURES", "Place", "SocketHub", "SocketNews", "SocketState", "queue_places"]

log = logging.getLogger(__name__)

CLIENT_FEATURES = {"supports_preview_metadata": True, "supports_progress_text_metadata": True}
"""The client's ``feature_flags`` handshake, the first message on every socket (as the frontend's
``clientFeatureFlags``, without its manager flag)."""

_TO_EVERY_JOB = (MessageType.FEATURE_FLAGS, MessageType.NOTIFICATION)


class SocketState(str, Enum):
    RECONNECTED = "reconnected"  # the socket dropped and was reopened: look over HTTP
    LOST = "lost"  # the socket dropped and could not be reopened: poll from now on


@dataclass(frozen=True)
class SocketNews:
    """Put in a job's inbox by its hub; ``hub`` tells a stale one (from a server the job left) apart."""

    state: SocketState
    hub: "SocketHub"


@dataclass(frozen=True)
class Place:
    """Put in a waiting job's inbox by its hub: ``position`` prompts are ahead of it now."""

    position: int


@dataclass
class _Member:
    inbox: Any  # anything with put(item): a queue.Queue, a job's follow.Follower
    logs: bool
    place: int | None = None  # the last Place put in its inbox


def queue_places(state: dict[str, list[Any]]) -> dict[str, int]:
    """Each waiting prompt's place in ``GET /queue``'s answer: every running prompt is ahead of it, and
    every waiting one with a lower number (ComfyUI takes the lowest first)."""
    running = len(state.get("queue_running", []))
    pending = state.get("queue_pending", [])
    numbers = sorted(item[0] for item in pending)
    return {item[1]: running + bisect.bisect_left(numbers, item[0]) for item in pending}


class SocketHub:
    """The one socket to ``server`` and the jobs following their prompts on it. Thread-safe."""

    reconnect_delay: float = 0.1  # seconds before the one attempt to reopen a dropped socket
    reopen_interval: float = 2.0  # seconds between attempts by joining jobs to open a socket that is down
    place_interval: float = 0.25  # seconds between the queue reads that tell waiting jobs their places

    def __init__(self, server: JobServer) -> None:
        self.server = server
        self.client_id = uuid.uuid4().hex  # the same on every reconnect
        self._members: dict[str, _Member] = {}
        self._watchers: list[Callable[[], None]] = []  # told of each status broadcast and (re)opening
        self._lock = threading.Lock()  # guards _members, _watchers, _running
        self._open_lock = threading.Lock()  # one opener at a time; guards _ws, _failed_at, _logs_on
        self._ws: WebSocketConnection | None = None
        self._running: str | None = None  # the prompt the server runs now, from its messages
        self._failed_at = float("-inf")
        self._logs_on = False
        self._closed = False
        self.workers = Workers(f"jobs-{self.client_id[:8]}")  # the steps of the server's jobs (follow.py)
        self.status_at = float("-inf")  # time.monotonic() of the last status broadcast
        self._queue_lock = threading.Lock()  # one GET /queue at a time; guards _queue
        self._queue: tuple[float, Any] | None = None  # (when the last read began, its answer or error)
        self._places_due = False  # a read for the places is on the clock; guarded by _lock
        self._places_at = float("-inf")  # when the last one began

    # ---- jobs -------------------------------------------------------------------------------

    def join(self, prompt_id: str, inbox: Any, *, logs: bool = False) -> bool:
        """Route ``prompt_id``'s messages to ``inbox`` (anything with ``put(item)``) from now on. False:
        there is no socket (refused, or down and tried less than ``reopen_interval`` s ago); the job polls
        and is not kept."""
        with self._open_lock:
            if self._closed or not self._ensure_open():
                return False
            with self._lock:
                self._members[prompt_id] = _Member(inbox, logs)
            if logs:
                self._subscribe_logs(True, f"for prompt {prompt_id}")
        return True

    def leave(self, prompt_id: str) -> None:
        with self._lock:
            member = self._members.pop(prompt_id, None)
            logs_wanted = any(m.logs for m in self._members.values())
            last = not self._members
        if member is not None and member.logs and not logs_wanted:
            with self._open_lock:
                if self._ws is not None and not self._closed:
                    self._subscribe_logs(False, f"from {self.server.url}")
        if last and self._closed:
            self._close_socket()

    def watch(self, on_change: Callable[[], None]) -> bool:
        """Call ``on_change()`` (quick: on the reader thread) on every ``status`` broadcast and each
        time the socket opens (what changed while it was away is not known), opening it now if it is
        not open. False: there is no socket (as for ``join``); call again later. For ``QueueWatch``."""
        with self._open_lock:
            if self._closed:
                return False
            with self._lock:
                if on_change not in self._watchers:
                    self._watchers.append(on_change)
            if self._ws is not None:
                return True
            return self._ensure_open()  # _connect tells the watchers

    def unwatch(self, on_change: Callable[[], None]) -> None:
        with self._lock:
            if on_change in self._watchers:
                self._watchers.remove(on_change)

    def close(self) -> None:
        """No job joins from now on; the socket closes once the jobs in flight have left (as a job
        of a closed client still hears how its cancel ended)."""
        self._closed = True
        with self._lock:
            idle = not self._members
        if idle:
            self._close_socket()

    def _close_socket(self) -> None:
        with self._open_lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def prompt_ids(self) -> frozenset[str]:
        """The prompts whose jobs are in now."""
        with self._lock:
            return frozenset(self._members)

    def queue_state(self, since: float) -> dict[str, list[Any]]:
        """The server's queue (``JobServer.queue_state``) as read at ``since`` (``time.monotonic()``)
        or later: the jobs asking at once share one read, and its error (a server that does not
        answer is not asked again by each of hundreds of jobs in turn)."""
        with self._queue_lock:
            if self._queue is None or self._queue[0] < since:
                began = time.monotonic()
                try:
                    self._queue = (began, self.server.queue_state())
                except ComfyGradioError as exc:
                    self._queue = (began, exc)
            answer = self._queue[1]
        if isinstance(answer, ComfyGradioError):
            raise answer
        return answer

    # ---- the socket -------------------------------------------------------------------------

    def _ensure_open(self) -> bool:
        """Under ``_open_lock``: the socket is open, or was opened now (rate-limited)."""
        if self._ws is not None:
            return True
        if time.monotonic() - self._failed_at < self.reopen_interval:
            return False
        ws = self._connect()
        if ws is None:
            return False
        threading.Thread(target=self._read, args=(ws,), name=f"ws-hub-{self.client_id[:8]}", daemon=True).start()
        return True

    def _connect(self) -> WebSocketConnection | None:
        """Under ``_open_lock``: open the socket and send the handshake; None (logged) if refused."""
        url = self.server.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        try:
            ws = self.server.connect_ws(f"{url}/ws?clientId={self.client_id}", headers=self.server.headers,
                                        timeout=self.server.timeout)
            ws.send(json.dumps({"type": "feature_flags", "data": CLIENT_FEATURES}))
        except (ServerUnavailable, WebSocketClosed) as exc:
            self._failed_at = time.monotonic()
            log.warning("WebSocket to %s unavailable (%s); following its jobs over HTTP", self.server.url, exc)
            return None
        self._ws, self._logs_on = ws, False  # ComfyUI drops a subscription whose socket has gone
        with self._lock:
            logs_wanted = any(m.logs for m in self._members.values())
            watchers = list(self._watchers)
        for on_change in watchers:
            on_change()
        if logs_wanted:
            self._subscribe_logs(True, f"from {self.server.url}")
        return ws

    def _read(self, ws: WebSocketConnection) -> None:
        """The reader thread: route frames until the socket ends, then reopen it once or give up."""
        while ws is not None:
            reason = self._pump(ws)
            ws = self._reopen(ws, reason)

    def _pump(self, ws: WebSocketConnection) -> str:
        """Route every frame of ``ws``; why it ended."""
        server = ServerFeatures()  # the server's feature_flags answer says how its text frames are laid out
        while True:
            try:
                frame = ws.recv()
                item = (parse_text(frame) if isinstance(frame, str)
                        else parse_binary(frame, text_prompt_ids=server.text_prompt_ids))
            except WebSocketClosed as exc:
                return str(exc)
            except ProtocolError as exc:
                log.warning("Ignoring an unreadable message from ComfyUI: %s", exc)
                continue
            if isinstance(item, WireMessage) and item.type is MessageType.FEATURE_FLAGS:
                server = ServerFeatures(flags=item.data)
            if item is not None:
                self._route(item)

    def _reopen(self, dropped: WebSocketConnection, reason: str) -> WebSocketConnection | None:
        """After ``dropped`` ended: the reopened socket (every job told RECONNECTED), or None (LOST)."""
        with self._open_lock:
            if self._ws is not dropped:
                return None  # closed by us
            self._ws, ws = None, None
            dropped.close()
            if not self._closed:
                log.warning("WebSocket to %s dropped (%s); reconnecting", self.server.url, reason)
                time.sleep(self.reconnect_delay)
                ws = self._connect()
            with self._lock:
                self._running = None
                members = list(self._members.values())
                if ws is None:
                    self._members.clear()
                news = SocketNews(SocketState.RECONNECTED if ws is not None else SocketState.LOST, self)
                for member in members:
                    member.inbox.put(news)
        return ws

    # ---- routing ----------------------------------------------------------------------------

    def _route(self, item: WireMessage | PreviewFrame | TextFrame) -> None:
        if isinstance(item, WireMessage) and item.type is MessageType.STATUS:
            self.status_at = time.monotonic()  # before the places are read: that read comes after
            with self._lock:
                watchers = list(self._watchers)
            for on_change in watchers:
                on_change()
            if _queue_remaining(item) > 1:  # else nothing waits behind another prompt: no places to tell
                self._places_soon()
            return
        with self._lock:
            for inbox in self._recipients(item):
                inbox.put(item)

    def _places_soon(self) -> None:
        """After a ``status``: tell the waiting jobs their places, once ``place_interval`` has passed since
        the last time (broadcasts meanwhile are read together)."""
        with self._lock:
            if self._places_due or not self._members:
                return
            self._places_due = True
            when = max(time.monotonic(), self._places_at + self.place_interval)
        CLOCK.call_at(when, lambda: self.workers.submit(self._tell_places))

    def _tell_places(self) -> None:
        """On a worker: read the queue (as of the last ``status`` or later) and put a ``Place`` in each
        waiting job's inbox whose place changed."""
        with self._lock:
            self._places_due, self._places_at = False, time.monotonic()
            if self._closed or not self._members:  # nobody waits (the client may have closed its HTTP too)
                return
        try:
            places = queue_places(self.queue_state(self.status_at))
        except ComfyGradioError as exc:  # each job's own looks will tell it
            log.debug("Could not read the queue of %s for its jobs' places: %s", self.server.url, exc)
            return
        with self._lock:
            for prompt_id, member in self._members.items():
                place = places.get(prompt_id)
                if place is not None and place != member.place:
                    member.place = place
                    member.inbox.put(Place(place))

    def _recipients(self, item: WireMessage | PreviewFrame | TextFrame) -> list[Any]:
        """Under ``_lock``: the inboxes ``item`` goes to (see the module docstring)."""
        if isinstance(item, WireMessage):
            self._track_running(item)
            if item.type in _TO_EVERY_JOB:
                return [m.inbox for m in self._members.values()]
            if item.type is MessageType.LOGS:
                return [m.inbox for m in self._members.values() if m.logs]
        prompt_id = item.prompt_id if item.prompt_id is not None else self._current()
        member = self._members.get(prompt_id) if prompt_id is not None else None
        return [member.inbox] if member is not None else []

    def _track_running(self, item: WireMessage) -> None:
        if item.prompt_id is None:
            return
        if item.type is MessageType.EXECUTION_START or (item.type is MessageType.EXECUTING and item.node is not None):
            self._running = item.prompt_id
        elif item.type is MessageType.EXECUTING and self._running == item.prompt_id:
            self._running = None  # executing(null): that prompt is over

    def _current(self) -> str | None:
        if self._running is not None:
            return self._running
        return next(iter(self._members)) if len(self._members) == 1 else None

    def _subscribe_logs(self, enabled: bool, for_whom: str) -> None:
        """Under ``_open_lock``: (un)subscribe the hub's client id to the server's log. A server that
        cannot is logged, and its jobs run on without ``LogLines``."""
        if self._logs_on == enabled:
            return
        subscribe = getattr(self.server, "subscribe_logs", None)  # a JobServer of another kind may have none
        try:
            if subscribe is None:
                raise ServerError(f"{self.server.url} does not offer its log")
            subscribe(self.client_id, enabled)
            self._logs_on = enabled
        except ComfyGradioError as exc:
            log.warning("No server log %s: %s", for_whom, exc)


def _queue_remaining(status: WireMessage) -> int:
    """The prompts on the queue, running ones included, as a ``status`` message counts them (unknown:
    a large number, so that the queue is read)."""
    remaining = ((status.data.get("status") or {}).get("exec_info") or {}).get("queue_remaining")
    return remaining if isinstance(remaining, int) else 1 << 30
