"""A Comfy API v2 endpoint for ``httpx.MockTransport``: what comfy-api-proxy 0.1.6 answers the calls
comfy-sdk 0.5.0 makes.

Shapes from comfy-api-proxy's ``app.py``: ``Proxy._job`` (a job: ``id, status, created_at, started_at,
completed_at, expires_at, queue_position, progress, outputs, error, urls{self, events, cancel}``; 201 on
``POST /api/v2/jobs``), ``Proxy._outputs`` (``node_id, name, type, content_type, size_bytes, id, hash,
url, url_expires_at, job_id``), ``Proxy._asset_json`` (201 on ``POST /assets``), ``head_asset_by_hash``
(200 or 404), ``_error`` (``{"error": {"code", "message", "details"}}``, 422 ``invalid_workflow`` with
``node_errors``); from ``realtime.py``, SSE frames ``event: <name>\\ndata: <json>\\n\\n``: a ``status``
snapshot first, ``progress`` (``value, nodes_done, nodes_total, current_node, step, steps``),
``preview`` (``node_id, content_type, data_base64``), ``output`` per output, a terminal ``status`` last.

The "server" inverts the uploaded image (the shipped invert workflow) so a test can check pixels.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import httpx
from PIL import Image, ImageOps

BASE = "http://v2.test"
WHEN = "2026-12-02T00:00:00Z"
PREVIEW = "iVBORw0KGgo="  # base64 of the PNG signature's first bytes: a stand-in preview


class V2Double:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.calls: list[str] = []  # "METHOD /path" of every request
        self.assets: dict[str, dict[str, Any]] = {}  # id -> record (with its bytes)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submitted: list[dict[str, Any]] = []  # POST /jobs bodies
        self.ending = "succeeded"  # or "failed", "canceled", "running" (never ends: for cancel)
        self.error: dict[str, Any] | None = {"code": "node_execution_error", "message": "CUDA out of memory",
                                             "node_id": "2", "class_type": "ImageInvert", "traceback": None}
        self.reject: dict[str, Any] | None = None  # a POST /jobs error body (422)
        self.reject_status = 422  # and its status
        self.health_status = 200
        self.events_status = 200  # another status answers GET /jobs/{id}/events with an error body
        self.live: list[tuple[str, dict[str, Any]]] | None = None  # replaces the progress and preview frames
        self.outputs: list[tuple[str, str, str, bytes]] | None = None  # (node_id, name, type, bytes) instead
        self.job_headers: list[httpx.Headers] = []  # the headers of each POST /jobs
        self.expired_reads = 0  # GET /jobs/{id} answers "expired" this many times first (the proxy's race)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        self.calls.append(f"{request.method} {path}")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid API key.")
        method, parts = request.method, path.strip("/").split("/")
        if parts == ["health"]:
            if self.health_status != 200:
                return _error(self.health_status, "upstream_unavailable", "ComfyUI is not answering.")
            return httpx.Response(200, json={"status": "healthy", "upstream": "http://127.0.0.1:8188"})
        if parts[0] == "assets":
            return self._assets(method, parts[1:], request)
        if parts[0] == "jobs":
            return self._jobs(method, parts[1:], request)
        return _error(404, "not_found", "No such route.")

    # ---- assets ------------------------------------------------------------------------------

    def _assets(self, method: str, rest: list[str], request: httpx.Request) -> httpx.Response:
        if method == "HEAD" and rest[0] == "by-hash":
            return httpx.Response(200 if any(a["hash"] == rest[1] for a in self.assets.values()) else 404)
        if method == "POST" and rest == ["from-hash"]:
            digest = json.loads(request.content)["hash"]
            found = next((a for a in self.assets.values() if a["hash"] == digest), None)
            return httpx.Response(200, json=_asset(found)) if found else _error(404, "blob_not_found", "No blob.")
        if method == "POST" and not rest:
            return self._upload(request)
        if method == "GET" and len(rest) == 2 and rest[1] == "content":
            return httpx.Response(200, content=self.assets[rest[0]]["data"])
        return _error(404, "not_found", "Unknown asset id.")

    def _upload(self, request: httpx.Request) -> httpx.Response:
        from tests.viewcomfy_double import _form  # the same multipart reading

        fields, files = _form(request)
        asset_id = str(uuid.uuid4())
        data = next(iter(files.values()))
        self.assets[asset_id] = {"id": asset_id, "hash": fields["expected_hash"], "data": data,
                                 "file_path": fields["file_path"], "content_type": fields["content_type"]}
        return httpx.Response(201, json=_asset(self.assets[asset_id], created_new=True))

    # ---- jobs --------------------------------------------------------------------------------

    def _jobs(self, method: str, rest: list[str], request: httpx.Request) -> httpx.Response:
        if method == "POST" and not rest:
            self.job_headers.append(request.headers)
            return self._submit(json.loads(request.content))
        job = self.jobs.get(rest[0])
        if job is None:
            return _error(404, "not_found", f"No job {rest[0]}.")
        if method == "GET" and len(rest) == 1:
            if self.expired_reads:  # the proxy's race (app.py _status_of: /history, then /queue)
                self.expired_reads -= 1
                return httpx.Response(200, json=dict(job, status="expired", outputs=[]))
            return httpx.Response(200, json=job)
        if method == "POST" and rest[1:] == ["cancel"]:
            job["status"] = "canceled"
            return httpx.Response(200, json=job)
        if method == "GET" and rest[1:] == ["events"]:
            if self.events_status != 200:
                return _error(self.events_status, "internal_error", "The event stream failed.")
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self._events(job))
        return _error(404, "not_found", "No such route.")

    def _submit(self, body: dict[str, Any]) -> httpx.Response:
        if self.reject:
            return httpx.Response(self.reject_status, json={"error": self.reject})
        self.submitted.append(body)
        job_id = str(uuid.uuid4())
        urls = {name: f"{BASE}/api/v2/jobs/{job_id}{tail}" for name, tail in
                (("self", ""), ("events", "/events"), ("cancel", "/cancel"))}
        job = {"id": job_id, "status": "queued", "created_at": WHEN, "started_at": None, "completed_at": None,
               "expires_at": WHEN, "queue_position": 1, "progress": None, "outputs": [], "error": None, "urls": urls}
        self.jobs[job_id] = job
        answer = dict(job)
        self._run(job, body["workflow"])
        return httpx.Response(201, json=answer)

    def _run(self, job: dict[str, Any], workflow: dict[str, Any]) -> None:
        """Finish the job at once (or never): its end is what GET /jobs/{id} answers from now on."""
        if self.ending == "running":
            job["status"] = "running"
            return
        if self.ending in ("failed", "canceled"):
            job.update(status=self.ending, error=self.error if self.ending == "failed" else None)
            return
        if self.outputs is not None:
            job.update(status="succeeded", outputs=[self._output(job, *output) for output in self.outputs])
            return
        reference = workflow["1"]["inputs"]["image"]
        image = Image.open(io.BytesIO(self.assets[reference["info"]["id"]]["data"])).convert("RGB")
        buffer = io.BytesIO()
        ImageOps.invert(image).save(buffer, format="PNG")
        output_id = str(uuid.uuid4())
        self.assets[output_id] = {"id": output_id, "hash": None, "data": buffer.getvalue(),
                                  "file_path": "invert_00001_.png", "content_type": "image/png"}
        job.update(status="succeeded", outputs=[{
            "node_id": "3", "name": "invert_00001_.png", "type": "image", "content_type": "image/png",
            "size_bytes": 0, "id": output_id, "hash": None, "url": f"{BASE}/api/v2/assets/{output_id}/content",
            "url_expires_at": WHEN, "job_id": job["id"]}])

    def _output(self, job: dict[str, Any], node_id: str, name: str, kind: str, data: bytes) -> dict[str, Any]:
        output_id = str(uuid.uuid4())
        self.assets[output_id] = {"id": output_id, "hash": None, "data": data, "file_path": name,
                                  "content_type": "application/octet-stream"}
        return {"node_id": node_id, "name": name, "type": kind, "content_type": "application/octet-stream",
                "size_bytes": len(data), "id": output_id, "hash": None,
                "url": f"{BASE}/api/v2/assets/{output_id}/content", "url_expires_at": WHEN, "job_id": job["id"]}

    def _events(self, job: dict[str, Any]) -> bytes:
        frames = [("status", {"status": "running", "queue_position": None})]
        if job["status"] == "running":
            return _sse(frames)  # the stream ends without a terminal frame; the SDK polls
        frames.insert(0, ("status", {"status": "queued", "queue_position": 1}))
        frames += self.live if self.live is not None else [
            ("progress", {"value": 0.5, "nodes_done": 1, "nodes_total": 2, "current_node": "2", "step": None,
                          "steps": None}),
            ("preview", {"node_id": "2", "content_type": "image/png", "data_base64": PREVIEW})]
        frames += [("output", output) for output in job["outputs"]]
        frames.append(("status", {"status": job["status"], "queue_position": None}))
        return _sse(frames)


def _asset(record: dict[str, Any], created_new: bool | None = None) -> dict[str, Any]:
    body = {"id": record["id"], "hash": record["hash"], "size_bytes": len(record["data"]),
            "content_type": record["content_type"], "file_path": record["file_path"], "created_at": WHEN,
            "url": f"{BASE}/api/v2/assets/{record['id']}/content", "url_expires_at": WHEN}
    if created_new is not None:
        body["created_new"] = created_new
    return body


def _sse(frames: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in frames).encode()


def _error(status: int, code: str, message: str, **details: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details}})
