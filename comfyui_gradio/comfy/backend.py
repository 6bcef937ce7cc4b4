"""One interface for every kind of backend, and the job handle the remote kinds share.

    kind        entry in COMFYUI_URL                 implementation
    comfyui     http://127.0.0.1:8188                client.ComfyClient (ComfyUI's own /prompt + /ws)
    v2          v2+http://127.0.0.1:8189             v2.V2Backend (Comfy API v2 through comfy-sdk)
    viewcomfy   viewcomfy+https://<deployment>       viewcomfy.ViewComfyBackend
    runninghub  runninghub+https://www.runninghub.ai runninghub_backend.RunningHubBackend

A ``Backend`` takes a tab and its values and returns a ``JobHandle``: the same typed events
(``events.py``), ``result()`` and ``cancel()`` whatever the kind. ``ComfyClient`` and ``Job`` are
the native implementation. The remote kinds share ``RemoteBackend`` (load, prepare, uploads found
in the values, health) and ``RemoteJob`` (a thread that runs the wire calls and a queue of events);
each kind writes only its wire calls, as a ``RemoteRun``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

import httpx

from ..errors import ComfyGradioError, JobCancelled, JobTimeout, ProtocolError, ServerError
from ..forms.catalog import Catalog
from ..forms.loader import load_tab
from ..forms.prepare import PreparedPrompt, flat_target, prepare
from ..forms.schema import TabSpec
from .client import LocalFile, local_uploads
from .events import JobEvent, NodeStarted, Progress, Started
from .handle import JobOutcome
from .job import JobHooks
from .results import NO_OUTPUT, OutputFile, RunResult

__all__ = ["KINDS", "Backend", "BackendKind", "JobHandle", "Log", "RemoteBackend", "RemoteJob", "RemoteRun",
           "parse_entry", "upload_targets"]

log = logging.getLogger(__name__)


class JobHandle(Protocol):
    """A submitted run, whatever the backend (``job.Job`` is the native one)."""

    prompt_id: str
    tab: TabSpec
    prepared: PreparedPrompt
    uploads: dict[str, LocalFile]
    job_dir: Path
    started_at: float | None  # time.monotonic() when the backend began running it
    graph_progress: float | None  # share (0..1) of the whole workflow done, where the backend says

    @property
    def client(self) -> "Backend": ...

    @property
    def done(self) -> bool: ...

    @property
    def error(self) -> ComfyGradioError | None: ...

    def events(self, idle: float | None = None) -> Iterator[JobEvent | None]: ...

    def result(self, timeout: float | None = None) -> RunResult: ...

    def cancel(self) -> None: ...

    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...


class Backend(Protocol):
    """What the pool and the app need from a backend of any kind (``ComfyClient`` is one)."""

    url: str  # shown on the page and in logs: never carries a secret
    kind: str  # a key of KINDS

    def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
               timeout: float | None = None, output_dir: Path | None = None, hooks: JobHooks | None = None,
               prompt_id: str | None = None, logs: bool = False) -> JobHandle:
        """``logs``: also yield the server's own log lines (``LogLines``) where the kind can subscribe to them."""
        ...

    def attach(self, workflow: TabSpec | Path | str, prompt_id: str, prepared: PreparedPrompt, *,
               timeout: float | None = None, output_dir: Path | None = None) -> JobHandle: ...

    def load(self, workflow: TabSpec | Path | str) -> TabSpec: ...

    def queue_state(self) -> dict[str, list[Any]]:
        """A health check and the load: ``GET /queue``'s shape (a remote kind answers with empty lists,
        its queue being its own). Raises ``ServerError`` (``ServerUnavailable``) when it is down."""
        ...

    def catalog(self) -> Catalog | None:
        """The node catalogue; None when the backend does not publish one (a cloud: routing then
        takes it to have every node and model)."""
        ...

    def close(self) -> None: ...


# ---- kinds and COMFYUI_URL entries -------------------------------------------------------------


