"""The one seam to a ComfyUI server: HTTP calls, uploads, submitting prompts. A Python API on its own.

    client = ComfyClient("http://127.0.0.1:8188")
    result = client.run("workflows/txt2img.json", {"prompt": "a cat"})
    result.images[0].path, result.seeds, result.duration

``submit`` returns a ``job.Job`` that follows the prompt to its end; ``attach`` returns one for a prompt
queued earlier. All httpx errors are translated here (``_request``); see ``errors`` for the exception tree.

What the server offers is read once (``features``): a newer ComfyUI's ``/api/jobs`` then serves the
looks, ``attach`` and cancelling (``jobs_api``), ``/history`` and ``/queue`` where it is absent (0.3.64).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import unquote

import httpx
from PIL import Image, UnidentifiedImageError

from ..forms.catalog import Catalog
from ..errors import InputError, PromptRejected, ProtocolError, ServerError, ServerUnavailable
from .batch import Batch, BatchItem
from .hub import SocketHub
from .job import Job, JobHooks
from .jobs_api import ServerFeatures, history_entry, queue_state
from ..forms.prepare import PreparedPrompt, flat_target, prepare
from .results import RunResult
from ..forms.loader import load_tab
from ..forms.schema import Param, TabSpec
from ..forms.vocabulary import UPLOAD_CLASSES
from .server import Tracker
from .sources import WorkflowSource, WorkflowSources
from .transport import WebSocketConnector, connect_websocket

__all__ = ["ComfyClient", "LocalFile", "local_uploads"]

log = logging.getLogger(__name__)

UPLOAD_SUBFOLDER = "comfyui-gradio"
UNKNOWN_PROMPT = "ComfyUI no longer knows this run (it restarted?); run it again."


@dataclass(frozen=True)
class LocalFile:
    """An image given for a run, kept so it can be uploaded again to another server."""

    data: bytes
    filename: str
    label: str
    kind: str = "image"  # image, video or audio


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

    kind = "comfyui"  # the backend kind (backend.KINDS)

    def __init__(
        self,
        url: str = "http://127.0.0.1:8188",
        *,
        http: httpx.Client | None = None,
        connect_ws: WebSocketConnector = connect_websocket,
        headers: Mapping[str, str] | None = None,
        output_dir: Path | str | None = None,
        tracker: Tracker = "websocket",
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
        self.tracker: Tracker = tracker
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._uploaded: dict[str, str] = {}  # sha256 -> server-side name
        self._lock = threading.Lock()
        self._features: ServerFeatures | None = None
        self._catalog: Catalog | None = None
        self._tabs: dict[tuple[Any, ...], TabSpec] = {}
        self.max_upload_bytes = max_upload_bytes  # our own limit, on top of the server's
        self.max_upload_pixels = max_upload_pixels
        self.sources = WorkflowSources()  # where URLs, dicts and RunningHub ids become files
        self._hub: SocketHub | None = None
        self._hub_lock = threading.Lock()

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._hub_lock:
            hub, self._hub = self._hub, None
        if hub is not None:
            hub.close()
        if self._own_http:
            self.http.close()

    def socket_hub(self) -> SocketHub:
        """The one WebSocket to this server that every job follows its prompt on (opened at first use)."""
        with self._hub_lock:
            if self._hub is None:
                self._hub = SocketHub(self)
            return self._hub

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
        return self._body(self._request(method, path, **kwargs), method, path)

    @staticmethod
    def _body(response: httpx.Response, method: str, path: str) -> Any:
        """A 200 answer's JSON; ``ProtocolError`` for any other status or a body that is not JSON."""
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

    def features(self) -> ServerFeatures:
        """What the server offers (its version, feature flags, ``/api/jobs``), read once.

        A server that cannot be reached raises ``ServerUnavailable`` and is asked again next time.
        """
        if self._features is None:
            self._features = ServerFeatures(self._version(), self._flags(), self._answers_jobs())
            log.info("ComfyUI at %s: version %s, /api/jobs %s", self.url, self._features.version or "unknown",
                     "used" if self._features.jobs_api else "absent")
        return self._features

    def _version(self) -> str:
        try:
            return str((self.system_stats().get("system") or {}).get("comfyui_version") or "")
        except ProtocolError:
            return ""

    def _flags(self) -> dict[str, Any]:
        try:
            flags = self._json("GET", "/features")
        except ProtocolError:  # an older server without /features
            return {}
        return flags if isinstance(flags, dict) else {}

    def _answers_jobs(self) -> bool:
        """Whether ``GET /api/jobs`` answers with a jobs list (0.3.64: 404). A proxy that refuses only
        this path (401, 403, 5xx) leaves the 0.3.64 routes in use."""
        try:
            response = self._request("GET", "/api/jobs", params={"limit": 1})
        except ServerUnavailable:
            raise
        except ServerError as exc:
            log.warning("Not using /api/jobs of ComfyUI at %s: %s", self.url, exc)
            return False
        try:
            return response.status_code == 200 and isinstance(response.json().get("jobs"), list)
        except (ValueError, AttributeError):
            return False

    def _job(self, prompt_id: str) -> dict[str, Any] | None:
        """``GET /api/jobs/{id}``: the job, or None when the server does not know it."""
        path = f"/api/jobs/{prompt_id}"
        response = self._request("GET", path)
        return None if response.status_code == 404 else self._body(response, "GET", path)

    def queue_state(self) -> dict[str, list[Any]]:
        """Running and waiting prompts, as ``GET /queue`` gives them (items start ``[number, prompt_id]``)."""
        if self.features().jobs_api:
            with self._jobs_route():
                body = self._json("GET", "/api/jobs", params={"status": "in_progress,pending"})
                if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
                    raise ProtocolError(f"ComfyUI at {self.url} answered GET /api/jobs without a jobs list")
                return queue_state(body["jobs"])
        return self._json("GET", "/queue")

    @contextlib.contextmanager
    def _jobs_route(self) -> Iterator[None]:
        """An ``/api/jobs`` call; if it answers wrongly (another server behind the address now, a proxy in
        front), what the server offers is read again at the next call."""
        try:
            yield
        except ProtocolError:
            self._features = None
            raise

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a finished prompt, or None while it is unknown or unfinished."""
        if self.features().jobs_api:
            with self._jobs_route():
                job = self._job(prompt_id)
            return None if job is None else history_entry(job)
        body = self._json("GET", f"/history/{prompt_id}")
        return body.get(prompt_id) if isinstance(body, dict) else None

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` if it is the one running (ComfyUI ignores any other id); with
        ``/api/jobs``, cancel it whether running or waiting."""
        if self.features().jobs_api:
            self._request("POST", f"/api/jobs/{prompt_id}/cancel")
            return
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def delete_from_queue(self, prompt_ids: list[str]) -> None:
        """Remove waiting prompts; ComfyUI leaves the running one alone, except through ``/api/jobs``,
        whose cancel also interrupts it (``comfy_execution/jobs.py`` ``cancel_job``)."""
        if self.features().jobs_api:
            self._request("POST", "/api/jobs/cancel", json={"job_ids": prompt_ids})
            return
        self._request("POST", "/queue", json={"delete": prompt_ids})

    def download(self, filename: str, subfolder: str, kind: str) -> bytes:
        response = self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder, "type": kind})
        if response.status_code != 200:
            raise ServerError(f"ComfyUI could not send the output file {filename!r} (HTTP {response.status_code})")
        return response.content

    def max_upload_size(self) -> int:
        """The server's upload limit in bytes (``GET /features``; ComfyUI's default is 100 MiB)."""
        return int(self.features().flags.get("max_upload_size", 100 * 2**20))

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

    def upload_all(self, uploads: Mapping[str, "LocalFile"]) -> dict[str, str]:
        """Upload every local file; return the server-side name for each value key."""
        return {key: self.upload_image(f.data, field=f.label, filename=f.filename, kind=f.kind)
                for key, f in uploads.items()}

    # ---- running ----------------------------------------------------------------------------

    def load(self, workflow: TabSpec | WorkflowSource) -> TabSpec:
        """A TabSpec from a workflow path (schema beside it, if any), a dict (API or UI format), an http(s)
        URL, a RunningHub workflow id (``sources``), or an existing TabSpec.

        Loaded tabs are kept while their files are unchanged; the server's catalogue is read once.
        """
        if isinstance(workflow, TabSpec):
            return workflow
        path = self.sources.path_for(workflow)
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

    def submit(self, workflow: TabSpec | WorkflowSource, values: Mapping[str, Any] | None = None,
               *, timeout: float | None = None, output_dir: Path | None = None,
               hooks: "JobHooks | None" = None, prompt_id: str | None = None, logs: bool = False) -> "Job":
        """Upload inputs, queue the prompt and return its ``Job`` (tracking runs in the background).

        Outputs go to ``<output_dir>/<prompt_id>/`` (``output_dir`` defaults to the client's). With
        ``logs``, the job's events include ``LogLines``: the server's whole log while it runs.
        """
        tab = self.load(workflow)
        uploads = local_uploads(tab, values or {})
        prepared = prepare(tab, {**(values or {}), **self.upload_all(uploads)})
        job = Job(self, tab, prepared, timeout=timeout, output_dir=output_dir or self.output_dir, uploads=uploads,
                  hooks=hooks, prompt_id=prompt_id, logs=logs)
        job._start()
        return job

    def attach(self, workflow: TabSpec | Path | str, prompt_id: str, prepared: PreparedPrompt,
               *, timeout: float | None = None, output_dir: Path | None = None) -> "Job":
        """Follow a prompt queued earlier (say by an app process that has since stopped) without posting it.

        A finished prompt is collected at once, a queued or running one is followed to its end (by polling:
        its WebSocket messages go to the client id that posted it). ``prepared`` is what was sent (its
        ``prompt`` names the nodes of the outputs). Raise ``ServerError`` if the server does not know the
        prompt: ComfyUI forgets its queue and history when it restarts.
        """
        tab = self.load(workflow)
        if not self._knows(prompt_id):
            raise ServerError(UNKNOWN_PROMPT)
        job = Job(self, tab, prepared, timeout=timeout, output_dir=output_dir or self.output_dir, prompt_id=prompt_id)
        job._start(post=False)
        return job

    def _knows(self, prompt_id: str) -> bool:
        """Whether the prompt is in the history or on the queue (the history is read again after the
        queue, as the prompt may finish between the two reads); one ``/api/jobs/{id}`` where it answers."""
        if self.features().jobs_api:
            return self._job(prompt_id) is not None
        if self.history(prompt_id) is not None:
            return True
        state = self.queue_state()
        queued = (item[1] for key in ("queue_running", "queue_pending") for item in state.get(key, []))
        return prompt_id in queued or self.history(prompt_id) is not None

    def run(self, workflow: TabSpec | WorkflowSource, values: Mapping[str, Any] | None = None,
            *, timeout: float | None = None) -> RunResult:
        """Run a workflow to the end; raise a ``ComfyGradioError`` if it does not succeed."""
        return self.submit(workflow, values, timeout=timeout).result()

    def post_prompt(self, tab: TabSpec, prepared: PreparedPrompt, prompt_id: str, client_id: str) -> dict[str, Any]:
        """``POST /prompt``; a 400 becomes ``PromptRejected`` in the tab's field names."""
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

    # ---- the server's log, batches (see batch.py) ------------------------------------------

    def subscribe_logs(self, client_id: str, enabled: bool = True) -> None:
        """``PATCH /internal/logs/subscribe``: ComfyUI then sends its log lines to ``client_id``'s socket
        as ``logs`` messages (0.3.64 ``api_server/routes/internal/internal_routes.py``; the frontend's
        log panel uses it, and ComfyUI says its /internal routes may change)."""
        response = self._request("PATCH", "/internal/logs/subscribe", json={"enabled": enabled, "clientId": client_id})
        if response.status_code != 200:
            raise ServerError(f"ComfyUI at {self.url} does not stream its log (PATCH /internal/logs/subscribe "
                              f"answered HTTP {response.status_code}); run without the server log.")

    def map(self, workflow: TabSpec | Path | str, values: Sequence[Mapping[str, Any]], *, concurrency: int = 2,
            timeout: float | None = None) -> list[BatchItem]:
        """Run ``workflow`` once per item of ``values``, at most ``concurrency`` jobs in flight; one
        ``BatchItem`` per value, in input order, failures included (see ``batch``). ``timeout`` is per job.
        The default keeps one job queued behind the running one, so the server never waits for us."""
        tab = self.load(workflow)  # a broken workflow raises here, before anything is sent
        return Batch(functools.partial(self.submit, tab, timeout=timeout), values, concurrency).run()


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
        "invalid_prompt_id": " Give the run a canonical UUID (str(uuid.uuid4())) as its prompt id, or none.",
    }.get(str(error.get("type")), "")
    return f"ComfyUI rejected the workflow: {message}{details}.{hint}".replace("..", ".")


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
    """Refuse files Pillow cannot decode, and images with too many pixels (Pillow's own bomb check
    refuses, before the size is known, an image of more than twice ``Image.MAX_IMAGE_PIXELS``)."""
    limit = min(max_pixels or 2 * Image.MAX_IMAGE_PIXELS, 2 * Image.MAX_IMAGE_PIXELS)
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            image.verify()
    except Image.DecompressionBombError as exc:
        raise InputError(label, f"the image has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                                f"at most {limit / 1e6:.0f} megapixels are accepted. Use a smaller image.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(label, "this file is not an image (PNG, JPEG, WebP, ...) that can be read; "
                                "choose an image file") from exc
    if max_pixels and size[0] * size[1] > max_pixels:
        raise InputError(label, f"the image is {size[0]}×{size[1]} pixels; at most {max_pixels / 1e6:.0f} "
                                "megapixels are accepted. Use a smaller image.")
