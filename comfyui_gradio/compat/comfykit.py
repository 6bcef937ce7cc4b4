"""ComfyKit's API on this package's clients: a ComfyKit program runs by changing its import.

    from comfyui_gradio.compat import ComfyKit          # was: from comfykit import ComfyKit
    kit = ComfyKit(comfyui_url="http://127.0.0.1:8188")
    result = await kit.execute("workflow.json", {"prompt": "a cat"})
    result.status, result.images, result.images_by_var["cover"], result.msg

The seed is comfykit 0.1.12 (``comfykit/executor.py``: ``ComfyKit.__init__``, ``execute``, ``execute_json``;
``comfykit/comfyui/models.py``: ``ExecuteResult``; ``base_executor.py``: ``_map_outputs_by_var`` — an
output is grouped under its ``$output.name`` marker, else under its node id). Local workflows run on
``ComfyClient`` (ComfyUI), or on a Comfy API v2 endpoint when ``comfyui_url`` is ``v2+<address>`` (Comfy Cloud,
a serverless deployment or ``comfy-api-proxy``; ``api_key`` or ``COMFY_API_KEY`` is its key), RunningHub ids on
``RunningHubClient``; each call runs the synchronous client in a thread (``asyncio.to_thread``). Images, videos
and audio are URLs, as in ComfyKit: ComfyUI's ``/view`` address of each file, or RunningHub's file URL; on a
Comfy API v2 endpoint they are the paths of the downloaded files (its content URLs need the key).

Deliberate differences from ComfyKit:
- a workflow may be a local file, a dict, an http(s) URL or a RunningHub id (a numeric string that is not
  the name of an existing file); inputs may be local files as well as URLs;
- an error of this package becomes ``status == "failed"`` with the message in ``msg`` (ComfyKit users check
  ``status``; ComfyKit itself says "error"); a bug still raises;
- every run is bounded: ``timeout`` (600 s) on ComfyUI, ``runninghub_timeout`` (else ``timeout``) on
  RunningHub, where ComfyKit waits forever by default;
- refused RunningHub calls (bad key, no funds, queue full) are not retried, only failed connections;
- ``cookies`` is a ``Cookie`` header value or a JSON object (ComfyKit also fetches them from a URL; not here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import httpx

from ..comfy.backend import Backend
from ..comfy.client import ComfyClient
from ..comfy.results import kind_of
from ..comfy.runninghub import RunningHubClient, TaskOutput, is_runninghub_id
from ..comfy.sources import WorkflowSource, WorkflowSources, url_stem
from ..errors import ComfyGradioError, ConfigError, InputError
from ..forms.loader import load_tab
from ..forms.schema import TabSpec

__all__ = ["ComfyKit", "ExecuteResult"]

_KINDS = {"image": "images", "video": "videos", "audio": "audios"}
V2_PREFIX = "v2+"  # comfyui_url="v2+<address>": a Comfy API v2 endpoint, as a COMFYUI_URL entry names one


@dataclass
class ExecuteResult:
    """ComfyKit's result: ``status`` is "completed" or "failed" (then ``msg`` says why)."""

    status: str
    prompt_id: str | None = None
    duration: float | None = None
    images: list[str] = field(default_factory=list)
    images_by_var: dict[str, list[str]] = field(default_factory=dict)
    audios: list[str] = field(default_factory=list)
    audios_by_var: dict[str, list[str]] = field(default_factory=dict)
    videos: list[str] = field(default_factory=list)
    videos_by_var: dict[str, list[str]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    texts_by_var: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    msg: str | None = None

    def add(self, kind: str, var: str, value: str) -> None:
        """File ``value`` (a URL, or a text's content) under ``kind`` and ``var``."""
        name = _KINDS.get(kind, "texts" if kind == "text" else "")
        if name:
            getattr(self, name).append(value)
            getattr(self, f"{name}_by_var").setdefault(var, []).append(value)


class ComfyKit:
    """ComfyKit's constructor: arguments, then environment (same names as ComfyKit's), then defaults.

    Ours, keyword-only: ``timeout`` (seconds a run may take), ``output_dir`` (where the ComfyUI client keeps
    its copies of the outputs), ``client`` / ``runninghub`` / ``v2`` (clients to use instead of making them).
    """

    def __init__(self, comfyui_url: str | None = None, executor_type: Literal["http", "websocket"] = "http",
                 api_key: str | None = None, cookies: str | None = None, runninghub_url: str | None = None,
                 runninghub_api_key: str | None = None, runninghub_timeout: int | None = None,
                 runninghub_retry_count: int = 3, runninghub_instance_type: str | None = None, *,
                 timeout: float = 600.0, output_dir: Path | None = None, client: ComfyClient | None = None,
                 runninghub: RunningHubClient | None = None, v2: Backend | None = None) -> None:
        self.comfyui_url = comfyui_url or os.environ.get("COMFYUI_BASE_URL", "http://127.0.0.1:8188")
        self.executor_type = (executor_type or os.environ.get("COMFYUI_EXECUTOR_TYPE", "http")).lower()
        self.api_key = api_key or os.environ.get("COMFYUI_API_KEY")
        self.cookies = cookies or os.environ.get("COMFYUI_COOKIES")
        self.runninghub_url = runninghub_url or os.environ.get("RUNNINGHUB_BASE_URL")
        self.runninghub_api_key = runninghub_api_key or os.environ.get("RUNNINGHUB_API_KEY") or self.api_key
        env_timeout = os.environ.get("RUNNINGHUB_TIMEOUT")
        self.runninghub_timeout = runninghub_timeout or (int(env_timeout) if env_timeout else None)
        self.runninghub_retry_count = runninghub_retry_count
        self.runninghub_instance_type = runninghub_instance_type or os.environ.get("RUNNINGHUB_INSTANCE_TYPE")
        self.timeout = timeout
        self.max_input_bytes = 20 * 2**20  # per input downloaded from a URL (the app's MAX_UPLOAD_MB default)
        self.output_dir = output_dir or Path(tempfile.gettempdir()) / "comfyui-gradio-comfykit"
        self._client = client
        self._runninghub = runninghub
        self._v2 = v2
        self._sources = WorkflowSources()  # where RunningHub's workflows are kept to build their forms

    async def __aenter__(self) -> "ComfyKit":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for client in (self._client, self._runninghub, self._v2):
            if client is not None:
                client.close()
        self._client = self._runninghub = self._v2 = None

    async def execute(self, workflow: str | Path, params: dict[str, Any] | None = None) -> ExecuteResult:
        """Run a workflow file, URL or RunningHub id with ComfyKit's simple ``params`` (marker names)."""
        return await asyncio.to_thread(self._execute, workflow, params or {})

    async def execute_json(self, workflow_json: Mapping[str, Any],
                           params: dict[str, Any] | None = None) -> ExecuteResult:
        """Run a workflow given as a dict (API or UI format) on ComfyUI."""
        return await asyncio.to_thread(self._execute, dict(workflow_json), params or {})

    # ---- in the worker thread ---------------------------------------------------------------

    def _execute(self, workflow: WorkflowSource, params: dict[str, Any]) -> ExecuteResult:
        started = time.monotonic()
        try:
            if isinstance(workflow, str) and is_runninghub_id(workflow) and not Path(workflow).exists():
                result = self._on_runninghub(workflow, params)
            elif self.comfyui_url.lower().startswith(V2_PREFIX):
                result = self._on_v2(workflow, params)
            else:
                result = self._on_comfyui(workflow, params)
        except ComfyGradioError as exc:
            return ExecuteResult(status="failed", msg=str(exc), duration=time.monotonic() - started)
        result.duration = time.monotonic() - started
        return result

    def _on_comfyui(self, workflow: WorkflowSource, params: dict[str, Any]) -> ExecuteResult:
        client = self.comfyui()
        tab = client.load(workflow)
        run = client.run(tab, self._inputs_from_urls(tab, params), timeout=self.timeout)
        outputs = (client.history(run.prompt_id) or {}).get("outputs", {})
        result = ExecuteResult(status="completed", prompt_id=run.prompt_id, outputs=outputs)
        names = _output_names(tab)
        for node_id, output in outputs.items():
            var = names.get(node_id, str(node_id))
            for key, items in output.items():
                for item in items if isinstance(items, list) else [items]:
                    if key == "text":
                        result.add("text", var, str(item))
                    elif isinstance(item, dict) and "filename" in item:
                        result.add(kind_of(str(item["filename"]), key), var, _view_url(client.url, item))
        return result

    def _on_v2(self, workflow: WorkflowSource, params: dict[str, Any]) -> ExecuteResult:
        """On a Comfy API v2 endpoint (``comfyui_url="v2+https://cloud.comfy.org"``, ``api_key`` its key): the
        outputs are files downloaded into ``output_dir`` and given as their paths (v2's content URLs need the
        key)."""
        backend = self.v2()
        tab = backend.load(self._sources.path_for(workflow))
        run = backend.run(tab, self._inputs_from_urls(tab, params), timeout=self.timeout)
        result = ExecuteResult(status="completed", prompt_id=run.prompt_id,
                               outputs={f.node_id: {"files": [str(f.path)]} for f in run.outputs})
        for output in run.outputs:
            result.add(output.kind, output.output_name, output.text if output.kind == "text" else str(output.path))
        return result

    def _on_runninghub(self, workflow_id: str, params: dict[str, Any]) -> ExecuteResult:
        rh = self.runninghub_client()
        tab = load_tab(self._sources.store(rh.workflow_json(workflow_id), f"runninghub-{workflow_id}"))
        task_id, _ = rh.submit_tab(workflow_id, tab, self._inputs_from_urls(tab, params))
        files = rh.wait(task_id, timeout=self.runninghub_timeout or self.timeout)
        result = ExecuteResult(status="completed", prompt_id=task_id,
                               outputs={"raw_data": [f.__dict__ for f in files]})
        names = _output_names(tab)
        for index, output in enumerate(files):
            self._add_runninghub_file(result, rh, output, names.get(output.node_id or "", output.node_id or str(index)))
        return result

    def _inputs_from_urls(self, tab: TabSpec, params: dict[str, Any]) -> dict[str, Any]:
        """Upload values given as http(s) URLs downloaded to local files (as ComfyKit downloads them), at most
        ``max_input_bytes`` each; a URL that cannot be had is an ``InputError`` naming the field."""
        fetched = dict(params)
        for key, value in params.items():
            param = tab.param(key)
            if param is None or not param.is_upload or not str(value).startswith(("http://", "https://")):
                continue
            try:
                data = self._sources.download(str(value), self.max_input_bytes)
            except ConfigError as exc:
                raise InputError(param.label, str(exc)) from None
            folder = self.output_dir / "inputs" / hashlib.sha256(data).hexdigest()[:16]
            path = folder / (url_stem(str(value)) or "input")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            fetched[key] = path
        return fetched

    @staticmethod
    def _add_runninghub_file(result: ExecuteResult, rh: RunningHubClient, output: TaskOutput, var: str) -> None:
        """File one output by RunningHub's ``fileType`` (comfykit's ``_process_task_result``); texts are read."""
        kind = kind_of(f"x.{output.file_type.lower()}") if output.file_type else kind_of(output.file_url)
        if kind == "text":
            result.add("text", var, rh.download(output.file_url).decode("utf-8", "replace").strip())
        else:
            result.add(kind, var, output.file_url)

    # ---- clients, made when first needed ------------------------------------------------------

    def comfyui(self) -> ComfyClient:
        if self._client is None:
            self._client = ComfyClient(self.comfyui_url, headers=self._headers(), output_dir=self.output_dir,
                                       tracker="websocket" if self.executor_type == "websocket" else "http")
        return self._client

    def v2(self) -> Backend:
        if self._v2 is None:
            from ..comfy.v2 import V2Backend  # comfy-sdk is imported only when a v2 endpoint is used

            self._v2 = V2Backend(self.comfyui_url[len(V2_PREFIX):], api_key=self.api_key or
                                 os.environ.get("COMFY_API_KEY"), output_dir=self.output_dir)
        return self._v2

    def runninghub_client(self) -> RunningHubClient:
        if self._runninghub is None:
            self._runninghub = RunningHubClient(self.runninghub_api_key, self.runninghub_url,
                                                retry_count=self.runninghub_retry_count,
                                                instance_type=self.runninghub_instance_type)
        return self._runninghub

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self.cookies:
            headers["Cookie"] = _cookie_header(self.cookies)
        return headers


def _output_names(tab: TabSpec) -> dict[str, str]:
    """Node id -> output name, for the outputs the workflow names (``$output.name`` or its schema)."""
    return {output.node_id: output.name for output in tab.outputs}


def _view_url(base: str, item: Mapping[str, Any]) -> str:
    params = {"filename": str(item["filename"]), "subfolder": str(item.get("subfolder", "")),
              "type": str(item.get("type", "output"))}
    return str(httpx.URL(f"{base}/view", params=params))


def _cookie_header(cookies: str) -> str:
    """A ``Cookie`` header from ``"a=1; b=2"`` or a JSON object ``{"a": "1"}``."""
    try:
        parsed = json.loads(cookies)
    except ValueError:
        return cookies
    if isinstance(parsed, dict):
        return "; ".join(f"{key}={value}" for key, value in parsed.items())
    return cookies
