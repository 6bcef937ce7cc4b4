"""What one ComfyUI server's queue holds now: the picture the pool routes on.

ComfyUI broadcasts ``status`` (``exec_info.queue_remaining``) to every socket on each change of its
queue: a prompt put, taken by the worker (it starts), done, or deleted (``PromptQueue`` in ComfyUI's
``execution.py``; PROTOCOL.md). The message holds a count only: not which prompts, not whose. The
other prompts' own messages (``execution_start``, ``progress``) go only to their sender's socket.
``GET /queue`` lists the running and waiting prompts by id and answers in milliseconds.

So a ``QueueWatch`` listens to the ``status`` broadcasts on the server's one socket (the one its
jobs share, ``hub.SocketHub.watch``), and reads ``/queue`` after each change (a background reader;
changes that arrive during a read are read once, after it). That gives routing

- a picture as fresh as the server's own: while the socket is open, a ``current()`` view is the last
  read unless a change came since, in which case ``current()`` reads at once (no reads at all while
  nothing changes);
- the moment each prompt began running, to the time of one read (the worker taking a prompt is a
  change), which is how the age of someone else's prompt is known.

Without the socket (a proxy refuses WebSockets, it dropped and the hub could not reopen it, or
``listen()`` was not called), ``current()`` reads ``/queue`` when the last read is older than
``max_age`` seconds; a prompt's start is then known to within the time between reads. The pool
reopens a lost socket on its health checks. Times are the pool's clock (an injected one in tests).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ServerError
from .hub import SocketHub
from .server import JobServer

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
        self._view = QueueView()
        self._changes = 0
        self._lock = threading.Lock()  # guards _changes, _hub, _refresher
        self._read_lock = threading.Lock()  # one read of /queue at a time
        self._hub: SocketHub | None = None  # the socket listened on, once listen() succeeded
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def view(self) -> QueueView:
        """The last read, however old (never blocks)."""
        return self._view

    @property
    def listening(self) -> bool:
        hub = self._hub
        return hub is not None and hub.connected

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
        if self.listening:
            with self._lock:
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
        """Listen to the status broadcasts on the server's one socket (``hub.SocketHub.watch``, opening
        it if needed); False if the server refuses it (reads then go by age). Thread-safe."""
        if self._closed.is_set():
            return False
        hub = self._server.socket_hub()
        if not hub.watch(self._on_change):
            log.info("No status socket to %s; the pool reads its queue when it picks", self._server.url)
            return False
        with self._lock:
            self._hub = hub
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_on_change, name="queue-watch", daemon=True)
                self._refresher.start()
        return True

    def close(self) -> None:
        self._closed.set()
        self._changed.set()
        with self._lock:
            hub, self._hub = self._hub, None
        if hub is not None:
            hub.unwatch(self._on_change)

    def _on_change(self) -> None:
        """On the hub's reader thread: a status broadcast, or the socket (re)opened."""
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


def _prompt_ids(state: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """Prompt ids of ``/queue`` items ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
    return tuple(str(item[1]) for item in state.get(key) or [] if isinstance(item, (list, tuple)) and len(item) > 1)

