"""Several ComfyUI servers behind one ``submit``: health checks, routing, failover.

Each job goes to the healthy server with the shortest *estimated wait* that has the node
classes and model files the workflow needs. The wait is estimated from what this app knows:
the jobs it has in flight there, each counted as its workflow's typical duration minus the time
it has already run, plus the server's other queued prompts at the typical duration. So a server
stuck on a long job gets no new work while another sits idle, even though both queues hold one.

A server that stops answering takes no new jobs; jobs still waiting in its queue are resubmitted
elsewhere by their ``Job`` (see ``JobHooks``), and a job it was running fails with a clear message
or, if the caller asked for it, is retried once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..forms.catalog import Catalog
from .client import ComfyClient
from .job import Job, JobHooks
from ..errors import ServerError, ServerUnavailable
from ..forms.prepare import prepare
from .results import RunResult
from ..forms.schema import TabSpec

__all__ = ["ComfyPool", "Durations", "ServerStatus"]

log = logging.getLogger(__name__)

DEFAULT_DURATION = 5.0  # seconds assumed for a workflow never run before


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


@dataclass
class _Server:
    client: ComfyClient
    healthy: bool = False
    error: str = "not checked yet"
    failure: ServerError | None = None  # why the last check failed
    queue_remaining: int = 0
    catalog: Catalog | None = None
    jobs: dict[str, tuple[str, float]] = field(default_factory=dict)  # prompt_id -> (workflow, submitted at)


class ComfyPool:
    """A set of ComfyUI servers used as one. ``submit``/``run`` mirror ``ComfyClient``'s."""

    def __init__(self, clients: list[ComfyClient], *, health_interval: float = 5.0,
                 durations: Durations | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` gives the seconds that routing compares (``time.monotonic``; tests pass their own)."""
        if not clients:
            raise ValueError("a pool needs at least one server")
        self._servers = [_Server(c) for c in clients]
        self.durations = durations or Durations()
        self.health_interval = health_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def clients(self) -> list[ComfyClient]:
        return [s.client for s in self._servers]

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> "ComfyPool":
        """Check every server now, then keep checking in the background."""
        self.check_all()
        self._thread = threading.Thread(target=self._watch, name="comfyui-health", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.client.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.health_interval):
            self.check_all()

    def check_all(self) -> None:
        for server in self._servers:
            self._check(server)

    def _check(self, server: _Server) -> bool:
        try:
            state = server.client.queue_state()
            if server.catalog is None or not server.healthy:
                server.catalog = server.client.catalog()
        except ServerError as exc:
            if server.healthy:
                log.warning("ComfyUI at %s is down: %s", server.client.url, exc)
            server.healthy, server.error, server.failure = False, str(exc), exc
            return False
        if not server.healthy:
            log.info("ComfyUI at %s is up", server.client.url)
        server.healthy, server.error = True, ""
        server.queue_remaining = len(state.get("queue_running", [])) + len(state.get("queue_pending", []))
        return True

    def catalog(self) -> Catalog | None:
        """The node catalogue of the first healthy server (forms are built from it)."""
        return next((s.catalog for s in self._servers if s.healthy and s.catalog), None)

    def statuses(self) -> list[ServerStatus]:
        with self._lock:
            return [ServerStatus(s.client.url, s.healthy, s.error, s.queue_remaining, len(s.jobs))
                    for s in self._servers]

    # ---- routing --------------------------------------------------------------------------

    def _estimated_wait(self, server: _Server, now: float | None = None) -> float:
        """Seconds before a new job would start on ``server`` (see the module docstring)."""
        now = self._clock() if now is None else now
        wait = 0.0
        for workflow, since in server.jobs.values():
            typical = self.durations.typical(workflow) or DEFAULT_DURATION
            wait += max(typical - (now - since), 0.1 * typical)
        others = max(server.queue_remaining - len(server.jobs), 0)
        return wait + others * DEFAULT_DURATION

    def pick(self, tab: TabSpec, values: Mapping[str, Any] | None = None, exclude: tuple[str, ...] = (),
             reserve: str | None = None) -> ComfyClient:
        """The best server for a run of ``tab``; raise if none is up.

        With ``reserve`` (a prompt id), the run is counted on the chosen server in the same locked
        step, so callers picking at the same moment see it and spread out.
        """
        candidates = [s for s in self._servers if s.client.url not in exclude]
        if not any(s.healthy for s in candidates):
            for server in candidates:  # maybe one came back since the last check
                self._check(server)
        healthy = [s for s in candidates if s.healthy]
        if not healthy:
            raise self._all_down(candidates)
        prompt = _prompt_for_check(tab, values)
        # Servers lacking a node or model are skipped; if all lack something, the server's own
        # validation answers, which names the form field.
        able = [s for s in healthy if not s.catalog or not missing_requirements(prompt, s.catalog)] or healthy
        with self._lock:
            best = min(able, key=self._estimated_wait)
            if reserve:
                best.jobs[reserve] = (tab.name, self._clock())
            return best.client

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
               timeout: float | None = None, output_dir: Path | None = None, retry: bool = False) -> Job:
        """Send the run to the best server; it moves to another one if that server is lost.

        ``workflow`` is a TabSpec or a workflow path (read with a healthy server's node list).
        """
        tab = workflow if isinstance(workflow, TabSpec) else self._loader().load(workflow)
        prompt_id = str(uuid.uuid4())
        client = self.pick(tab, values, reserve=prompt_id)
        hooks = JobHooks(failover=self._failover, finished=self._finished, retry_running=retry)
        try:
            return client.submit(tab, values, timeout=timeout, output_dir=output_dir, hooks=hooks,
                                 prompt_id=prompt_id)
        except BaseException:
            self._release(prompt_id)
            raise

    def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None, *,
            timeout: float | None = None) -> RunResult:
        return self.submit(workflow, values, timeout=timeout).result()

    def _loader(self) -> ComfyClient:
        return next((s.client for s in self._servers if s.healthy), self._servers[0].client)

    def _server(self, client: ComfyClient) -> _Server:
        return next(s for s in self._servers if s.client is client)

    def _release(self, prompt_id: str) -> None:
        with self._lock:
            for server in self._servers:
                server.jobs.pop(prompt_id, None)

    def _failover(self, job: Job) -> ComfyClient | None:
        """Another server for ``job`` (its place moves there), or None: it then waits for its own
        server to answer again and keeps its place there."""
        lost = self._server(job.client)
        lost.healthy, lost.error = False, "stopped answering"
        with self._lock:
            place = lost.jobs.pop(job.prompt_id, None)
        try:
            return self.pick(job.tab, job.prepared.values, exclude=(lost.client.url,), reserve=job.prompt_id)
        except ServerError:
            if place is not None:
                with self._lock:
                    lost.jobs[job.prompt_id] = place
            return None

    def _finished(self, job: Job, ok: bool) -> None:
        self._release(job.prompt_id)
        if ok and job.started_at is not None:
            self.durations.record(job.tab.name, time.monotonic() - job.started_at)  # the job's clock


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
