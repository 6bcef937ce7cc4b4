"""RunningHub's task API over httpx: the wire client a RunningHub backend wraps.

    rh = RunningHubClient(api_key)               # or RUNNINGHUB_API_KEY
    prompt = rh.workflow_json("1987654321")      # the API-format workflow behind a RunningHub id
    task = rh.submit("1987654321", node_info_list(prompt, prepared.prompt))
    rh.status(task)                              # "QUEUED" | "RUNNING" | "SUCCESS" | "FAILED"
    files = rh.wait(task, timeout=600)           # [TaskOutput(file_url, file_type, node_id)]

The protocol is the one comfykit 0.1.12 speaks (``comfykit/comfyui/runninghub_client.py``:
``_make_request``, ``get_workflow_json``, ``upload_file``, ``create_task``, ``query_task_status``,
``query_task_result``; ``runninghub_executor.py``: ``_wait_for_task_completion``): every call is a POST
with ``apiKey`` in the body (JSON, or multipart for ``/task/openapi/upload``), every answer is HTTP 200 with
``{"code", "msg", "data"}`` and ``code == 0`` means success. The error codes are those RunningHub's API
docs list; each becomes an error of ``errors`` that says what to do.

Two differences from comfykit, both deliberate: only failures of the connection and HTTP 5xx are
retried (``retry_count`` times, backing off 1, 2, 4 s as comfykit does) — a refused key or an empty
wallet is not made better by asking again — and a call that creates a task or an upload is sent again
only when the connection could not be made (a second task would be a second bill); and ``wait`` has a
timeout (comfykit's default waits forever).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import httpx

from ..errors import (ConfigError, ExecutionFailed, InputError, JobTimeout, Problem, PromptRejected,
                      ProtocolError, ServerError, ServerUnavailable, ServiceRefused)
from ..forms.prepare import PreparedPrompt, prepare
from ..forms.schema import TabSpec
from ..forms.workflow import is_link

__all__ = ["DEFAULT_URL", "NO_KEY", "RunningHubClient", "TaskOutput", "TaskStatus", "is_runninghub_id",
           "node_info_list"]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://www.runninghub.ai"
NO_KEY = ("a RunningHub workflow id needs a RunningHub API key: set RUNNINGHUB_API_KEY (or pass "
          "runninghub_api_key=...); get one under your account at https://www.runninghub.ai")
TaskStatus = Literal["QUEUED", "RUNNING", "SUCCESS", "FAILED"]
STILL_GOING = {804, 813}  # outputs asked for too early: "still running", "queued"

# What each documented error code means for the caller, and what to do about it.
_ADVICE: dict[int, str] = {
    421: "RunningHub's queue is full. Wait a little and try again, or use a personal queue.",
    415: "this key has no dedicated instance on RunningHub. Use a shared instance, or rent a dedicated one.",
    801: "free RunningHub accounts cannot use the API. Upgrade the account to a paid plan.",
    802: "RunningHub refused the API key. Check RUNNINGHUB_API_KEY (copy it again from your account page).",
    806: "RunningHub does not know the user of this API key. Check RUNNINGHUB_API_KEY.",
    811: "RunningHub refused the enterprise API key. Check RUNNINGHUB_API_KEY.",
    812: "the RunningHub enterprise account has run out of funds. Top it up, then try again.",
    814: "your RunningHub personal queue is at its limit. Wait for a task to finish, then try again.",
    805: "RunningHub reports an abnormal task status. Look at the task on runninghub.ai, then try again.",
}
_REJECTED = {301: "the parameters were refused", 433: "the workflow did not pass validation",
             803: "nodeInfoList does not match the workflow's nodes and inputs"}
_MISSING = {380: "RunningHub has no workflow with this id", 901: "RunningHub has no web app with this id"}
_UNKNOWN_TASK = {423, 807}
_UPLOAD = {808: "RunningHub could not store the file; try again", 809: "the file is too big for RunningHub"}


@dataclass(frozen=True)
class TaskOutput:
    """One file a finished task produced: a URL to download, RunningHub's file type, and its node if given."""

    file_url: str
    file_type: str
    node_id: str | None = None