@dataclass(frozen=True)
class BackendKind:
    """One kind of backend: where its class lives and which secrets it takes from the environment.

    ``keys`` maps each environment variable it reads (also read as ``<KEY>_<n>`` for the n-th entry of
    COMFYUI_URL) to the argument of its class that takes it; ``required`` are those it cannot work
    without (with ``cloud_only``, only when the URL is on that host)."""

    name: str
    label: str
    module: str  # under comfyui_gradio.comfy
    factory: str
    keys: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    cloud_only: str = ""
    packages: tuple[str, ...] = ()  # distributions its module imports, beyond the base install's

    def available(self) -> bool:
        return importlib.util.find_spec(f"{__package__}.{self.module}") is not None

    def missing_packages(self) -> list[str]:
        return [p for p in self.packages if importlib.util.find_spec(p.replace("-", "_")) is None]

    def build(self, url: str, secrets: Mapping[str, str], **options: Any) -> Backend:
        """An instance for ``url``: ``secrets`` by environment variable name, ``options`` as the class takes
        them (``output_dir``; ComfyClient's headers, tracker and limits)."""
        factory = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.factory)
        return factory(url, **{self.keys[k]: v for k, v in secrets.items() if k in self.keys}, **options)

    def required_for(self, url: str) -> tuple[str, ...]:
        if self.cloud_only and httpx_host(url) != self.cloud_only:
            return ()
        return self.required


KINDS: dict[str, BackendKind] = {k.name: k for k in (
    BackendKind("comfyui", "ComfyUI", "client", "ComfyClient"),
    BackendKind("v2", "Comfy API v2", "v2", "V2Backend", {"COMFY_API_KEY": "api_key"}, ("COMFY_API_KEY",),
                cloud_only="cloud.comfy.org", packages=("comfy-sdk",)),
    BackendKind("viewcomfy", "ViewComfy", "viewcomfy", "ViewComfyBackend",
                {"VIEWCOMFY_CLIENT_ID": "client_id", "VIEWCOMFY_CLIENT_SECRET": "client_secret"},
                ("VIEWCOMFY_CLIENT_ID", "VIEWCOMFY_CLIENT_SECRET")),
    BackendKind("runninghub", "RunningHub", "runninghub_backend", "RunningHubBackend",
                {"RUNNINGHUB_API_KEY": "api_key", "RUNNINGHUB_WORKFLOW_ID": "workflow_id"}, ("RUNNINGHUB_API_KEY",)),
)}
"""Every kind a COMFYUI_URL entry may name; a new kind is one line here (and its module)."""

_PREFIX = re.compile(r"^(?P<kind>[A-Za-z0-9]+)\+(?P<url>.*)$")


def parse_entry(entry: str) -> tuple[str, str]:
    """``"v2+https://cloud.comfy.org"`` -> ``("v2", "https://cloud.comfy.org")``; no prefix is ComfyUI.

    The kind is returned as written (the caller checks it against ``KINDS``)."""
    match = _PREFIX.match(entry.strip())
    if match is None:
        return "comfyui", entry.strip().rstrip("/")
    return match["kind"].lower(), match["url"].strip().rstrip("/")


def httpx_host(url: str) -> str:
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:  # reported by the caller's own check
        return ""


# ---- the shared remote job ---------------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    """A line of the backend's log (ViewComfy streams ComfyUI's console). Not shown as a status line."""

    text: str


class RemoteRun(Protocol):
    """A run queued on a remote backend, as its wire client follows it."""

    def follow(self, emit: Callable[[Any], None], job_dir: Path) -> list[OutputFile]:
        """Block until the run ends, emitting events; save its outputs into ``job_dir``. Raise one of
        the package's errors if it does not succeed."""
        ...

    def cancel(self) -> None:
        """Ask the backend to stop the run (best effort; the job ends as cancelled either way)."""
        ...


_TQDM = re.compile(r"(?P<value>\d+)/(?P<max>\d+) \[")


