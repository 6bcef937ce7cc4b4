"""What every tab of one app shares: the settings, the pool, the run book, the runs going on by
caller, and the owner id of each browser session.

Who owns a run: a browser keeps a random owner id in its local storage (``gr.BrowserState``).
A run started from a page keeps going if the page is reloaded or the connection drops, and is
listed again under "Your recent runs"; only its Cancel button stops it. A run started through
the API (no owner id) is stopped when its caller cancels (``job.cancel()``) or goes away.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import gradio as gr

from ..comfy.job import Job
from ..comfy.pool import ComfyPool
from .config import Settings
from .runs import RunBook

__all__ = ["ActiveRuns", "Shared"]


class ActiveRuns:
    """Runs going on, by caller (browser owner or API session), for Cancel and the in-flight limit."""

    def __init__(self) -> None:
        self._jobs: dict[str, list[tuple[str, Job]]] = {}  # caller -> [(tab, job)]
        self._lock = threading.Lock()

    def add(self, caller: str, tab: str, job: Job) -> None:
        with self._lock:
            self._jobs.setdefault(caller, []).append((tab, job))
        job.add_done_callback(lambda j: self._remove(caller, j))

    def _remove(self, caller: str, job: Job) -> None:
        with self._lock:
            self._jobs[caller] = [(t, j) for t, j in self._jobs.get(caller, []) if j is not job]

    def count(self, caller: str) -> int:
        with self._lock:
            return len(self._jobs.get(caller, []))

    def of(self, caller: str, tab: str) -> list[Job]:
        with self._lock:
            return [j for t, j in self._jobs.get(caller, []) if t == tab]


@dataclass
class Shared:
    settings: Settings
    backend: ComfyPool
    runs: RunBook
    active: ActiveRuns = field(default_factory=ActiveRuns)
    owners: dict[str, str] = field(default_factory=dict)  # browser session -> owner id, set on page load

    def welcome(self, owner: str | None, request: gr.Request) -> str:
        """On page load: the browser's owner id (a new one the first time), remembered for its session."""
        owner = owner or uuid.uuid4().hex
        if request.session_hash:
            self.owners[request.session_hash] = owner
        return owner

    def goodbye(self, request: gr.Request) -> None:
        self.owners.pop(request.session_hash or "", None)

    def caller(self, request: gr.Request) -> tuple[str, str | None]:
        """Who is calling: (the caller's key, the browser owner id, None for an API caller)."""
        owner = self.owners.get(request.session_hash or "")
        return owner or request.session_hash or "api", owner
