"""The backend: upload, submit, track, collect. Usable on its own as a Python API.

    client = ComfyClient("http://127.0.0.1:8188")
    result = client.run("workflows/txt2img.json", {"prompt": "a cat"})
    result.images[0].path, result.seeds, result.duration

Lifecycle (ComfyUI's own reference client, ``script_examples/websockets_api_example.py``):
open ``/ws?clientId=<new id>`` first, send the ``feature_flags`` handshake, then ``POST /prompt``
with that ``client_id`` and a client-made ``prompt_id`` (so messages that arrive before the HTTP
answer are already recognisable), follow the socket, read the outputs from ``/history/{id}``
(authoritative) and download them through ``/view`` into a per-job folder. If the socket drops it
is reopened with the same client id; if that fails, or the socket was refused in the first place,
the job is finished by polling ``/history`` and ``/queue`` (``tracker="http"`` does only that).

All httpx errors are translated here (``_request``); see ``errors`` for the exception tree.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import unquote

import httpx
from PIL import Image, UnidentifiedImageError

from .catalog import Catalog
from .errors import (ComfyGradioError, ExecutionFailed, InputError, JobCancelled, JobTimeout, PromptRejected,
                     ProtocolError, ServerError, ServerUnavailable)
from .events import (Cached, JobEvent, MessageType, NodeStarted, OutputReady, Preview, PreviewFrame, Progress,
                     Queued, Started, TextFrame, WireMessage, parse_binary, parse_text)
from .prepare import PreparedPrompt, flat_target, prepare
from .results import OutputFile, RunResult, kind_of
from .schema import UPLOAD_CLASSES, Param, TabSpec, load_tab
from .transport import WebSocketClosed, WebSocketConnection, WebSocketConnector, connect_websocket

__all__ = ["ComfyClient", "Job", "JobHooks", "LocalFile", "local_uploads"]

log = logging.getLogger(__name__)

UPLOAD_SUBFOLDER = "comfyui-gradio"
_CANCEL = object()  # put into a job's inbox by Job.cancel()


@dataclass(frozen=True)
class _Disconnected:
    reason: str
    socket: object  # which connection ended: a replaced socket's end is ignored


@dataclass(frozen=True)
class LocalFile:
    """An image given for a run, kept so it can be uploaded again to another server."""

    data: bytes
    filename: str
    label: str
    kind: str = "image"  # image, video or audio


@dataclass
class JobHooks:
    """Optional callbacks a pool gives a job.

    ``failover(job)`` returns another server's client when this one is lost (None: give up);
    ``finished(job, ok)`` is called once when the job ends; ``retry_running`` allows one
    resubmission of a job whose server died while running it.
    """

    failover: Callable[["Job"], "ComfyClient | None"] | None = None
    finished: Callable[["Job", bool], None] | None = None
    retry_running: bool = False


def local_uploads(tab: TabSpec, values: Mapping[str, Any]) -> dict[str, LocalFile]:
    """The local images among ``values`` (paths, bytes, PIL images), by value key."""
    uploads = {}
    for key, value in values.items():
        param = tab.param(key)
        if value is None or not _is_upload_target(tab, key, param):
            continue
        label = param.label if param else key
        local = _local_file(value, label)
        if local is not None:
            uploads[key] = LocalFile(local[0], local[1], label, param.kind if param else "image")
    return uploads


class ComfyClient:
    """One ComfyUI server. Thread-safe; share one instance between all jobs for that server.

    ``http`` may be injected (e.g. with ``transport=httpx.MockTransport(...)``); it is closed by
    ``close()`` only if this client created it.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8188",
        *,
        http: httpx.Client | None = None,
        connect_ws: WebSocketConnector = connect_websocket,
        headers: Mapping[str, str] | None = None,
        output_dir: Path | str | None = None,
        tracker: str = "websocket",
        timeout: float = 10.0,
        poll_interval: float = 0.5,
        max_upload_bytes: int | None = None,
        max_upload_pixels: int | None = None,
    ) -> None:
        if tracker not in ("websocket", "http"):
            raise ValueError("tracker must be 'websocket' or 'http'")
        self.url, self.headers = _without_credentials(url.rstrip("/"), dict(headers or {}))
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)
        self.connect_ws = connect_ws
        self.output_dir = Path(output_dir) if output_dir else Path.cwd() / "outputs"
        self.tracker = tracker
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._uploaded: dict[str, str] = {}  # sha256 -> server-side name
        self._lock = threading.Lock()
        self._max_upload: int | None = None
        self._catalog: Catalog | None = None
        self._tabs: dict[tuple[Any, ...], TabSpec] = {}
        self.max_upload_bytes = max_upload_bytes  # our own limit, on top of the server's
        self.max_upload_pixels = max_upload_pixels

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    # ---- plain HTTP API -------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; translate every httpx failure and any 5xx into our errors."""
        try:
            response = self.http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailable(self.url, str(exc) or type(exc).__name__) from exc
        except httpx.TimeoutException as exc:
            raise ServerError(f"ComfyUI at {self.url} did not answer {method} {path} in time; it may be "
                              "overloaded. Try again, or raise the timeout.") from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path} to ComfyUI at {self.url} failed: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ServerError(f"ComfyUI at {self.url} answered {method} {path} with HTTP "
                              f"{response.status_code}{_auth_hint(response.status_code)}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise ProtocolError(f"ComfyUI answered {method} {path} with HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ProtocolError(f"ComfyUI answered {method} {path} with something that is not JSON") from exc

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/system_stats")

    def catalog(self) -> Catalog:
        return Catalog(self._json("GET", "/object_info"))

    def queue_state(self) -> dict[str, list[Any]]:
        return self._json("GET", "/queue")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a finished prompt, or None while it is unknown or unfinished."""
        body = self._json("GET", f"/history/{prompt_id}")
        return body.get(prompt_id) if isinstance(body, dict) else None

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` if it is the one running (ComfyUI ignores any other id)."""
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def delete_from_queue(self, prompt_ids: list[str]) -> None:
        """Remove waiting prompts; ComfyUI leaves the running one alone."""
        self._request("POST", "/queue", json={"delete": prompt_ids})

    def download(self, filename: str, subfolder: str, kind: str) -> bytes:
        response = self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": kind})
        if response.status_code != 200:
            raise ServerError(f"ComfyUI could not send the output file {filename!r} (HTTP {response.status_code})")
        return response.content

    def max_upload_size(self) -> int:
        """The server's upload limit in bytes (``GET /features``; ComfyUI's default is 100 MiB)."""
        if self._max_upload is None:
            try:
                self._max_upload = int(self._json("GET", "/features").get("max_upload_size", 100 * 2**20))
            except ProtocolError:  # an older server without /features
                self._max_upload = 100 * 2**20
        return self._max_upload

    # ---- uploads --------------------------------------------------------------------------

    def upload_image(self, data: bytes, *, field: str = "image", filename: str = "image.png",
                     kind: str = "image") -> str:
        """Upload a file once per content; return the name to give the loader node.

        ComfyUI takes images, videos and audio through ``/upload/image`` (as its own frontend does);
        images are decoded with Pillow first, so a non-image is refused with a clear message.
        """
        limit = min(self.max_upload_size(), self.max_upload_bytes or 2**63)
        _check_size(data, field, limit)
        if kind == "image":
            _check_image(data, field, self.max_upload_pixels)
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest in self._uploaded:
                return self._uploaded[digest]
        name = f"{digest[:24]}{Path(filename).suffix.lower() or '.png'}"
        response = self._request("POST", "/upload/image",
                                 files={"image": (name, data)},
                                 data={"subfolder": UPLOAD_SUBFOLDER, "type": "input", "overwrite": "true"})
        if response.status_code != 200:
            raise ServerError(f"ComfyUI refused the upload of {field!r} (HTTP {response.status_code})")
        body = response.json()
        server_name = f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]
        with self._lock:
            self._uploaded[digest] = server_name
        return server_name

    def upload_all(self, uploads: dict[str, "LocalFile"]) -> dict[str, str]:
        """Upload every local file; return the server-side name for each value key."""
        return {key: self.upload_image(f.data, field=f.label, filename=f.filename, kind=f.kind)
                for key, f in uploads.items()}

    # ---- running ----------------------------------------------------------------------------

    def load(self, workflow: TabSpec | Path | str) -> TabSpec:
        """A TabSpec from a workflow path (schema beside it, if any) or an existing TabSpec.

        Loaded tabs are kept while their files are unchanged; the server's catalogue is read once.
        """
        if isinstance(workflow, TabSpec):
            return workflow
        path = Path(workflow)
        key = (path.resolve(), *(_mtime(p) for p in (path, path.with_suffix(".yaml"), path.with_suffix(".yml"))))
        with self._lock:
            cached = self._tabs.get(key)
        if cached is None:
            cached = load_tab(path, self._cached_catalog())
            with self._lock:
                self._tabs[key] = cached
        return cached

    def _cached_catalog(self) -> Catalog | None:
        if self._catalog is None:
            try:
                self._catalog = self.catalog()
            except ServerError:
                return None
        return self._catalog

    def submit(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None,
               *, timeout: float | None = None, output_dir: Path | None = None,
               hooks: "JobHooks | None" = None, prompt_id: str | None = None) -> "Job":
        """Upload inputs, queue the prompt and return its ``Job`` (tracking runs in the background).

        Outputs go to ``<output_dir>/<prompt_id>/`` (``output_dir`` defaults to the client's).
        """
        tab = self.load(workflow)
        uploads = local_uploads(tab, values or {})
        prepared = prepare(tab, {**(values or {}), **self.upload_all(uploads)})
        job = Job(self, tab, prepared, timeout=timeout, output_dir=output_dir or self.output_dir, uploads=uploads,
                  hooks=hooks, prompt_id=prompt_id)
        job._start()
        return job

    def run(self, workflow: TabSpec | Path | str, values: Mapping[str, Any] | None = None,
            *, timeout: float | None = None) -> RunResult:
        """Run a workflow to the end; raise a ``ComfyGradioError`` if it does not succeed."""
        return self.submit(workflow, values, timeout=timeout).result()

    def _post_prompt(self, tab: TabSpec, prepared: PreparedPrompt, prompt_id: str, client_id: str) -> dict[str, Any]:
        body = {"prompt": prepared.prompt, "client_id": client_id, "prompt_id": prompt_id}
        response = self._request("POST", "/prompt", json=body)
        try:
            answer = response.json()
        except ValueError as exc:
            raise ProtocolError(f"ComfyUI answered POST /prompt with HTTP {response.status_code} and no JSON") from exc
        if response.status_code != 200:
            raise rejection(tab, answer)
        if answer.get("node_errors"):
            log.warning("ComfyUI accepted prompt %s but skipped outputs with errors: %s", prompt_id,
                        rejection(tab, answer))
        return answer