def progress_in_log(line: str) -> Progress | None:
    """A tqdm bar in a ComfyUI log line (`` 50%|█████     | 10/20 [00:05<00:05, 2.00it/s]``) as Progress."""
    match = _TQDM.search(line)
    if match is None or int(match["max"]) == 0:
        return None
    return Progress("", "Running", int(match["value"]), int(match["max"]))


class RemoteJob(JobOutcome):
    """The job handle of every remote kind: one thread runs ``RemoteRun.follow``; ``cancel()`` and the
    timeout end the job at once (the backend is asked to stop; what it still sends is ignored)."""

    def __init__(self, backend: Backend, tab: TabSpec, prepared: PreparedPrompt, run: RemoteRun, *,
                 prompt_id: str, output_dir: Path, timeout: float | None, uploads: dict[str, LocalFile],
                 hooks: JobHooks | None = None) -> None:
        super().__init__()
        self._backend = backend
        self.tab, self.prepared, self.prompt_id, self.uploads = tab, prepared, prompt_id, uploads
        self.job_dir = output_dir / prompt_id
        self.hooks = hooks or JobHooks()
        self.started_at: float | None = None
        self.graph_progress: float | None = None  # remote kinds report no per-node progress of the graph
        self._run = run
        self._timeout = timeout
        self._submitted_at = time.monotonic()
        self._timer: threading.Timer | None = None
        self._finishing = False  # _finish has begun (the outcome is set; _done follows the pool's hook)

    @property
    def client(self) -> Backend:
        return self._backend

    def cancel(self) -> None:
        """Stop this run: the backend is asked to, and the job ends as cancelled at once."""
        if self._finishing:
            return
        # Ended first, then the backend is asked: what its follower still reports is ignored, not taken as the end.
        self._finish(error=JobCancelled("Cancelled by you." if self.started_at else "Cancelled before it started."))
        self._stop()

    # ---- inside ----------------------------------------------------------------------------

    def _start(self) -> None:
        """The timer first: a run that ends at once must find it to stop it."""
        if self._timeout:
            self._timer = threading.Timer(self._timeout, self._time_out)
            self._timer.daemon = True
            self._timer.start()
        threading.Thread(target=self._follow, name=f"job-{self.prompt_id[:8]}", daemon=True).start()

    def _event(self, event: Any) -> None:
        """An event from the run, until the job has ended."""
        if self._finishing:
            return
        if self.started_at is None and isinstance(event, (Started, Progress, NodeStarted)):
            self.started_at = time.monotonic()
        self._emit(event)

    def _follow(self) -> None:
        try:
            files = self._run.follow(self._event, self.job_dir)
        except ComfyGradioError as exc:
            self._finish(error=exc)
            return
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("Job %s on %s failed unexpectedly", self.prompt_id, self._backend.url)
            self._finish(error=ProtocolError(f"Unexpected error while following the run: {exc}"))
            return
        self._finish(result=self._result_of(files))

    def _result_of(self, files: list[OutputFile]) -> RunResult:
        if not files:
            log.warning("Run %s: %s", self.prompt_id, NO_OUTPUT)
        now = time.monotonic()
        return RunResult(prompt_id=self.prompt_id, status="success", duration=now - self._submitted_at,
                         seeds=dict(self.prepared.seeds), values=dict(self.prepared.values), outputs=files,
                         server=self._backend.url, prompt=self.prepared.prompt,
                         warnings=[] if files else [NO_OUTPUT],
                         queued_for=(self.started_at or now) - self._submitted_at)

    def _time_out(self) -> None:
        if not self._finishing:
            self._finish(error=JobTimeout(f"The run took longer than allowed and was cancelled "
                                          f"(prompt {self.prompt_id})."))
            self._stop()

    def _stop(self) -> None:
        try:
            self._run.cancel()
        except ComfyGradioError as exc:
            log.warning("Could not tell %s to cancel run %s: %s", self._backend.url, self.prompt_id, exc)

    def _finish(self, *, result: RunResult | None = None, error: ComfyGradioError | None = None) -> None:
        with self._callbacks_lock:
            if self._finishing:
                return
            self._finishing = True
            self._result, self._error = result, error
        if self._timer is not None:
            self._timer.cancel()
        if self.hooks.finished:  # first: whoever the result wakes sees the pool's count without this job
            self.hooks.finished(self, error is None)  # type: ignore[arg-type]
        with self._callbacks_lock:
            self._done.set()
        self._run_callbacks()
        self._emit(None)


