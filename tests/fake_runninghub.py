"""A RunningHub test double as an ``httpx.MockTransport`` handler (RunningHub cannot be reached from here).

It says what comfykit 0.1.12's client reads (``comfykit/comfyui/runninghub_client.py`` and
``runninghub_executor.py``), and the documented error codes (RunningHub's API docs):
every route is a POST answered with HTTP 200 and ``{"code", "msg", "data"}``, ``code 0`` meaning success;
``apiKey`` is in the JSON body (multipart for the upload); ``getJsonApiFormat`` sends the API workflow as a
JSON *string* in ``data.prompt``; ``create`` answers ``data.taskId``; ``status`` answers the status as
``data`` (QUEUED, RUNNING, then SUCCESS or FAILED with the reason in ``msg``); ``outputs`` answers
``data: [{fileUrl, fileType, nodeId}]`` (here one PNG per SaveImage / PreviewImage node), or code 804
while the task still runs. Output files are served
at ``/files/<name>`` (on RunningHub they are on a CDN).

Knobs: ``workflows`` (id -> API prompt), ``fail_next`` (route -> (code, msg), once), ``polls`` (statuses a
task goes through before its last one), ``task_fails`` (the FAILED reason, or None), ``requests`` (every
request as (path, body)).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

URL = "https://www.runninghub.ai"
KEY = "rh-test-key-0123456789abcdef01234"


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class FakeRunningHub:
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: dict[str, tuple[int, str]] = field(default_factory=dict)
    polls: tuple[str, ...] = ("QUEUED", "RUNNING")
    task_fails: str | None = None
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=URL, transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.startswith("/files/"):
            name = path.removeprefix("/files/")
            return httpx.Response(200, content=self.files[name]) if name in self.files else httpx.Response(404)
        body = self._body(request)
        self.requests.append((path, body))
        if path in self.fail_next:
            code, msg = self.fail_next.pop(path)
            return self._answer(code, msg, None)
        if body.get("apiKey") != KEY:
            return self._answer(802, "APIKEY_UNAUTHORIZED", None)
        route = {"/api/openapi/getJsonApiFormat": self._workflow, "/task/openapi/upload": self._upload,
                 "/task/openapi/create": self._create, "/task/openapi/status": self._status,
                 "/task/openapi/outputs": self._outputs}.get(path)
        return route(body) if route else httpx.Response(404, text="Not Found")

    @staticmethod
    def _body(request: httpx.Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            content = request.read()
            key = content.split(b'name="apiKey"\r\n\r\n', 1)[-1].split(b"\r\n", 1)[0].decode()
            return {"apiKey": key, "file": content}
        return json.loads(request.content or b"{}")

    @staticmethod
    def _answer(code: int, msg: str, data: Any) -> httpx.Response:
        return httpx.Response(200, json={"code": code, "msg": msg, "data": data})

    def _workflow(self, body: dict[str, Any]) -> httpx.Response:
        prompt = self.workflows.get(str(body.get("workflowId")))
        if prompt is None:
            return self._answer(380, "WORKFLOW_NOT_EXISTS", None)
        return self._answer(0, "success", {"prompt": json.dumps(prompt)})

    def _upload(self, body: dict[str, Any]) -> httpx.Response:
        name = f"api/{len(self.uploads) + 1:04d}.png"
        self.uploads[name] = body["file"]
        return self._answer(0, "success", {"fileName": name, "fileType": "image"})

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        workflow_id = str(body.get("workflowId"))
        if workflow_id not in self.workflows and "workflow" not in body:
            return self._answer(380, "WORKFLOW_NOT_EXISTS", None)
        task_id = str(1990000000000000000 + len(self.tasks) + 1)
        self.tasks[task_id] = {"body": body, "polls": list(self.polls)}
        return self._answer(0, "success", {"taskId": task_id, "taskStatus": "QUEUED", "clientId": "c0ffee"})

    def _status(self, body: dict[str, Any]) -> httpx.Response:
        task = self.tasks.get(str(body.get("taskId")))
        if task is None:
            return self._answer(807, "APIKEY_TASK_NOT_FOUND", None)
        if task["polls"]:
            return self._answer(0, "success", task["polls"].pop(0))
        if self.task_fails is not None:
            return self._answer(0, self.task_fails, "FAILED")
        return self._answer(0, "success", "SUCCESS")

    def _outputs(self, body: dict[str, Any]) -> httpx.Response:
        task_id = str(body.get("taskId"))
        task = self.tasks.get(task_id)
        if task is None:
            return self._answer(807, "APIKEY_TASK_NOT_FOUND", None)
        if task["polls"]:
            return self._answer(804, "APIKEY_TASK_IS_RUNNING", None)
        body = task["body"]
        workflow = json.loads(body["workflow"]) if "workflow" in body else self.workflows[str(body["workflowId"])]
        answer = []
        for node_id in (n for n, node in workflow.items() if node["class_type"] in ("SaveImage", "PreviewImage")):
            name = f"{task_id}_{len(answer)}.png"
            self.files[name] = _png((200, 30, 30))
            answer.append({"fileUrl": f"{URL}/files/{name}", "fileType": "png", "nodeId": node_id, "taskCostTime": "3"})
        return self._answer(0, "success", answer)