def rejection(tab: TabSpec, body: dict[str, Any]) -> PromptRejected:
    """Turn a /prompt error body into an error that names form fields, not node ids."""
    error = body.get("error") or {}
    node_errors = body.get("node_errors") or {}
    field_errors: dict[str, str] = {}
    lines: list[str] = []
    for node_id, entry in node_errors.items():
        for item in entry.get("errors", []):
            field, line = _describe_node_error(tab, str(node_id), item)
            lines.append(line)
            if field:
                field_errors[field] = line
    if not lines:
        lines.append(_describe_prompt_error(error if isinstance(error, dict) else {"message": str(error)}))
    return PromptRejected("\n".join(lines), node_errors=node_errors, field_errors=field_errors,
                          error_type=str(error.get("type", "")) if isinstance(error, dict) else "")


def _describe_node_error(tab: TabSpec, node_id: str, item: dict[str, Any]) -> tuple[str | None, str]:
    input_name = (item.get("extra_info") or {}).get("input_name")
    message = str(item.get("message", "invalid value"))
    param = _param_for(tab, node_id, input_name)
    if item.get("type") == "value_not_in_list" or not message.lower().startswith("value"):
        message = f"{message}: {item.get('details')}" if item.get("details") else message
    if param is not None:
        return param.name, f"{param.label}: {message[:1].lower()}{message[1:]}"
    title = tab.workflow.title(node_id) if node_id in tab.workflow.nodes else f"node {node_id}"
    where = f"{title} (node {node_id})" + (f", input {input_name!r}" if input_name else "")
    return None, f"{where}: {message}"


