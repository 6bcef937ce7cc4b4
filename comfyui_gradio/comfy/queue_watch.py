"""What one ComfyUI server's queue holds now: the picture the pool routes on.

ComfyUI broadcasts ``status`` (``exec_info.queue_remaining``) to every socket on each change of its
queue: a prompt put, taken by the worker (it starts), done, or deleted (``PromptQueue`` in ComfyUI's
``execution.py``; PROTOCOL.md). The message holds a count only: not which prompts, not whose. The
other prompts' own messages (``execution_start``, ``progress``) go only to their sender's socket.
``GET /queue`` lists the running and waiting prompts by id and answers in milliseconds.

So a ``QueueWatch`` keeps one socket per server that listens to ``status`` only, and reads
``/queue`` after each change (a background reader; changes that arrive during a read are read once,
after it). That gives routing

- a picture as fresh as the server's own: while the socket is open, a ``current()`` view is the last
  read unless a change came since, in which case ``current()`` reads at once (no reads at all while
  nothing changes);
- the moment each prompt began running, to the time of one read (the worker taking a prompt is a
  change), which is how the age of someone else's prompt is known.

Without the socket (a proxy refuses WebSockets, it dropped, or ``listen()`` was not called),
``current()`` reads ``/queue`` when the last read is older than ``max_age`` seconds; a prompt's start
is then known to within the time between reads. The pool reopens a dropped socket on its health
checks. Times are the pool's clock (an injected one in tests).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ProtocolError, ServerError
from .events import MessageType, parse_text
from .server import JobServer
from .transport import WebSocketClosed, WebSocketConnection

__all__ = ["QueueView", "QueueWatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueView:
    """One read of ``GET /queue``: prompt ids running and waiting, and since when each runs."""

    running: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    running_since: Mapping[str, float] = field(default_factory=dict)  # prompt id -> clock time first seen running
    read_at: float = float("-inf")
    changes: int = -1  # the watch's count of status messages when this read began

    @property
    def remaining(self) -> int:
        return len(self.running) + len(self.pending)


class QueueWatch:
    """The queue of one server, kept fresh by its ``status`` messages (see the module docstring)."""

    def __init__(self, server: JobServer, clock: Callable[[], float], *, max_age: float = 0.5) -> None:
        self._server = server
        self._clock = clock
        self.max_age = max_age
        self.client_id = uuid.uuid4().hex  # the same on every reconnect
        self._view = QueueView()
        self._changes = 0
        self._lock = threading.Lock()  # guards _view, _changes, _ws
        self._listening = threading.Lock()  # one opening of the status socket at a time
        self._read_lock = threading.Lock()  # one read of /queue at a time
        self._ws: WebSocketConnection | None = None
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def view(self) -> QueueView:
        """The last read, however old (never blocks)."""
        return self._view

    @property
    def listening(self) -> bool:
        return self._ws is not None

    def current(self) -> QueueView:
        """A view as fresh as the module docstring promises; raises ``ServerError`` if a needed read fails."""
        if self._is_current(self._view):
            return self._view
        with self._read_lock:
            if self._is_current(self._view):  # read by another thread while this one waited
                return self._view
            return self._read()

    def refresh(self) -> QueueView:
        """Read ``/queue`` now (the health check: it also tells whether the server answers)."""
        with self._read_lock:
            return self._read()

    def _is_current(self, view: QueueView) -> bool:
        with self._lock:
            if self._ws is not None:
                return view.changes == self._changes
        return self._clock() - view.read_at <= self.max_age

    def _read(self) -> QueueView:
        with self._lock:
            changes = self._changes
        state = self._server.queue_state()
        now = self._clock()
        running, pending = _prompt_ids(state, "queue_running"), _prompt_ids(state, "queue_pending")
        since = self._view.running_since
        self._view = QueueView(running, pending, {p: since.get(p, now) for p in running}, now, changes)
        return self._view

    # ---- the status socket ----------------------------------------------------------------------

    def listen(self) -> bool:
        """Open the status socket unless it is open; False if the server refuses it (reads then go by age).
        One caller at a time (the health thread and a pick may both call it): never two sockets."""
        with self._listening:
            return self._listen()

    def _listen(self) -> bool:
        if self._ws is not None or self._closed.is_set():
            return self._ws is not None
        try:
            ws = self._server.connect_ws(_socket_url(self._server.url, self.client_id),
                                         headers=self._server.headers, timeout=self._server.timeout)
        except (ServerError, WebSocketClosed) as exc:
            log.info("No status socket to %s (%s); the pool reads its queue when it picks", self._server.url, exc)
            return False
        with self._lock:
            self._ws = ws
            self._changes += 1  # what happened while nobody listened is not known
        self._changed.set()
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_on_change, name="queue-watch", daemon=True)
            self._refresher.start()
        threading.Thread(target=self._read_socket, args=(ws,), name="queue-watch-ws", daemon=True).start()
        return True

    def close(self) -> None:
        self._closed.set()
        self._changed.set()
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    def _read_socket(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                frame = ws.recv()
            except WebSocketClosed as exc:
                with self._lock:
                    if self._ws is ws:
                        self._ws = None
                ws.close()
                if not self._closed.is_set():
                    log.info("Status socket to %s closed (%s)", self._server.url, exc)
                return
            if isinstance(frame, str) and _is_status(frame):
                with self._lock:
                    self._changes += 1
                self._changed.set()

    def _refresh_on_change(self) -> None:
        while True:
            self._changed.wait()
            if self._closed.is_set():
                return
            self._changed.clear()
            try:
                self.current()
            except ServerError as exc:  # the health check and the next pick will say so
                log.debug("Could not read the queue of %s: %s", self._server.url, exc)


def _is_status(frame: str) -> bool:
    try:
        return parse_text(frame).type is MessageType.STATUS
    except ProtocolError:
        return False


def _prompt_ids(state: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """Prompt ids of ``/queue`` items ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
    return tuple(str(item[1]) for item in state.get(key) or [] if isinstance(item, (list, tuple)) and len(item) > 1)


def _socket_url(url: str, client_id: str) -> str:
    return f"{url.replace('https://', 'wss://', 1).replace('http://', 'ws://', 1)}/ws?clientId={client_id}"
