"""Several backends behind one ``submit``: health checks, routing, failover.

The backends may be of any kind (``backend.Backend``: ComfyUI servers, Comfy API v2 endpoints,
ViewComfy deployments, ...). A backend without a node catalogue (a cloud) is taken to have every
node and model; a job moves on failover only to a backend of its own kind (a ComfyUI job is resent
by its ``Job`` over ComfyUI's protocol).

Each job goes to the healthy server with the shortest *estimated wait* that has the node
classes and model files the workflow needs. The wait is the sum over what the server's queue holds
now (``queue_watch``: the status broadcasts on each server's one socket, ``GET /queue`` read after each
change, or at pick time when there is no socket):

- this app's own jobs: the workflow's typical duration (``Durations``), minus the time it has run
  if it is running (never less than a tenth of it);
- someone else's running prompt: its age is known (from when it was first seen running) but not
  its length, so it counts ``DEFAULT_DURATION``, or as long again as it has run once it is older
  than that (a job that has run long is probably a long one);
- someone else's waiting prompt: ``DEFAULT_DURATION``.

So a server busy with someone else's long job gets no new work while another sits idle. Why a
socket and ``/queue`` both: reading ``/queue`` at every pick alone would cost a request per server
per job and still not know when someone else's prompt started; the socket alone carries counts, not
prompts. A pool of one server does not read at pick time: there is nothing to compare.

Other kinds of backend (``kind`` other than ``"comfyui"``: Comfy API v2, RunningHub, ViewComfy)
are remote and assumed to have every node and model, at a price: a job goes to one only when no
local server can take it (all down, or none has what it needs) or, with ``cloud_after``, when the
best local server's estimated wait is longer than that many seconds. Their queues are not watched:
their wait is this app's own jobs there.

A server that stops answering takes no new jobs; jobs still waiting in its queue are resubmitted
elsewhere by their ``Job`` (see ``JobHooks``), and a job it was running fails with a clear message
or, if the caller asked for it, is retried once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..forms.catalog import Catalog
from .backend import KINDS, Backend, JobHandle
from .batch import Batch, BatchItem
from .job import Job, JobHooks
from .queue_watch import QueueView, QueueWatch
from ..errors import ServerError, ServerUnavailable
from ..forms.prepare import prepare
from .results import RunResult
from ..forms.schema import TabSpec

__all__ = ["ComfyPool", "Durations", "ServerStatus"]

log = logging.getLogger(__name__)

DEFAULT_DURATION = 5.0  # seconds assumed for a workflow never run before, and for someone else's prompt
LOCAL_KIND = "comfyui"  # a backend of any other kind is remote (see the module docstring)


class Durations:
    """Typical run time per workflow (an exponential moving average of finished runs)."""

    def __init__(self, weight: float = 0.3) -> None:
        self._seconds: dict[str, float] = {}
        self._weight = weight
        self._lock = threading.Lock()

    def record(self, workflow: str, seconds: float) -> None:
        with self._lock:
            old = self._seconds.get(workflow)
            self._seconds[workflow] = seconds if old is None else old + self._weight * (seconds - old)

    def typical(self, workflow: str) -> float | None:
        with self._lock:
            return self._seconds.get(workflow)

    def remaining(self, workflow: str, running_for: float) -> float | None:
        """Seconds a run of ``workflow`` that has run ``running_for`` s probably still needs."""
        typical = self.typical(workflow)
        return None if typical is None else max(typical - running_for, 0.0)


@dataclass
class ServerStatus:
    """What the pool knows of one server; shown on the page."""

    url: str
    healthy: bool = False
    error: str = ""
    queue_remaining: int = 0
    in_flight: int = 0
    kind: str = "comfyui"  # backend.KINDS


@dataclass
class _Server:
    client: Backend
    healthy: bool = False
    error: str = "not checked yet"
    failure: ServerError | None = None  # why the last check failed
    queue_remaining: int = 0
    catalog: Catalog | None = None
    jobs: dict[str, tuple[str, float]] = field(default_factory=dict)  # prompt_id -> (workflow, submitted at)
    watch: QueueWatch | None = None  # ComfyUI servers only

    @property
    def remote(self) -> bool:
        return getattr(self.client, "kind", LOCAL_KIND) != LOCAL_KIND


class ComfyPool:
    """A set of backends used as one. ``submit``/``run`` mirror ``ComfyClient``'s."""

    def __init__(self, clients: list[Backend], *, health_interval: float = 5.0,
                 durations: Durations | None = None, clock: Callable[[], float] = time.monotonic,
                 cloud_after: float | None = None, queue_max_age: float = 0.5) -> None:
        """``clock`` gives the seconds that routing compares (``time.monotonic``; tests pass their own).

        ``cloud_after``: seconds of estimated local wait beyond which a remote backend is used (None:
        only when no local server can take the job). ``queue_max_age``: seconds a read of ``/queue``
        is trusted for routing when a server's status socket is not open.
        """
        if not clients:
            raise ValueError("a pool needs at least one server")
        self._servers = [_Server(c) for c in clients]
        for server in self._servers:
            if not server.remote:
                server.watch = QueueWatch(server.client, clock, max_age=queue_max_age)
        self.cloud_after = cloud_after
        self._listen = False  # status sockets are opened by start()
        self.durations = durations or Durations()
        self.health_interval = health_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def clients(self) -> list[Backend]:
        return [s.client for s in self._servers]

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> "ComfyPool":
        """Check every server now and open its status socket, then keep checking in the background."""
        self._listen = True
        self.check_all()
        self._thread = threading.Thread(target=self._watch, name="comfyui-health", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)  # a check under way ends before its client is closed
        for server in self._servers:
            if server.watch:
                server.watch.close()
            server.client.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.health_interval):
            try:
                self.check_all()
            except Exception:  # a bug in one check must not end the checks for good
                log.exception("A health check of the pool failed")

    def check_all(self) -> None:
        for server in self._servers:
            self._check(server)

    def _check(self, server: _Server) -> bool:
        try:
            remaining = self._read_queue(server)
            if server.catalog is None or not server.healthy:
                server.catalog = server.client.catalog()
        except ServerError as exc:
            if server.healthy:
                log.warning("%s at %s is down: %s", _label(server), server.client.url, exc)
            server.healthy, server.error, server.failure = False, str(exc), exc
            return False
        if not server.healthy:
            log.info("%s at %s is up", _label(server), server.client.url)
        server.healthy, server.error = True, ""
        server.queue_remaining = remaining
        if self._listen and server.watch and not server.watch.listening:
            server.watch.listen()  # reopened here after a drop, at the pace of the health checks
        return True

    def _read_queue(self, server: _Server) -> int:
        """Read the server's queue now; the number of prompts on it."""
        if server.watch:
            return server.watch.refresh().remaining
        state = server.client.queue_state()
        return len(state.get("queue_running", [])) + len(state.get("queue_pending", []))

    def catalog(self) -> Catalog | None:
        """The node catalogue of the first healthy server (forms are built from it)."""
        return next((s.catalog for s in self._servers if s.healthy and s.catalog), None)

    def statuses(self) -> list[ServerStatus]:
        with self._lock:
            return [ServerStatus(s.client.url, s.healthy, s.error, s.queue_remaining, len(s.jobs), s.client.kind)
                    for s in self._servers]

    # ---- routing --------------------------------------------------------------------------

    def _estimated_wait(self, server: _Server, now: float | None = None) -> float:
        """Seconds before a new job would start on ``server`` (see the module docstring)."""
        now = self._clock() if now is None else now
        view = server.watch.view if server.watch else QueueView()
        wait = sum(self._own_remaining(workflow, prompt_id, reserved_at, view, now)
                   for prompt_id, (workflow, reserved_at) in server.jobs.items())
        for prompt_id in view.running:
            if prompt_id not in server.jobs:
                wait += max(DEFAULT_DURATION, now - view.running_since[prompt_id])
        return wait + DEFAULT_DURATION * sum(1 for p in view.pending if p not in server.jobs)

    def _own_remaining(self, workflow: str, prompt_id: str, reserved_at: float, view: QueueView,
                       now: float) -> float:
        """What is left of one of this app's jobs: all of it while it waits; once it runs, its typical
        duration minus the time it has run. A job the last read did not show (sent after it, or
        finished and being collected) is counted from when it was sent."""
        typical = self.durations.typical(workflow) or DEFAULT_DURATION
        if prompt_id in view.pending:
            return typical
        since = view.running_since.get(prompt_id, reserved_at)
        return max(typical - (now - since), 0.1 * typical)

    def pick(self, tab: TabSpec, values: Mapping[str, Any] | None = None, exclude: tuple[str, ...] = (),
             reserve: str | None = None, kind: str | None = None) -> Backend:
        """The best server for a run of ``tab`` (of ``kind`` only, if given); raise if none is up.

        With ``reserve`` (a prompt id), the run is counted on the chosen server in the same locked
        step, so callers picking at the same moment see it and spread out.
        """
        candidates = [s for s in self._servers if s.client.url not in exclude and kind in (None, s.client.kind)]
        if not any(s.healthy for s in candidates):
            for server in candidates:  # maybe one came back since the last check
                self._check(server)
        healthy = [s for s in candidates if s.healthy]
        if len(healthy) > 1:  # with one, there is nothing to compare (and no request to spend)
            healthy = [s for s in healthy if self._queue_known(s)]
        if not healthy:
            raise self._all_down(candidates)
        prompt = _prompt_for_check(tab, values)
        # Servers lacking a node or model are skipped; if all lack something (and no remote backend
        # may take it), the server's own validation answers, which names the form field.
        able = [s for s in healthy if s.remote or not s.catalog or not missing_requirements(prompt, s.catalog)]
        with self._lock:
            best = self._choose(able or healthy)
            if reserve:
                best.jobs[reserve] = (tab.name, self._clock())
            return best.client

    def _queue_known(self, server: _Server) -> bool:
        """Make the server's queue picture fresh (see ``queue_watch``); False if it cannot be reached.

        Any other failed read (slow, a 5xx) leaves the last picture in use: one bad answer must not
        turn away a job; the health check decides whether the server is down.
        """
        if server.watch is None:
            return True
        try:
            server.queue_remaining = server.watch.current().remaining
        except ServerUnavailable as exc:
            log.warning("ComfyUI at %s is down: %s", server.client.url, exc)
            server.healthy, server.error, server.failure = False, str(exc), exc
            return False
        except ServerError as exc:
            log.warning("Routing on the last known queue of %s: %s", server.client.url, exc)
        return True

    def _choose(self, servers: list[_Server]) -> _Server:
        """Local servers first (shortest estimated wait); a remote backend when there is no local one,
        or when every local wait is longer than ``cloud_after``."""
        now = self._clock()
        local = [s for s in servers if not s.remote]
        remote = [s for s in servers if s.remote]
        if local:
            best = min(local, key=lambda s: self._estimated_wait(s, now))
            if not remote or self.cloud_after is None or self._estimated_wait(best, now) <= self.cloud_after:
                return best
        return min(remote, key=lambda s: self._estimated_wait(s, now))

    def _all_down(self, servers: list[_Server]) -> ServerUnavailable:
        if len(servers) == 1:
            failure = servers[0].failure
            if isinstance(failure, ServerUnavailable):  # it already says where and how to fix it
                return failure
            return ServerUnavailable(servers[0].client.url, servers[0].error or "down")
        urls = ", ".join(s.client.url for s in servers)
        return ServerUnavailable(urls, "no server answers")

    # ---- running --------------------------------------------------------------------------

    def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
               timeout: float | None = None, output_dir: Path | None = None, retry: bool = False,
               logs: bool = False) -> JobHandle:
        """Send the run to the best server; it moves to another one if that server is lost.

        ``workflow`` is a TabSpec or a workflow path (read with a healthy server's node list).
        """
        tab = workflow if isinstance(workflow, TabSpec) else self._loader().load(workflow)
        prompt_id = str(uuid.uuid4())
        client = self.pick(tab, values, reserve=prompt_id)
        hooks = JobHooks(failover=self._failover, finished=self._finished, retry_running=retry)
        try:
            return client.submit(tab, values, timeout=timeout, output_dir=output_dir, hooks=hooks,
                                 prompt_id=prompt_id, logs=logs)
        except BaseException:
            self._release(prompt_id)
            raise

    def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
            timeout: float | None = None) -> RunResult:
        return self.submit(workflow, values, timeout=timeout).result()

    def _loader(self) -> Backend:
        return next((s.client for s in self._servers if s.healthy), self._servers[0].client)

    def _server(self, client: Backend) -> _Server:
        return next(s for s in self._servers if s.client is client)

    def _release(self, prompt_id: str) -> None:
        with self._lock:
            for server in self._servers:
                server.jobs.pop(prompt_id, None)

    def _failover(self, job: Job) -> Backend | None:
        """Another server for ``job`` (its place moves there), or None: it then waits for its own
        server to answer again and keeps its place there."""
        lost = self._server(job.client)
        lost.healthy, lost.error = False, "stopped answering"
        with self._lock:
            place = lost.jobs.pop(job.prompt_id, None)
        try:
            return self.pick(job.tab, job.prepared.values, exclude=(lost.client.url,), reserve=job.prompt_id,
                             kind=lost.client.kind)
        except ServerError:
            if place is not None:
                with self._lock:
                    lost.jobs[job.prompt_id] = place
            return None

    def _finished(self, job: Job, ok: bool) -> None:
        self._release(job.prompt_id)
        if ok and job.started_at is not None:
            self.durations.record(job.tab.name, time.monotonic() - job.started_at)  # the job's clock

    # ---- batches (see batch.py) -------------------------------------------------------------

    def load(self, workflow: TabSpec | Path | str) -> TabSpec:
        """A TabSpec from a workflow path, read with a healthy server's node list (or the TabSpec given)."""
        return workflow if isinstance(workflow, TabSpec) else self._loader().load(workflow)

    def map(self, workflow: TabSpec | Path | str, values: Sequence[Mapping[str, Any]], *,
            concurrency: int | None = None, timeout: float | None = None, retry: bool = False) -> list[BatchItem]:
        """``ComfyClient.map`` over the pool: each job goes to the best server when it is sent, at most
        ``concurrency`` in flight in all (default: two per server)."""
        bound = 2 * len(self._servers) if concurrency is None else concurrency
        submit = functools.partial(self.submit, self.load(workflow), timeout=timeout, retry=retry)
        return Batch(submit, values, bound).run()


def _label(server: _Server) -> str:
    return KINDS[server.client.kind].label if server.client.kind in KINDS else server.client.kind


def _prompt_for_check(tab: TabSpec, values: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The prompt as it will be sent; uploads get a stand-in name (theirs is not known yet, and
    upload inputs are not checked against the server's lists)."""
    plain = {k: "upload" if tab.param(k) and tab.param(k).is_upload else v for k, v in (values or {}).items()}
    return prepare(tab, plain).prompt


def missing_requirements(prompt: Mapping[str, Mapping[str, Any]], catalog: Catalog) -> list[str]:
    """Node classes and choice values (model files) the prompt uses that the server lacks."""
    missing: list[str] = []
    for node in prompt.values():
        class_type = node["class_type"]
        if not catalog.has_class(class_type):
            missing.append(f"node {class_type}")
            continue
        for name, value in node.get("inputs", {}).items():
            spec = catalog.input(class_type, name)
            if spec and spec.type == "COMBO" and not spec.is_upload and spec.choices and isinstance(value, str) \
                    and value not in spec.choices:
                missing.append(f"{value}")
    return sorted(set(missing))