def _param_for(tab: TabSpec, node_id: str, input_name: str | None) -> Param | None:
    return next((p for p in tab.params if (node_id, input_name) in p.targets), None)


def _describe_prompt_error(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "the prompt was rejected")
    details = f" ({error['details']})" if error.get("details") else ""
    hint = {
        "invalid_prompt": " Check that the workflow is in API format and that its custom nodes are installed.",
        "prompt_no_outputs": " The workflow needs an output node such as SaveImage.",
    }.get(str(error.get("type")), "")
    return f"ComfyUI rejected the workflow: {message}{details}.{hint}".replace("..", ".")


class Job:
    """One submitted prompt. Iterate ``events()`` for progress; ``result()`` waits for the outputs.

    A background thread follows the server and feeds both; ``cancel()`` may be called from any thread.
    """

    def __init__(self, client: ComfyClient, tab: TabSpec, prepared: PreparedPrompt, *, timeout: float | None,
                 output_dir: Path, uploads: dict[str, LocalFile] | None = None,
                 hooks: JobHooks | None = None, prompt_id: str | None = None) -> None:
        self.client = client
        self.uploads = uploads or {}
        self.hooks = hooks or JobHooks()
        self._retried = False
        self.tab = tab
        self.prepared = prepared
        self.prompt_id = prompt_id or str(uuid.uuid4())
        self.client_id = uuid.uuid4().hex
        self.job_dir = output_dir / self.prompt_id
        self._deadline = time.monotonic() + timeout if timeout else None
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._events: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self._callbacks: list[Callable[["Job"], None]] = []
        self._callbacks_lock = threading.Lock()
        self._result: RunResult | None = None
        self._error: ComfyGradioError | None = None
        self._ws: WebSocketConnection | None = None
        self._started = False
        self._cancelled = False
        self._number: int | None = None
        self._submitted_at = 0.0
        self.started_at: float | None = None  # time.monotonic() when the server began running it
        self._last_queue_check = 0.0

    # ---- public -----------------------------------------------------------------------------

    def events(self, idle: float | None = None) -> Iterator[JobEvent | None]:
        """Yield progress events until the job ends (then ``result()`` returns or raises).

        With ``idle``, also yield None after every ``idle`` seconds without an event, so a
        consumer (a Gradio generator) gets the chance to stop while the job waits in a queue.
        """
        while True:
            try:
                event = self._events.get(timeout=idle)
            except queue.Empty:
                yield None
                continue
            if event is None:
                self._events.put(None)  # a second iteration ends at once too
                return
            yield event

    def result(self, timeout: float | None = None) -> RunResult:
        if not self._done.wait(timeout):
            raise JobTimeout(f"The run {self.prompt_id} is still going after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> ComfyGradioError | None:
        """Why the job failed (None while running or after success)."""
        return self._error if self._done.is_set() else None

    @property
    def was_started(self) -> bool:
        return self._started

    def add_done_callback(self, callback: Callable[["Job"], None]) -> None:
        """Call ``callback(job)`` once the job has ended (at once if it already has)."""
        with self._callbacks_lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _run_callbacks(self) -> None:
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # one listener's bug must not hide the result from the others
                log.exception("A done-callback of job %s failed", self.prompt_id)

    def cancel(self) -> None:
        """Stop this job only: remove it from the queue if waiting, interrupt it if running."""
        if self._done.is_set():
            return
        self._cancelled = True
        try:
            self.client.delete_from_queue([self.prompt_id])  # first: a waiting prompt can't start afterwards
            self.client.interrupt(self.prompt_id)
        finally:
            self._inbox.put(_CANCEL)

    # ---- start ------------------------------------------------------------------------------

    def _start(self) -> None:
        self._submitted_at = time.monotonic()
        self._post()
        threading.Thread(target=self._follow, name=f"job-{self.prompt_id[:8]}", daemon=True).start()

    def _post(self) -> None:
        """Open the socket (if tracking by WebSocket), then queue the prompt on ``self.client``."""
        if self.client.tracker == "websocket":
            self._open_socket()
        try:
            answer = self.client._post_prompt(self.tab, self.prepared, self.prompt_id, self.client_id)
        except BaseException:
            self._close_socket()
            raise
        self._number = answer.get("number")

    def _open_socket(self) -> bool:
        scheme_url = self.client.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        try:
            ws = self.client.connect_ws(f"{scheme_url}/ws?clientId={self.client_id}",
                                        headers=self.client.headers, timeout=self.client.timeout)
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        except (ServerUnavailable, WebSocketClosed) as exc:
            log.warning("WebSocket to %s unavailable (%s); following the job over HTTP", self.client.url, exc)
            return False
        self._ws = ws
        threading.Thread(target=self._read_socket, args=(ws,), name=f"ws-{self.client_id[:8]}", daemon=True).start()
        return True

    def _read_socket(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                frame = ws.recv()
                self._inbox.put(parse_text(frame) if isinstance(frame, str) else parse_binary(frame))
            except WebSocketClosed as exc:
                self._inbox.put(_Disconnected(str(exc), ws))
                return
            except ProtocolError as exc:
                log.warning("Ignoring an unreadable message from ComfyUI: %s", exc)

    def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()

    # ---- follow -----------------------------------------------------------------------------

    def _follow(self) -> None:
        try:
            self._follow_to_end()
            self._result = self._collect()
        except ComfyGradioError as exc:
            self._error = exc
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("Job %s failed unexpectedly", self.prompt_id)
            self._error = ProtocolError(f"Unexpected error while following the run: {exc}")
        finally:
            self._close_socket()
            with self._callbacks_lock:
                self._done.set()
            if self.hooks.finished:
                self.hooks.finished(self, self._error is None)
            self._run_callbacks()
            self._events.put(None)

    def _follow_to_end(self) -> None:
        """Follow the prompt until it finishes, moving it to another server if this one is lost."""
        while True:
            try:
                self._emit_position()
                if not (self._ws is not None and self._follow_socket()):
                    self._follow_http()
                return
            except ServerUnavailable as exc:
                self._move(exc)

    def _move(self, lost: ServerUnavailable) -> None:
        """Resubmit to another server: always while waiting, once while running if allowed."""
        lost_url = self.client.url
        if self._started and not (self.hooks.retry_running and not self._retried):
            raise ServerError(f"ComfyUI at {lost_url} stopped responding while running this job; nothing "
                              "was saved. Run it again.") from lost
        other = self.hooks.failover(self) if self.hooks.failover else None
        if other is None:
            raise lost
        log.warning("ComfyUI at %s is gone; moving prompt %s to %s", lost_url, self.prompt_id, other.url)
        self._retried = self._retried or self._started
        self._started = False
        self._close_socket()
        self._drain_inbox()
        self.client = other
        if other.upload_all(self.uploads) != {k: self.prepared.values[k] for k in self.uploads}:
            raise ServerError(f"ComfyUI at {other.url} stored the uploaded images under other names; run it again.")
        self._post()

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item is _CANCEL:
                self._inbox.put(_CANCEL)
                return

    def _next(self, wait: float | None) -> Any:
        """The next inbox item, honouring the job deadline; ``queue.Empty`` after ``wait`` seconds."""
        remaining = None if self._deadline is None else self._deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            self._give_up()
        limit = min(x for x in (wait, remaining) if x is not None) if (wait or remaining) else None
        return self._inbox.get(timeout=limit)

    def _give_up(self) -> None:
        self.cancel()
        raise JobTimeout(f"The run took longer than allowed and was cancelled (prompt {self.prompt_id}).")

    def _follow_socket(self) -> bool:
        """Follow the WebSocket; True when the prompt finished, False to continue over HTTP."""
        while True:
            try:
                item = self._next(None)
            except queue.Empty:
                continue
            if item is _CANCEL:
                if not self._started:
                    raise JobCancelled("Cancelled before it started.")
                continue
            if isinstance(item, _Disconnected):
                if item.socket is not self._ws:
                    continue
                if not self._reconnect(item.reason):
                    return False
                if self.client.history(self.prompt_id) is not None:
                    return True
                continue
            if self._handle(item):
                return True

    def _reconnect(self, reason: str) -> bool:
        self._ws = None
        log.warning("WebSocket for prompt %s dropped (%s); reconnecting", self.prompt_id, reason)
        for delay in (0.1, 0.5, 1.5):
            time.sleep(delay)
            if self._open_socket():
                return True
        return False

    def _handle(self, item: WireMessage | PreviewFrame | TextFrame | None) -> bool:
        """Turn one wire message into job events; True when this prompt has finished."""
        if isinstance(item, PreviewFrame):
            if item.prompt_id in (None, self.prompt_id):
                self._events.put(Preview(item.image, item.mime, item.node_id))
            return False
        if isinstance(item, TextFrame):
            self._events.put(OutputReady(item.node_id, self._title(item.node_id), {"text": [item.text]}))
            return False
        if item is None:
            return False
        if item.type is MessageType.STATUS:
            if not self._started:
                self._emit_position(throttle=0.25)
            return False
        if item.prompt_id not in (None, self.prompt_id):
            return False
        return self._handle_own(item)

    def _handle_own(self, item: WireMessage) -> bool:
        data = item.data
        if item.type is MessageType.EXECUTION_START:
            self._mark_started()
        elif item.type is MessageType.EXECUTION_CACHED and data.get("nodes"):
            self._events.put(Cached(tuple(str(n) for n in data["nodes"])))
        elif item.type is MessageType.EXECUTING:
            if item.node is None:
                return item.prompt_id == self.prompt_id
            self._mark_started()
            self._events.put(NodeStarted(item.node, self._title(item.node)))
        elif item.type is MessageType.PROGRESS and item.node:
            self._events.put(Progress(item.node, self._title(item.node), int(data.get("value", 0)),
                                      int(data.get("max", 0))))
        elif item.type is MessageType.EXECUTED and item.node:
            self._events.put(OutputReady(item.node, self._title(item.node), dict(data.get("output") or {})))
        elif item.type is MessageType.EXECUTION_ERROR:
            raise self._failure(data)
        elif item.type is MessageType.EXECUTION_INTERRUPTED:
            raise self._interrupted(data)
        return False

    def _mark_started(self) -> None:
        if not self._started:
            self._started = True
            self.started_at = time.monotonic()
            self._events.put(Started())

    def _follow_http(self) -> None:
        """Poll /history and /queue until the prompt ends (the fallback tracker)."""
        missing = 0
        while True:
            entry = self.client.history(self.prompt_id)
            if entry is not None:
                return self._check_history(entry)
            where = self._queue_place()
            if where is None:
                missing += 1
                if self._cancelled or missing >= 3:
                    raise JobCancelled("The run is no longer on the server's queue (it was cancelled, "
                                       "or ComfyUI restarted). Run it again.")
            else:
                missing = 0
            try:
                item = self._next(self.client.poll_interval)
            except queue.Empty:
                continue
            if item is _CANCEL and not self._started:
                raise JobCancelled("Cancelled before it started.")

    def _queue_place(self) -> str | None:
        state = self.client.queue_state()
        if any(item[1] == self.prompt_id for item in state.get("queue_running", [])):
            self._mark_started()
            return "running"
        pending = state.get("queue_pending", [])
        if any(item[1] == self.prompt_id for item in pending):
            self._events.put(Queued(self._position(state)))
            return "pending"
        return None

    def _emit_position(self, throttle: float = 0.0) -> None:
        now = time.monotonic()
        if now - self._last_queue_check < throttle:
            return
        self._last_queue_check = now
        try:
            position = self._position(self.client.queue_state())
        except ServerError:
            return
        if position is not None and not self._started:
            self._events.put(Queued(position))

    def _position(self, state: dict[str, list[Any]]) -> int | None:
        """Prompts ahead of this one: every running one plus waiting ones with a lower number."""
        pending = state.get("queue_pending", [])
        mine = next((item[0] for item in pending if item[1] == self.prompt_id), None)
        if mine is None:
            return None
        return len(state.get("queue_running", [])) + sum(1 for item in pending if item[0] < mine)

    def _check_history(self, entry: dict[str, Any]) -> None:
        status = entry.get("status") or {}
        if status.get("status_str") == "success" or status.get("completed"):
            return
        for name, data in status.get("messages", []):
            if name == "execution_error":
                raise self._failure(data)
            if name == "execution_interrupted":
                raise self._interrupted(data)
        raise ExecutionFailed("?", "the workflow", f"ComfyUI reported status {status.get('status_str')!r}")

    def _failure(self, data: dict[str, Any]) -> ExecutionFailed:
        node_id = str(data.get("node_id", "?"))
        return ExecutionFailed(node_id, self._title(node_id), str(data.get("exception_message", "")),
                               str(data.get("exception_type", "")))

    def _interrupted(self, data: dict[str, Any]) -> JobCancelled:
        node_id = str(data.get("node_id", ""))
        at = f" at {self._title(node_id)}" if node_id else ""
        who = "by you" if self._cancelled else "on the server"
        return JobCancelled(f"Cancelled {who}{at}; nothing was saved from this run.")

    def _title(self, node_id: str) -> str:
        node = self.prepared.prompt.get(node_id)
        if node is None:
            return f"node {node_id}"
        return str((node.get("_meta") or {}).get("title") or node.get("class_type"))

    # ---- collect ----------------------------------------------------------------------------

    def _collect(self) -> RunResult:
        entry = self._history_with_retry()
        self._check_history(entry)
        wanted = {o.node_id: o.name for o in self.tab.outputs}
        files: list[OutputFile] = []
        for node_id, output in (entry.get("outputs") or {}).items():
            if wanted and node_id not in wanted:
                continue
            files += self._save_outputs(node_id, wanted.get(node_id) or self._title(node_id), output)
        return RunResult(
            prompt_id=self.prompt_id, status="success", duration=time.monotonic() - self._submitted_at,
            seeds=dict(self.prepared.seeds), values=dict(self.prepared.values), outputs=files,
            server=self.client.url, prompt=self.prepared.prompt,
            queued_for=(self.started_at or self._submitted_at) - self._submitted_at)

    def _history_with_retry(self) -> dict[str, Any]:
        for delay in (0.0, 0.05, 0.2, 0.5, 1.0):
            time.sleep(delay)
            entry = self.client.history(self.prompt_id)
            if entry is not None:
                return entry
        raise ProtocolError(f"ComfyUI finished prompt {self.prompt_id} but has no history for it")

    def _save_outputs(self, node_id: str, name: str, output: dict[str, Any]) -> list[OutputFile]:
        files = []
        for key, items in output.items():
            if key == "text":
                files += [self._save_text(node_id, name, str(text), i) for i, text in enumerate(_listed(items))]
                continue
            for item in _listed(items):
                if isinstance(item, dict) and "filename" in item:
                    files.append(self._save_file(node_id, name, key, item))
        return files

    def _save_file(self, node_id: str, name: str, key: str, item: dict[str, Any]) -> OutputFile:
        data = self.client.download(str(item["filename"]), str(item.get("subfolder", "")),
                                    str(item.get("type", "output")))
        path = self._local_path(node_id, str(item["filename"]))
        path.write_bytes(data)
        return OutputFile(path, kind_of(path.name, key), node_id, name, preview=item.get("type") == "temp")

    def _save_text(self, node_id: str, name: str, text: str, index: int) -> OutputFile:
        path = self._local_path(node_id, f"text_{index}.txt")
        path.write_text(text, encoding="utf-8")
        return OutputFile(path, "text", node_id, name, text=text)

    def _local_path(self, node_id: str, server_name: str) -> Path:
        """A path inside this job's folder; the server's name is never trusted as a path."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        base = Path(server_name.replace("\\", "/")).name
        safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in base).lstrip(".") or "output"
        path = self.job_dir / f"{_slug(node_id)}_{safe}"
        counter = 1
        while path.exists():
            path = self.job_dir / f"{_slug(node_id)}_{counter}_{safe}"
            counter += 1
        return path


def _without_credentials(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Move ``user:password@`` out of a URL into a Basic auth header, so the URL can be shown."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, headers
    user, _, password = parsed.userinfo.decode().partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    headers.setdefault("Authorization", f"Basic {token}")
    return str(parsed.copy_with(username=None, password=None)).rstrip("/"), headers


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _listed(items: Any) -> list[Any]:
    return items if isinstance(items, list) else [items]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _auth_hint(status: int) -> str:
    if status in (401, 403):
        return ("; the server (or a proxy in front of it) wants credentials: set COMFYUI_TOKEN, COMFYUI_HEADERS "
                "or COMFYUI_COOKIES")
    return "; see the ComfyUI server's log"


def _is_upload_target(tab: TabSpec, key: str, param: Param | None) -> bool:
    if param is not None:
        return param.is_upload
    target = flat_target(key)
    if not target or target[0] not in tab.workflow.nodes:
        return False
    return (tab.workflow.nodes[target[0]]["class_type"], target[1]) in UPLOAD_CLASSES


def _local_file(value: Any, label: str) -> tuple[bytes, str] | None:
    """(bytes, filename) of a local file value, or None if ``value`` already names a server file."""
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue(), "image.png"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), "image.png"
    if isinstance(value, dict) and value.get("path"):  # a Gradio FileData
        value = value["path"]
    path = Path(str(value))
    if path.is_file():
        return path.read_bytes(), path.name
    if isinstance(value, Path) or path.is_absolute() or str(value).startswith("."):
        raise InputError(label, f"the file {str(value)!r} does not exist")
    return None  # a name of a file already on the server, e.g. "example.png"


def _check_size(data: bytes, label: str, limit: int) -> None:
    if len(data) > limit:
        raise InputError(label, f"the file is {len(data) / 2**20:.1f} MB; at most {limit / 2**20:.0f} MB "
                                "is accepted. Use a smaller file.")


def _check_image(data: bytes, label: str, max_pixels: int | None) -> None:
    """Refuse files Pillow cannot decode, and images with too many pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(label, "this file is not an image (PNG, JPEG, WebP, ...) that can be read; "
                                "choose an image file") from exc
    if max_pixels and size[0] * size[1] > max_pixels:
        raise InputError(label, f"the image is {size[0]}×{size[1]} pixels; at most {max_pixels / 1e6:.0f} "
                                "megapixels are accepted. Use a smaller image.")
