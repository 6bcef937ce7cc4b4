"""Replay a recorded ComfyUI transcript to the client: HTTP through ``httpx.MockTransport``,
the WebSocket through a scripted connector. Recorded prompt ids are swapped for the job's own.

The script holds the WebSocket frames recorded after ``POST /prompt`` until the client posts,
then pushes them *before* the HTTP answer is returned, as the real server did in b3/b4/b5.
As on the real server, ``/history/{id}`` is ``{}`` until the run has finished: when the client
has read the run's frames, or (frames cut off by a dropped socket, or no socket at all) after
``running_polls`` answers of ``GET /queue`` that show the prompt running.

``Replay(..., jobs_api=True)`` is a newer server (as ``tests/fake_comfyui.py`` ``newer``, which cites
ComfyUI's ``server.py`` and ``comfy_execution/jobs.py``): the same run is also served by ``GET /api/jobs``
(``?status=in_progress,pending`` counts as a ``/queue`` poll), ``GET /api/jobs/{id}`` (the recorded history
entry as a job once finished: ``status`` completed/failed/cancelled, ``outputs``, ``execution_status``;
``in_progress`` before; 404 ``{"error": "Job not found"}`` for another id) and ``POST /api/jobs/{id}/cancel``
/ ``POST /api/jobs/cancel`` (``{"cancelled": ...}``); ``/features`` has the newer flags.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import httpx
from PIL import Image

from comfyui_gradio.comfy.transport import WebSocketClosed

from tests.paths import TRANSCRIPTS

if TYPE_CHECKING:
    from comfyui_gradio.comfy.client import ComfyClient


def load_transcript(name: str) -> dict[str, Any]:
    return json.loads((TRANSCRIPTS / f"{name}.json").read_text())


def png_bytes(color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def binary_frame(event: dict[str, Any]) -> bytes:
    """The bytes of a recorded binary frame: the saved blob, or a rebuilt frame of the same type."""
    if event.get("saved_to"):
        return (TRANSCRIPTS / event["saved_to"]).read_bytes()
    if event["event_type"] == 4:
        meta = json.dumps(event["metadata"]).encode()
        return b"\x00\x00\x00\x04" + len(meta).to_bytes(4, "big") + meta + png_bytes()
    return bytes.fromhex(event["first8_hex"]) + png_bytes()


class ScriptedSocket:
    """A WebSocketConnection fed from a queue; ``None`` in the queue means the socket closed.

    A callable in the queue is called when the reader reaches it (e.g. to finish the run).
    """

    def __init__(self) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.sent: list[str] = []
        self.closed = False
        self.url, self.timeout = "", 0.0  # as the client opened it

    def send(self, text: str) -> None:
        self.sent.append(text)

    def recv(self) -> str | bytes:
        """Blocks until the script says something: a server's socket outlives its jobs (``hub.SocketHub``)."""
        frame = self.frames.get()
        while callable(frame):
            frame()
            frame = self.frames.get()
        if frame is None:
            raise WebSocketClosed("closed by the script")
        return frame

    def close(self) -> None:
        self.closed = True
        self.frames.put(None)


