"""ViewComfy's Python API (its ``api.py``) on this package's ComfyUI client.

    from comfyui_gradio.compat.viewcomfy import infer, infer_with_logs   # was: from api import ...
    result = await infer(api_url="http://127.0.0.1:8188?workflow=workflows/invert.json",
                         params={"1-inputs-image": open("cat.png", "rb")}, client_id="", client_secret="")
    for file in result.outputs: open(file.filename, "wb").write(base64.b64decode(file.data))

The seed is ViewComfy's API guide (``ViewComfy/cloud-public``, ``ViewComfy_API/Python/api.py`` in its
base64 form: ``ComfyAPIClient.infer(data, files)``, ``infer_with_logs(data, logging_callback, files)``,
``parse_parameters``, the module functions ``infer`` / ``infer_with_logs``, ``PromptResult`` and
``FileOutput``; and ``main.py``, the flow the tests follow). ``params`` are flat
``"<node id>-inputs-<input name>": value`` keys (``forms.prepare`` reads them); a value that is an open
file is a file part, as in ``parse_parameters``.

What a ViewComfy deployment is here: a ComfyUI server plus one workflow. The workflow is
``override_workflow_api`` (``workflow_api`` in ``data``) if given, else the ``workflow=`` query parameter of
the address (a path, URL or RunningHub id: ``comfy.sources``), else ``workflow=`` of ``ViewComfyClient``.
``client_id`` / ``client_secret`` are accepted and not sent anywhere: ComfyUI does not use them (give
ComfyUI credentials in the address, ``http://user:password@host``). The logs handed to ``logging_callback``
are, as ``"log_message: <text>"`` lines like ViewComfy's: ComfyUI's own console lines while the run goes (the
job subscribes to them, ``submit(..., logs=True)``; they are the whole server's, as a deployment's are its own),
and the run's progress (queued, node started, steps).
Errors are this package's (``ComfyGradioError``), raised where ViewComfy raises ``Exception``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
from dataclasses import dataclass, field
from io import BufferedReader
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from ..comfy.client import ComfyClient
from ..comfy.events import Cached, JobEvent, LogLines, NodeStarted, Progress, Queued, Started
from ..comfy.results import RunResult
from ..errors import InputError
from ..forms.prepare import flat_target
from ..forms.schema import TabSpec

__all__ = ["FileOutput", "PromptResult", "ViewComfyClient", "infer", "infer_with_logs", "parse_parameters"]

LOGS_NEEDED = "set data['logs'] to True to stream the process logs (infer_with_logs streams them)"


@dataclass
class FileOutput:
    """One output file: its name, MIME type, base64 content and size in bytes."""

    filename: str
    content_type: str
    data: str
    size: int


@dataclass
class PromptResult:
    prompt_id: str
    status: str
    completed: bool
    execution_time_seconds: float
    prompt: dict[str, Any]
    outputs: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outputs = [o if isinstance(o, FileOutput) else FileOutput(**o) for o in self.outputs]


def parse_parameters(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, BufferedReader]]]:
    """Split ``params`` into plain values and open files (file parts), as ViewComfy's ``parse_parameters``."""
    plain, files = {}, []
    for key, value in params.items():
        if isinstance(value, BufferedReader):
            files.append((key, value))
        else:
            plain[key] = value
    return plain, files


