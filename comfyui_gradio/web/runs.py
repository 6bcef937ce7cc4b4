"""The runs of each person, kept so a reload or a dropped connection loses nothing.

A browser is known by an owner id kept in its local storage (``gr.BrowserState``); API callers
by their Gradio session. Every run gets a folder ``OUTPUT_DIR/<owner>/<prompt id>/`` with its
outputs, copies of its input images, and ``record.json``: the final prompt sent, the seeds, the
input files' hashes, the workflow and schema versions, the server and the timings. Records are
read back at start-up, so recent runs survive a restart of the app too.

A run the app was following when it stopped (a redeploy, a sleeping Space, SIGTERM or SIGKILL) is
left "running" on disk with its prompt id and server; ``RunBook.reattach`` follows it again on the
next start and collects its outputs from that server, or marks it failed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..comfy.client import ComfyClient
from ..errors import ComfyGradioError, JobCancelled
from ..comfy.job import Job
from ..forms.prepare import PreparedPrompt
from ..forms.schema import TabSpec

__all__ = ["RunBook", "RunRecord", "RecordStatus", "input_copies", "owner_folder"]

log = logging.getLogger(__name__)

RECORD = "record.json"
SERVER_GONE = ("This run was on ComfyUI at {server}, which is no longer one of the app's servers (COMFYUI_URL); "
               "its results cannot be collected. Run it again.")
TAB_GONE = "The workflow {tab!r} is no longer in the app's workflows folder; this run's results cannot be collected."


class RecordStatus(str, Enum):
    """Where a run is; the value is what ``record.json`` holds."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def owner_folder(owner: str) -> str:
    """A folder name for an owner id (letters and digits only, never a path)."""
    return "".join(c for c in owner if c.isalnum())[:40] or "anonymous"


@dataclass
class RunRecord:
    run_id: str
    owner: str
    tab: str
    status: RecordStatus
    form: dict[str, Any]  # the form as filled in, by parameter name (images: local copies)
    started: float  # epoch seconds
    finished: float | None = None
    seeds: dict[str, int] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)  # {"path", "kind", "output_name"}
    error: str = ""
    record: dict[str, Any] = field(default_factory=dict)  # what was sent, for reproducing the run

    def __post_init__(self) -> None:
        self.status = RecordStatus(self.status)  # a record read back from JSON holds the value

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def label(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.started))
        seeds = ", ".join(f"seed {v}" for v in self.seeds.values())
        prompt = next((str(v) for k, v in self.form.items() if "prompt" in k and isinstance(v, str)), "")
        text = f" · “{prompt[:40]}”" if prompt else ""
        return f"{when} · {self.status.value}{' · ' + seeds if seeds else ''}{text}"


class RunBook:
    """Recent runs by owner, in memory and on disk. Thread-safe.

    After ``suspend`` (the process is ending) no record is completed any more: the runs still going
    stay "running" on disk for ``reattach`` in the next process.
    """

    def __init__(self, root: Path, *, keep: int = 20) -> None:
        self.root = root
        self.keep = keep
        self._runs: dict[str, list[RunRecord]] = {}
        self._lock = threading.Lock()
        self._following: dict[str, tuple[RunRecord, Job]] = {}  # run id -> the run and its job, while going
        self._writing = threading.RLock()  # one record write at a time (re-entrant: a signal handler takes it)
        self._suspended = False

    def folder(self, owner: str, run_id: str) -> Path:
        return self.root / owner_folder(owner) / run_id

    def load(self) -> "RunBook":
        """Read the records left by earlier app processes (runs left "running" stay so, for ``reattach``)."""
        for path in sorted(self.root.glob(f"*/*/{RECORD}"), key=lambda p: p.stat().st_mtime):
            try:
                record = RunRecord(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("Ignoring unreadable run record %s: %s", path, exc)
                continue
            self._add(record)
        return self

    def start(self, owner: str, tab: TabSpec, form: dict[str, Any], job: Job) -> RunRecord:
        """Record a submitted job; the record is completed when the job ends."""
        record = RunRecord(run_id=job.prompt_id, owner=owner, tab=tab.name, status=RecordStatus.RUNNING,
                           form=_jsonable(form), started=time.time(), seeds=dict(job.prepared.seeds),
                           record=_provenance(tab, job))
        with self._lock:
            self._add(record)
        with self._writing:
            self._write(record)
        self.follow(record, job)
        return record

    def follow(self, record: RunRecord, job: Job) -> None:
        """Complete ``record`` when ``job`` ends."""
        with self._lock:
            self._following[record.run_id] = (record, job)
        job.add_done_callback(lambda j: self._finish(record, j))

    def reattach(self, servers: Sequence[ComfyClient], tabs: Mapping[str, TabSpec], *,
                 timeout: float | None = None, on_job: Callable[[RunRecord, Job], None] | None = None) -> None:
        """Follow every run an earlier process left "running" on the server that ran it (``ComfyClient.attach``):
        its outputs are collected when it ends. A run whose server or tab is gone, or that the server no
        longer knows, is marked failed with the reason. ``on_job`` is told of each job followed again (the
        app makes it its owner's, for Cancel). Blocks while asking the servers: call it in a thread."""
        by_url = {server.url: server for server in servers}
        for record in self.unfinished():
            server, tab = by_url.get(str(record.record.get("server"))), tabs.get(record.tab)
            if server is None:
                self.fail(record, SERVER_GONE.format(server=record.record.get("server")))
            elif tab is None:
                self.fail(record, TAB_GONE.format(tab=record.tab))
            else:
                job = self._attach(record, server, tab, timeout)
                if job is not None and on_job is not None:
                    on_job(record, job)

    def _attach(self, record: RunRecord, server: ComfyClient, tab: TabSpec, timeout: float | None) -> Job | None:
        try:
            job = server.attach(tab, record.run_id, _prepared(record), timeout=timeout,
                                output_dir=self.root / owner_folder(record.owner))
        except ComfyGradioError as exc:
            self.fail(record, str(exc))
            return None
        log.info("Following run %s again on %s", record.run_id, server.url)
        self.follow(record, job)
        return job

    def unfinished(self) -> list[RunRecord]:
        """The runs marked "running" that no job of this process follows (left by an earlier process)."""
        with self._lock:
            return [r for runs in self._runs.values() for r in runs
                    if r.status is RecordStatus.RUNNING and r.run_id not in self._following]

    def fail(self, record: RunRecord, reason: str) -> None:
        with self._writing:
            if self._suspended:
                return
            record.error, record.finished = reason, time.time()
            self._write(record, RecordStatus.FAILED)

    def suspend(self) -> int:
        """Write every run still going as it stands ("running", on the server it is on now), then stop
        completing records for good: the process is ending. Returns how many runs were going."""
        with self._writing:
            if self._suspended:
                return 0
            self._suspended = True  # a job that ends from now on leaves its record as it is
            with self._lock:
                going = list(self._following.values())
            for record, job in going:
                record.record["server"] = job.client.url
                self._write(record)
        return len(going)

    def recent(self, owner: str, tab: str | None = None) -> list[RunRecord]:
        """The owner's runs, newest first."""
        with self._lock:
            runs = list(self._runs.get(owner_folder(owner), []))
        return [r for r in reversed(runs) if tab is None or r.tab == tab]

    def get(self, owner: str, run_id: str) -> RunRecord | None:
        return next((r for r in self.recent(owner) if r.run_id == run_id), None)

    def _add(self, record: RunRecord) -> None:
        runs = self._runs.setdefault(owner_folder(record.owner), [])
        runs.append(record)
        del runs[: max(len(runs) - self.keep, 0)]

    def _finish(self, record: RunRecord, job: Job) -> None:
        with self._writing:
            if self._suspended:
                return
            self._write(record, self._complete(record, job))
            with self._lock:
                self._following.pop(record.run_id, None)

    def _complete(self, record: RunRecord, job: Job) -> RecordStatus:
        """Fill in how ``record``'s run ended, all but the status, which is returned: a reader sees it
        change only once ``record.json`` says it."""
        record.finished = time.time()
        record.record["server"] = job.client.url
        error = job.error
        if error is None:
            result = job.result(0)
            record.outputs = [{"path": str(o.path), "kind": o.kind, "output_name": o.output_name}
                              for o in result.outputs]
            record.record.update(server=result.server, queued_s=round(result.queued_for, 3),
                                 total_s=round(result.duration, 3))
            return RecordStatus.DONE
        record.error = str(error)
        return RecordStatus.CANCELLED if isinstance(error, JobCancelled) else RecordStatus.FAILED

    def _write(self, record: RunRecord, status: RecordStatus | None = None) -> None:
        """Write ``record.json`` whole or not at all (a process killed mid-write leaves the old one), then
        set ``record.status`` to ``status`` if one is given."""
        folder = self.folder(record.owner, record.run_id)
        temporary = folder / f"{RECORD}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps({**asdict(record), "status": status or record.status}, indent=2, default=str)
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, folder / RECORD)
        except OSError as exc:
            log.warning("Could not write the run record in %s: %s", folder, exc)
        if status is not None:
            record.status = status


def input_copies(job: Job) -> dict[str, str]:
    """A copy of each of the job's input files, for "Run again", by parameter: one per content in the
    person's ``inputs/`` folder, so the runs of one click (or a reused picture) share it."""
    folder = job.job_dir.parent / "inputs"
    paths = {}
    for key, local in job.uploads.items():
        path = folder / f"{hashlib.sha256(local.data).hexdigest()[:24]}{Path(local.filename).suffix or '.png'}"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(local.data)
        paths[key] = str(path)
    return paths


def _provenance(tab: TabSpec, job: Job) -> dict[str, Any]:
    return {
        "prompt": job.prepared.prompt,
        "seeds": dict(job.prepared.seeds),
        "values": dict(job.prepared.values),
        "inputs": {key: hashlib.sha256(f.data).hexdigest() for key, f in job.uploads.items()},
        "workflow": tab.workflow.path.name,
        **tab.versions,  # of the files the tab was built from, not as they may be on disk now
        "server": job.client.url,
    }


def _prepared(record: RunRecord) -> PreparedPrompt:
    """What was sent for ``record``'s run, as far as collecting its outputs needs it."""
    return PreparedPrompt(record.record.get("prompt") or {}, record.record.get("values") or {}, dict(record.seeds))


def _jsonable(form: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in form.items()}