def is_runninghub_id(text: str) -> bool:
    """RunningHub workflow ids are numbers written as strings (comfykit's ``_is_runninghub_workflow_id``)."""
    return text.isdigit()


def node_info_list(original: Mapping[str, Mapping[str, Any]],
                   prompt: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``nodeInfoList`` that turns ``original`` into ``prompt``: one entry per literal input that changed.

    Links are never sent (RunningHub's nodeInfoList sets widget values only).
    """
    changes = []
    for node_id, node in prompt.items():
        before = (original.get(node_id) or {}).get("inputs", {})
        for name, value in node.get("inputs", {}).items():
            if not is_link(value) and (name not in before or before[name] != value):
                changes.append({"nodeId": str(node_id), "fieldName": name, "fieldValue": value})
    return changes


class RunningHubClient:
    """RunningHub's task API for one API key. Thread-safe (one httpx.Client); close it when done.

    ``http`` may be injected (e.g. with ``transport=httpx.MockTransport(...)``); ``sleep`` is the wait
    between retries and polls (tests pass a no-op).
    """

    service = "RunningHub"

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 http: httpx.Client | None = None, timeout: float = 300.0, retry_count: int = 3,
                 instance_type: str | None = None, poll_interval: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        key = api_key or os.environ.get("RUNNINGHUB_API_KEY", "")
        if not key:
            raise ConfigError([Problem("settings", "RUNNINGHUB_API_KEY", NO_KEY)])
        self._key = key
        self.url = (base_url or os.environ.get("RUNNINGHUB_BASE_URL") or DEFAULT_URL).rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)  # sends Host: as RunningHub asks
        self.retry_count = retry_count
        self.instance_type = instance_type
        self.poll_interval = poll_interval
        self.sleep = sleep

    def __repr__(self) -> str:  # never shows the key
        return f"RunningHubClient({self.url!r})"

    def __enter__(self) -> "RunningHubClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # ---- the five calls ---------------------------------------------------------------------

    def workflow_json(self, workflow_id: str) -> dict[str, Any]:
        """``POST /api/openapi/getJsonApiFormat``: the API-format workflow (sent as a JSON string) of an id."""
        data = self._call("/api/openapi/getJsonApiFormat", {"workflowId": workflow_id}, workflow=workflow_id)
        prompt = data.get("prompt") if isinstance(data, dict) else None
        try:
            parsed = json.loads(prompt) if isinstance(prompt, str) else prompt
        except ValueError as exc:
            raise ProtocolError(f"RunningHub sent workflow {workflow_id} as something that is not JSON") from exc
        if not isinstance(parsed, dict) or not parsed:
            raise ProtocolError(f"RunningHub sent no API-format workflow for id {workflow_id}")
        return parsed

    def upload(self, data: bytes, filename: str, *, field: str = "file") -> str:
        """``POST /task/openapi/upload`` (multipart ``apiKey``, ``file``): the ``fileName`` to give a loader node.

        ``field`` names the form field in errors.
        """
        answer = self._call("/task/openapi/upload", None, files={"file": (filename, data)}, field=field)
        name = answer.get("fileName") if isinstance(answer, dict) else None
        if not name:
            raise ProtocolError(f"RunningHub accepted the upload of {field!r} but sent no fileName")
        return str(name)

    def submit(self, workflow_id: str, node_infos: list[dict[str, Any]] | None = None, *,
               workflow: Mapping[str, Any] | None = None) -> str:
        """``POST /task/openapi/create``: queue a task; return its ``taskId``.

        ``workflow`` (an API prompt) replaces the stored workflow of ``workflow_id`` for this task
        (RunningHub's ``workflow`` field, a JSON string).
        """
        body: dict[str, Any] = {"workflowId": workflow_id}
        if node_infos:
            body["nodeInfoList"] = node_infos
        if workflow is not None:
            body["workflow"] = json.dumps(workflow)
        if self.instance_type:
            body["instanceType"] = self.instance_type
        data = self._call("/task/openapi/create", body, workflow=workflow_id)
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not task_id:
            raise ProtocolError(f"RunningHub created no task for workflow {workflow_id} (no taskId in its answer)")
        return str(task_id)

    def status(self, task_id: str) -> TaskStatus:
        """``POST /task/openapi/status``: ``data`` is the status itself."""
        return self.status_and_reason(task_id)[0]

    def status_and_reason(self, task_id: str) -> tuple[TaskStatus, str]:
        """The status and RunningHub's ``msg`` with it (the reason, for a FAILED task)."""
        answer = self._answer("/task/openapi/status", {"taskId": task_id}, task=task_id)
        data = answer.get("data")
        if data not in ("QUEUED", "RUNNING", "SUCCESS", "FAILED"):
            raise ProtocolError(f"RunningHub answered an unknown status {data!r} for task {task_id}")
        return data, str(answer.get("msg") or "")

    def outputs(self, task_id: str) -> list[TaskOutput] | None:
        """``POST /task/openapi/outputs``: the task's files, or None while it is still queued or running."""
        try:
            data = self._call("/task/openapi/outputs", {"taskId": task_id}, task=task_id)
        except ServiceRefused as exc:
            if exc.code in STILL_GOING:
                return None
            raise
        return [TaskOutput(str(item["fileUrl"]), str(item.get("fileType", "")),
                           str(item["nodeId"]) if item.get("nodeId") is not None else None)
                for item in data or [] if isinstance(item, dict) and item.get("fileUrl")]

    def submit_tab(self, workflow_id: str, tab: TabSpec, values: Mapping[str, Any] | None = None
                   ) -> tuple[str, PreparedPrompt]:
        """Upload the local files among ``values``, prepare the tab's prompt and queue it as the changes
        (``nodeInfoList``) it makes to RunningHub's stored workflow ``workflow_id``, whose API form
        ``tab`` was built from (``workflow_json``). Return the task id and what was prepared."""
        from .client import local_uploads  # client.py imports sources.py, which imports this module

        uploads = local_uploads(tab, values or {})
        names = {key: self.upload(f.data, f.filename, field=f.label) for key, f in uploads.items()}
        prepared = prepare(tab, {**(values or {}), **names})
        return self.submit(workflow_id, node_info_list(tab.workflow.nodes, prepared.prompt)), prepared

    # ---- following a task ---------------------------------------------------------------------

    def wait(self, task_id: str, timeout: float | None = 600.0) -> list[TaskOutput]:
        """Poll ``status`` every ``poll_interval`` until SUCCESS (then read ``outputs``) or FAILED."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state, msg = self.status_and_reason(task_id)
            if state == "SUCCESS":
                return self.outputs(task_id) or []
            if state == "FAILED":
                raise ExecutionFailed("", f"RunningHub task {task_id}", msg or "RunningHub gave no reason")
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"RunningHub task {task_id} did not finish within {timeout:.0f} s; it may still "
                                 "be running on RunningHub. Raise the timeout, or look at the task there.")
            self.sleep(self.poll_interval)

    def download(self, url: str) -> bytes:
        """The bytes of an output file (RunningHub's file URLs need no key)."""
        try:
            response = self.http.get(url)
        except httpx.HTTPError as exc:
            raise ServerError(f"Could not download the RunningHub output {url}: {exc}") from exc
        if response.status_code != 200:
            raise ServerError(f"RunningHub's output {url} answered HTTP {response.status_code}")
        return response.content

    # ---- the wire ----------------------------------------------------------------------------

    def _call(self, path: str, body: dict[str, Any] | None, **context: Any) -> Any:
        """The ``data`` of a successful answer."""
        return self._answer(path, body, **context).get("data")

    def _answer(self, path: str, body: dict[str, Any] | None, *, files: dict[str, Any] | None = None,
                workflow: str = "", task: str = "", field: str = "") -> dict[str, Any]:
        """One POST with ``apiKey`` added; a ``code 0`` answer, else the mapped error."""
        answer = self._post(path, body, files)
        code = answer.get("code")
        if code == 0:
            return answer
        raise _error(int(code) if isinstance(code, int) else -1, str(answer.get("msg") or ""),
                     workflow=workflow, task=task, field=field)

    def _post(self, path: str, body: dict[str, Any] | None, files: dict[str, Any] | None) -> dict[str, Any]:
        """Retried: a connection that could not be made, and, for the calls that change nothing on RunningHub,
        a 5xx or a broken answer too. A call that creates something (a task, an upload) is not sent again once
        RunningHub may have had it: a second task would be a second bill."""
        retryable: tuple[type[Exception], ...] = ((ServerUnavailable,) if path in _CREATES
                                                  else (ServerUnavailable, _Transient))
        for attempt in range(self.retry_count + 1):
            try:
                response = self._send(path, body, files)
            except retryable as exc:
                if attempt == self.retry_count:
                    raise
                log.warning("RunningHub %s failed (attempt %d of %d): %s; retrying in %d s", path, attempt + 1,
                            self.retry_count + 1, exc, 2**attempt)
                self.sleep(2**attempt)
                continue
            return response
        raise AssertionError("unreachable")

    def _send(self, path: str, body: dict[str, Any] | None, files: dict[str, Any] | None) -> dict[str, Any]:
        try:
            if files is not None:
                response = self.http.post(path, data={"apiKey": self._key, **(body or {})}, files=files)
            else:
                response = self.http.post(path, json={"apiKey": self._key, **(body or {})})
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailable(self.url, str(exc) or type(exc).__name__, "RunningHub") from exc
        except httpx.HTTPError as exc:
            raise _Transient(f"POST {path} to RunningHub at {self.url} failed: {exc}") from exc
        if response.status_code >= 500:
            raise _Transient(f"RunningHub answered POST {path} with HTTP {response.status_code}; try again later")
        if response.status_code != 200:
            raise ProtocolError(f"RunningHub answered POST {path} with HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise ProtocolError(f"RunningHub answered POST {path} with something that is not JSON") from exc
        if not isinstance(answer, dict) or "code" not in answer:
            raise ProtocolError(f"RunningHub answered POST {path} without a code")
        return answer


_CREATES = {"/task/openapi/create", "/task/openapi/upload"}  # not idempotent: never sent twice once sent


class _Transient(ServerError):
    """RunningHub failed in a way that may pass (a 5xx, a dropped answer): worth one more try where safe."""


def _error(code: int, msg: str, *, workflow: str, task: str, field: str) -> Exception:
    """RunningHub's error code as one of our errors, with its own message kept in parentheses."""
    said = f" (RunningHub: {code} {msg})".replace(" )", ")")
    if code in _REJECTED:
        return PromptRejected(f"RunningHub refused workflow {workflow}: {_REJECTED[code]}{said}. Check the "
                              "values against the workflow's nodes.", error_type=f"runninghub_{code}")
    if code in _MISSING:
        return ConfigError([Problem(f"RunningHub workflow {workflow}", "", f"{_MISSING[code]}{said}; check the id "
                                    "(the number in the workflow's address on runninghub.ai)")])
    if code in _UPLOAD:
        return InputError(field or "file", f"{_UPLOAD[code]}{said}")
    if code in _UNKNOWN_TASK:
        return ServerError(f"RunningHub does not know task {task}{said}; run it again.")
    advice = _ADVICE.get(code, f"RunningHub refused the call{said}. See RunningHub's API docs for this code.")
    return ServiceRefused("RunningHub", code, advice + (said if code in _ADVICE else ""))

