"""What every tab of one app shares: the settings, the pool, the run book, the runs going on by
caller, and the owner id of each browser session.

Who owns a run: a browser keeps a random owner id in its local storage (``gr.BrowserState``),
encrypted with ``browser_secret``: the same in every process of the app, so a browser is still
known (and finds its runs) after the app restarts.
A run started from a page keeps going if the page is reloaded or the connection drops, and is
listed again under "Your recent runs"; only its Cancel button stops it. A run started through
the API (no owner id) is stopped when its caller cancels (``job.cancel()``) or goes away.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from ..comfy.job import Job
from ..comfy.pool import ComfyPool
from ..errors import ConfigError, Problem
from .config import Settings
from .runs import RunBook

__all__ = ["ActiveRuns", "SECRET_FILE", "Shared", "browser_secret"]

SECRET_FILE = ".secret"  # in OUTPUT_DIR, beside the runs it unlocks


def browser_secret(settings: Settings) -> str:
    """The key of the owner ids kept in browsers, from ``APP_SECRET`` or else from ``OUTPUT_DIR/.secret``
    (made once, readable by the app's user only).

    Gradio hands a ``BrowserState``'s secret to every page it serves, so the page gets a key derived
    from the configured one, never the configured one itself.
    """
    key = settings.app_secret or _stored_secret(settings.output_dir / SECRET_FILE)
    return hmac.new(key.encode(), b"comfyui-gradio owner id", hashlib.sha256).hexdigest()


def _stored_secret(path: Path) -> str:
    """The secret in ``path``, made first if there is none. Of two processes starting at once, the one
    that creates the file writes it; the other reads it once it is written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(secrets.token_urlsafe(32))
        for _ in range(50):  # another process may have made it an instant ago and be writing it
            key = path.read_text(encoding="ascii").strip()
            if key:
                return key
            time.sleep(0.02)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("settings", "APP_SECRET", f"not set, and {path} cannot be made or read "
                                   f"({getattr(exc, 'strerror', None) or exc}); set APP_SECRET or make "
                                   "OUTPUT_DIR writable")]) from exc
    raise ConfigError([Problem("settings", "APP_SECRET", f"not set, and {path} is empty; delete it or set "
                               "APP_SECRET")])


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