class ViewComfyClient:
    """ViewComfy's ``ComfyAPIClient``: ``infer`` and ``infer_with_logs`` take the form ``data``
    (``logs``, ``params`` as a JSON string, ``workflow_api`` as a JSON string or None) and file parts,
    and return the result as a dict. ``client`` is the ComfyUI client to use (else one for ``infer_url``)."""

    def __init__(self, *, infer_url: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, workflow: str | Path | None = None,
                 client: ComfyClient | None = None, timeout: float = 600.0) -> None:
        if infer_url is None and client is None:
            raise InputError("infer_url", "give the ComfyUI address (infer_url=...)")
        url = httpx.URL(infer_url or client.url)  # type: ignore[union-attr]
        self.workflow = url.params.get("workflow") or workflow
        self.client_id, self.client_secret = client_id, client_secret  # accepted, never sent (see module doc)
        self.client = client or ComfyClient(str(url.copy_with(query=None, fragment=None)).rstrip("/"))
        self.timeout = timeout

    async def infer(self, *, data: dict[str, Any],
                    files: list[tuple[str, BufferedReader]] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self._run, data, files or [], None)

    async def infer_with_logs(self, *, data: dict[str, Any], logging_callback: Callable[[str], None],
                              files: list[tuple[str, BufferedReader]] | None = None) -> dict[str, Any] | None:
        if data.get("logs") is not True:
            raise InputError("logs", LOGS_NEEDED)
        return await asyncio.to_thread(self._run, data, files or [], logging_callback)

    def close(self) -> None:
        self.client.close()

    def _run(self, data: Mapping[str, Any], files: list[tuple[str, BufferedReader]],
             log: Callable[[str], None] | None) -> dict[str, Any]:
        values = json.loads(data.get("params") or "{}")
        values.update({key: handle.read() for key, handle in files})
        override = data.get("workflow_api")
        workflow = json.loads(override) if override else self.workflow
        if workflow is None:
            raise InputError("workflow_api", "this ComfyUI has no deployed workflow: give override_workflow_api, "
                                             "or add ?workflow=<path or URL> to the address")
        tab = self.client.load(workflow)
        job = self.client.submit(tab, _by_param_name(tab, values), timeout=self.timeout, logs=log is not None)
        for event in job.events():
            for line in _log_lines(event) if log else ():
                log(f"log_message: {line}")
        return _as_dict(job.result())


def _by_param_name(tab: TabSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat keys that set a form field's input, renamed to that field (so its checks and uploads apply)."""
    named = {}
    for key, value in values.items():
        target = flat_target(key)
        param = next((p for p in tab.params if target in p.targets), None) if target else None
        named[param.name if param else key] = value
    return named


def _log_lines(event: JobEvent | None) -> list[str]:
    """ComfyUI's own console lines (``LogLines``), as a deployment streams them, and the run's progress."""
    if isinstance(event, LogLines):
        return [line for line in event.text.replace("\r", "\n").splitlines() if line.strip()]
    line = _progress_line(event)
    return [line] if line else []


def _progress_line(event: JobEvent | None) -> str | None:
    if isinstance(event, Queued):
        return f"queued (position {event.position})" if event.position is not None else "queued"
    if isinstance(event, Started):
        return "started"
    if isinstance(event, Cached):
        return f"cached: {', '.join(event.node_ids)}" if event.node_ids else None
    if isinstance(event, NodeStarted):
        return f"executing {event.title} (node {event.node_id})"
    if isinstance(event, Progress):
        return f"{event.title}: {event.value}/{event.max}"
    return None


def _as_dict(run: RunResult) -> dict[str, Any]:
    outputs = []
    for output in run.outputs:
        content = Path(output.path).read_bytes()
        outputs.append({"filename": output.path.name, "size": len(content),
                        "content_type": mimetypes.guess_type(output.path.name)[0] or "application/octet-stream",
                        "data": base64.b64encode(content).decode()})
    return {"prompt_id": run.prompt_id, "status": run.status, "completed": True,
            "execution_time_seconds": run.duration, "prompt": run.prompt, "outputs": outputs}


def _form(params: Mapping[str, Any], override: Mapping[str, Any] | None, logs: bool
          ) -> tuple[dict[str, Any], list[tuple[str, BufferedReader]]]:
    plain, files = parse_parameters(params)
    return {"logs": logs, "params": json.dumps(plain),
            "workflow_api": json.dumps(override) if override else None}, files


async def infer(*, params: dict[str, Any], api_url: str, override_workflow_api: dict[str, Any] | None = None,
                client_id: str, client_secret: str) -> PromptResult:
    """Run the deployment's workflow (or ``override_workflow_api``) with ``params``; wait for the result."""
    client = ViewComfyClient(infer_url=api_url, client_id=client_id, client_secret=client_secret)
    try:
        data, files = _form(params, override_workflow_api, logs=False)
        return PromptResult(**await client.infer(data=data, files=files))
    finally:
        client.close()


async def infer_with_logs(*, params: dict[str, Any], logging_callback: Callable[[str], None], api_url: str,
                          override_workflow_api: dict[str, Any] | None = None, client_id: str,
                          client_secret: str) -> PromptResult | None:
    """``infer``, handing each progress line to ``logging_callback`` while the run goes."""
    client = ViewComfyClient(infer_url=api_url, client_id=client_id, client_secret=client_secret)
    try:
        data, files = _form(params, override_workflow_api, logs=True)
        result = await client.infer_with_logs(data=data, files=files, logging_callback=logging_callback)
        return PromptResult(**result) if result else None
    finally:
        client.close()