class Replay:
    """Serve one transcript. ``routes`` may override any (method, path) with a handler."""

    def __init__(self, transcript: dict[str, Any], *, drop_after: int | None = None,
                 foreign: list[str | bytes] | None = None, running_polls: int = 2, jobs_api: bool = False) -> None:
        self.t = transcript
        self.jobs_api = jobs_api
        self.cancelled: list[str] = []  # ids sent to the /api/jobs cancel routes
        self.recorded_id = _recorded_prompt_id(transcript)
        self.prompt_id: str | None = None
        self.sockets: list[ScriptedSocket] = []
        self.requests: list[httpx.Request] = []
        self.drop_after = drop_after
        self.refuse_reconnect = False
        self.refuse_sockets = False  # refuse even the first connection
        self.down = False  # refuse every connection, HTTP too
        self.down_requests = 0  # refuse this many HTTP requests, then answer again
        self.refused = 0  # HTTP requests refused so far
        self.foreign = list(foreign or [])  # another prompt's frames, interleaved with the run's
        self.finished = threading.Event()  # the run has ended: /history has its entry
        self.running_polls = running_polls
        self._queue_polls = 0
        self._undelivered: list[Any] = []  # frames of the run no socket has carried yet
        self._resumed: ScriptedSocket | None = None  # a reconnected socket waiting for the rest of the run
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.view_bytes = png_bytes((200, 100, 50))

    # -- WebSocket ------------------------------------------------------------------------------
    def connect(self, url: str, *, headers: dict[str, str], timeout: float) -> ScriptedSocket:
        from comfyui_gradio.errors import ServerUnavailable

        if self.down or self.refuse_sockets or (self.sockets and self.refuse_reconnect):
            raise ServerUnavailable(url, "refused by the script")
        socket = ScriptedSocket()
        socket.url, socket.timeout = url, timeout
        self.sockets.append(socket)
        socket.frames.put(json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                                  "sid": url.rsplit("=", 1)[-1]}}))
        if self._undelivered:  # a reconnect mid-run gets the rest of the stream (h3) ...
            self._resumed = socket
        return socket

    def _resume(self) -> None:
        """... once the client has asked /history whether the run ended while it was away (it had not)."""
        socket, self._resumed = self._resumed, None
        if socket is not None:
            frames, self._undelivered = self._undelivered, []
            for frame in frames:
                socket.frames.put(frame)

    def _push_run(self) -> None:
        frames = self.run_frames()
        socket = self.sockets[-1] if self.sockets else None
        if socket is None:
            self._undelivered = frames
            return
        for count, frame in enumerate(frames):
            if self.drop_after is not None and count == self.drop_after:
                socket.frames.put(None)
                self._undelivered = frames[count:]
                return
            socket.frames.put(frame)

    def run_frames(self) -> list[Any]:
        """The run's frames, one foreign frame after each but the last (the rest before it).

        The run is finished (``/history`` has it) just before its last frame, ``executing(null)``.
        """
        own = self.ws_frames()
        frames: list[Any] = []
        for index, frame in enumerate(own[:-1]):
            frames += [frame, *self.foreign[index:index + 1]]
        frames += self.foreign[len(own) - 1:]
        return frames + [self.finished.set, *own[-1:]]

    def ws_frames(self) -> list[str | bytes]:
        """Every frame recorded after the POST /prompt (or after ws_open for sockets opened first)."""
        frames: list[str | bytes] = []
        for event in self.t["events"]:
            if event["kind"] == "ws_text" and "sid" not in json.dumps(event["message"]):
                frames.append(self._swap(json.dumps(event["message"])))
            elif event["kind"] == "ws_binary":
                frames.append(self._swap_binary(binary_frame(event)))
        return frames

    def _swap(self, text: str) -> str:
        return text.replace(self.recorded_id, self.prompt_id) if self.recorded_id and self.prompt_id else text

    def _swap_binary(self, frame: bytes) -> bytes:
        if not (self.recorded_id and self.prompt_id) or frame[:4] != b"\x00\x00\x00\x04":
            return frame
        meta_len = int.from_bytes(frame[4:8], "big")
        meta = frame[8 : 8 + meta_len].decode().replace(self.recorded_id, self.prompt_id).encode()
        return frame[:4] + len(meta).to_bytes(4, "big") + meta + frame[8 + meta_len :]

    # -- HTTP ---------------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down or self.down_requests > 0:
            self.down_requests -= 1
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        self.requests.append(request)
        path = request.url.path
        key = (request.method, path if not path.startswith("/history/") else "/history/{id}")
        if key in self.routes:
            return self.routes[key](request)
        if self.jobs_api and path.startswith("/api/jobs"):
            return self._jobs(request)
        if key == ("POST", "/prompt"):
            return self.post_prompt(request)
        if key == ("GET", "/history/{id}"):
            return self._history(path.rsplit("/", 1)[-1])
        if key == ("GET", "/view"):
            return httpx.Response(200, content=self.view_bytes, headers={"content-type": "image/png"})
        if key == ("GET", "/features"):
            newer = {"supports_model_type_tags": True, "node_replacements": True, "assets": False,
                     "supports_progress_text_metadata": True} if self.jobs_api else {}
            return httpx.Response(200, json={"supports_preview_metadata": True, "max_upload_size": 104857600,
                                             **newer})
        if key == ("POST", "/upload/image"):
            return httpx.Response(200, json={"name": "x.png", "subfolder": "comfyui-gradio", "type": "input"})
        if key == ("GET", "/queue"):
            return self._queue()
        if request.method == "POST":
            return httpx.Response(200)
        return httpx.Response(404)

    def post_prompt(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.prompt_id = body["prompt_id"]
        recorded = self.recorded_http("POST", "/prompt")
        status = recorded["status"] if recorded else 200
        if status == 200:
            self._push_run()
        answer = recorded.get("response_json") if recorded else None
        answer = answer or {"prompt_id": self.prompt_id, "number": 1, "node_errors": {}}
        return httpx.Response(status, json=json.loads(self._swap(json.dumps(answer))))

    def _queue(self) -> httpx.Response:
        """The prompt is running until the run finishes; cut-off runs finish after ``running_polls`` polls."""
        if self.prompt_id is None or self.finished.is_set():
            return httpx.Response(200, json={"queue_running": [], "queue_pending": []})
        if self._undelivered:
            self._queue_polls += 1
            if self._queue_polls >= self.running_polls:
                self._undelivered = []
                self.finished.set()
        item = [1, self.prompt_id, {}, {"client_id": "replay"}, []]
        return httpx.Response(200, json={"queue_running": [item], "queue_pending": []})

    def _history(self, prompt_id: str) -> httpx.Response:
        recorded = self.recorded_http("GET", f"/history/{self.recorded_id}")
        if recorded is None or prompt_id != self.prompt_id or not self.finished.is_set():
            self._resume()
            return httpx.Response(200, json={})
        return httpx.Response(200, json=json.loads(self._swap(json.dumps(recorded["response_json"]))))

    def _jobs(self, request: httpx.Request) -> httpx.Response:
        """The /api/jobs routes over the same run (see the module docstring)."""
        path, method = request.url.path, request.method
        if method == "POST":
            ids = json.loads(request.content)["job_ids"] if path == "/api/jobs/cancel" else [path.split("/")[3]]
            self.cancelled += ids
            return httpx.Response(200, json={"cancelled": self.prompt_id in ids and not self.finished.is_set()})
        if path == "/api/jobs":
            if request.url.params.get("status") == "in_progress,pending":
                running = json.loads(self._queue().content)["queue_running"]
                jobs = [{"id": item[1], "status": "in_progress", "priority": item[0]} for item in running]
            else:
                jobs = []
            return httpx.Response(200, json={"jobs": jobs, "pagination": {"offset": 0, "limit": None,
                                                                          "total": len(jobs), "has_more": False}})
        return self._job(path.rsplit("/", 1)[-1])

    def _job(self, job_id: str) -> httpx.Response:
        if job_id != self.prompt_id:
            return httpx.Response(404, json={"error": "Job not found"})
        entry = json.loads(self._history(job_id).content).get(job_id)
        if entry is None:
            return httpx.Response(200, json={"id": job_id, "status": "in_progress", "priority": 1})
        status = entry.get("status") or {}
        interrupted = any(name == "execution_interrupted" for name, _ in status.get("messages", []))
        state = "completed" if status.get("status_str") == "success" else "cancelled" if interrupted else "failed"
        return httpx.Response(200, json={"id": job_id, "status": state, "priority": 1, "outputs": entry["outputs"],
                                         "execution_status": status})

    def recorded_http(self, method: str, path: str) -> dict[str, Any] | None:
        return next((e for e in self.t["events"] if e["kind"] == "http" and e["method"] == method
                     and e["path"] == path), None)


def _recorded_prompt_id(transcript: dict[str, Any]) -> str | None:
    for event in transcript["events"]:
        if event["kind"] == "http" and event["path"] == "/prompt" and event["method"] == "POST":
            return (event.get("response_json") or {}).get("prompt_id")
    return None


def client_for(replay: Replay, tmp_path: Path, url: str = "http://comfy.test", **kwargs: Any) -> "ComfyClient":
    """A client whose HTTP and WebSocket both go to ``replay``."""
    from comfyui_gradio.comfy.client import ComfyClient

    http = httpx.Client(base_url=url, transport=replay.transport())
    return ComfyClient(url, http=http, connect_ws=replay.connect, output_dir=tmp_path, **kwargs)


def run_in_thread(fn: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread
