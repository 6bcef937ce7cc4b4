"""RunningHub as a backend of the pool: a COMFYUI_URL entry ``runninghub+https://www.runninghub.ai``.

The wire calls are ``runninghub.RunningHubClient``'s; this module only maps a tab's run onto them (it is apart
from the wire client because ``backend`` imports the ComfyUI client, which uses the wire client for RunningHub
workflow ids).
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from ..errors import ConfigError, ExecutionFailed, Problem
from ..forms.prepare import PreparedPrompt, prepare
from ..forms.schema import TabSpec
from .backend import RemoteBackend
from .collect import local_path, node_title
from .events import Started
from .results import OutputFile, kind_of
from .runninghub import RunningHubClient, TaskOutput, node_info_list

__all__ = ["NO_WORKFLOW_ID", "RunningHubBackend", "workflow_id_of"]

log = logging.getLogger(__name__)


NO_WORKFLOW_ID = ("RunningHub runs a workflow by its id: name the workflow file runninghub-<id>.json (as a "
                  "RunningHub id loaded through WORKFLOW_URLS or ComfyClient is named), or set "
                  "RUNNINGHUB_WORKFLOW_ID to a workflow of your account, which this one then replaces for the run")
_STEM_ID = re.compile(r"^runninghub-(?P<id>\d+)(?:-\d+)?$")


def workflow_id_of(tab: TabSpec) -> str | None:
    """The RunningHub id a tab was made from (its file is ``runninghub-<id>.json``), if any."""
    match = _STEM_ID.match(tab.workflow.path.stem) if tab.workflow.path else None
    return match["id"] if match else None


class RunningHubBackend(RemoteBackend):
    """RunningHub as a backend of the pool. A tab made from a RunningHub workflow id runs as that workflow
    with the form's values as its ``nodeInfoList``; any other tab runs as its own prompt (RunningHub's
    ``workflow`` field) in place of ``workflow_id`` (``RUNNINGHUB_WORKFLOW_ID``). Uploads go through
    RunningHub's upload call, the task is polled, and its files are downloaded into the job's folder.

    RunningHub's task API has no documented cancel: a cancelled or timed-out job ends here at once, and the
    task runs to its end on RunningHub (and is billed there).
    """

    kind = "runninghub"

    def __init__(self, url: str, *, api_key: str, workflow_id: str | None = None,
                 output_dir: Path | str | None = None, http: httpx.Client | None = None,
                 poll_interval: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(url, output_dir=output_dir)
        self.rh = RunningHubClient(api_key, url, http=http, poll_interval=poll_interval, sleep=sleep)
        self.workflow_id = workflow_id or os.environ.get("RUNNINGHUB_WORKFLOW_ID") or None

    def close(self) -> None:
        self.rh.close()

    def _probe(self) -> None:
        """RunningHub documents no health call: taken as up; a run that cannot reach it fails with
        ``ServerUnavailable``."""

    def _begin(self, tab: TabSpec, prepared: PreparedPrompt, uploads: Mapping[str, Any],
               prompt_id: str) -> "_RunningHubRun":
        stored = {key: self.rh.upload(local.data, local.filename, field=local.label)
                  for key, local in uploads.items()}
        if stored:  # the names RunningHub gave the files, where the prompt has our own
            prepared = prepare(tab, {**prepared.values, **stored})
        own_id = workflow_id_of(tab)
        if own_id is not None:
            task = self.rh.submit(own_id, node_info_list(tab.workflow.nodes, prepared.prompt))
        elif self.workflow_id is not None:
            task = self.rh.submit(self.workflow_id, workflow=prepared.prompt)
        else:
            raise ConfigError([Problem("settings", "RUNNINGHUB_WORKFLOW_ID", NO_WORKFLOW_ID)])
        log.info("Run %s is RunningHub task %s", prompt_id, task)
        return _RunningHubRun(self, tab, task)


class _RunningHubRun:
    def __init__(self, backend: RunningHubBackend, tab: TabSpec, task: str) -> None:
        self.backend, self.tab, self.task = backend, tab, task
        self._stop = False

    def cancel(self) -> None:
        self._stop = True  # no cancel call exists: stop polling (see RunningHubBackend)

    def follow(self, emit: Callable[[Any], None], job_dir: Path) -> list[OutputFile]:
        rh, started = self.backend.rh, False
        while not self._stop:
            state, msg = rh.status_and_reason(self.task)
            if state == "RUNNING" and not started:
                started = True
                emit(Started())
            if state == "SUCCESS":
                return self._save(rh.outputs(self.task) or [], job_dir)
            if state == "FAILED":
                raise ExecutionFailed("", f"RunningHub task {self.task}", msg or "RunningHub gave no reason")
            rh.sleep(rh.poll_interval)
        return []

    def _save(self, outputs: list[TaskOutput], job_dir: Path) -> list[OutputFile]:
        """As ``collect.collect_outputs`` keeps a ComfyUI run's: the outputs the tab names (all if it names
        none; a file RunningHub gives no node is kept), named by the schema, else by the node's title."""
        wanted = {o.node_id: o.name for o in self.tab.outputs}
        files = []
        for output in outputs:
            if wanted and output.node_id is not None and output.node_id not in wanted:
                continue
            path = local_path(job_dir, output.node_id or "output", Path(httpx.URL(output.file_url).path).name)
            path.write_bytes(self.backend.rh.download(output.file_url))
            node = output.node_id or ""
            name = wanted.get(node) or (node_title(self.tab.workflow.nodes, node) if node else "output")
            files.append(OutputFile(path, kind_of(path.name), output.node_id or "", name))
        return files