# ---- the shared remote backend -----------------------------------------------------------------


def upload_targets(tab: TabSpec, key: str) -> list[tuple[str, str]]:
    """The (node id, input name) pairs a value key sets: a parameter's targets, or a flat key's one."""
    param = tab.param(key)
    if param is not None:
        return list(param.targets)
    target = flat_target(key)
    return [target] if target else []


def stored_name(local: LocalFile) -> str:
    """A name for an uploaded file made from its content, as ``ComfyClient.upload_image`` names it."""
    return f"{hashlib.sha256(local.data).hexdigest()[:24]}{Path(local.filename).suffix.lower() or '.png'}"


class RemoteBackend:
    """What every remote kind shares: loading tabs without a catalogue, preparing values, finding the
    local files among them, and the health check. A kind implements ``_begin`` and ``_probe``."""

    kind = ""
    poll_interval = 1.0  # seconds between status polls, where a kind polls

    def __init__(self, url: str, *, output_dir: Path | str | None = None) -> None:
        self.url = url.rstrip("/")
        self.output_dir = Path(output_dir) if output_dir else Path.cwd() / "outputs"
        self._tabs: dict[Path, TabSpec] = {}

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> "RemoteBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def load(self, workflow: TabSpec | Path | str) -> TabSpec:
        if isinstance(workflow, TabSpec):
            return workflow
        path = Path(workflow).resolve()
        if path not in self._tabs:
            self._tabs[path] = load_tab(path, None)
        return self._tabs[path]

    def catalog(self) -> Catalog | None:
        return None

    def queue_state(self) -> dict[str, list[Any]]:
        self._probe()
        return {"queue_running": [], "queue_pending": []}

    def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
               timeout: float | None = None, output_dir: Path | None = None, hooks: JobHooks | None = None,
               prompt_id: str | None = None, logs: bool = False) -> JobHandle:
        """Upload the inputs and queue the run (errors raise here, as ``ComfyClient.submit``'s do); the
        returned job follows it in the background. ``logs`` is ignored: no remote kind offers a subscription
        to its server's log (ViewComfy's stream of it arrives as ``Log`` events anyway)."""
        tab = self.load(workflow)
        uploads = local_uploads(tab, values or {})
        prepared = prepare(tab, {**(values or {}), **{k: stored_name(f) for k, f in uploads.items()}})
        prompt_id = prompt_id or str(uuid.uuid4())
        run = self._begin(tab, prepared, uploads, prompt_id)
        job = RemoteJob(self, tab, prepared, run, prompt_id=prompt_id, output_dir=output_dir or self.output_dir,
                        timeout=timeout, uploads=uploads, hooks=hooks)
        job._start()
        return job

    def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
            timeout: float | None = None) -> RunResult:
        return self.submit(workflow, values, timeout=timeout).result()

    def attach(self, workflow: TabSpec | Path | str, prompt_id: str, prepared: PreparedPrompt, *,
               timeout: float | None = None, output_dir: Path | None = None) -> JobHandle:
        raise ServerError(f"A run left going on {self.url} by an earlier app process cannot be followed again "
                          f"on a {KINDS[self.kind].label} backend; run it again.")

    def _begin(self, tab: TabSpec, prepared: PreparedPrompt, uploads: dict[str, LocalFile],
               prompt_id: str) -> RemoteRun:
        raise NotImplementedError

    def _probe(self) -> None:
        """Raise ``ServerUnavailable`` (or ``ServerError``) unless the backend answers."""
        raise NotImplementedError
