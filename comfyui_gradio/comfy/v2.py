"""Comfy API v2 backends (Comfy Cloud, serverless deployments, a ComfyUI behind ``comfy-api-proxy``),
spoken through Comfy's own client, ``comfy-sdk`` (PyPI 0.5.0), rather than written again here.

What the SDK does for a run (read in ``comfy_sdk/client.py``, ``assets.py``, ``jobs.py``):
inputs become assets (blake3 of the bytes, ``HEAD /api/v2/assets/by-hash/{hash}``, then
``POST /assets/from-hash`` or a multipart ``POST /assets``) referenced in the workflow as
``{"__type": "core/ASSET", "info": {"id", "hash", "file_path"}}``; ``POST /api/v2/jobs`` with an
``Idempotency-Key``; ``GET /jobs/{id}/events`` (SSE: ``status``, ``progress``, ``preview``,
``output``) with ``GET /jobs/{id}`` as the authority; ``POST /jobs/{id}/cancel``; outputs are
assets read from ``GET /assets/{id}/content``.

``comfy_sdk.Comfy`` takes its address only from the ``COMFY_BASE_URL`` environment variable (one per
process), so each backend builds the SDK's own transport, ``comfy_low.ComfyLow(base_url, key,
client=...)``, and hands it to a ``Comfy`` (``_Comfy``); the SDK's submit, assets and job handles are
used as they are. SDK and httpx errors become the package's errors in ``_translated``.

comfy-api-proxy 0.1.6 cancels through ComfyUI's ``POST /api/jobs/{id}/cancel``, which ComfyUI 0.3.64
lacks: there the run is dropped by this app but keeps running on the server.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
from comfy_low.transport import ComfyLow
from comfy_sdk import Comfy, ComfyError, InvalidWorkflow, MissingAsset, QueueFull
from comfy_sdk import Log as SdkLog
from comfy_sdk import OutputReady as SdkOutputReady
from comfy_sdk import Preview as SdkPreview
from comfy_sdk import Progress as SdkProgress
from comfy_sdk import StatusChange
from comfy_sdk.assets import AssetFactory
from comfy_sdk.jobs import Job as SdkJob
from comfy_sdk.jobs import JobFactory
from comfy_sdk.workflows import WorkflowFactory

from ..errors import ExecutionFailed, JobCancelled, PromptRejected, ServerError, ServerUnavailable
from ..forms.prepare import PreparedPrompt
from ..forms.schema import TabSpec
from .backend import Log, RemoteBackend, stored_name, upload_targets
from .client import LocalFile, rejection
from .collect import collect_outputs, node_title
from .events import OutputReady, Preview, Progress, Queued, Started
from .results import OutputFile

__all__ = ["V2Backend"]

log = logging.getLogger(__name__)

CLOUD = "https://cloud.comfy.org"
_OUTPUT_KEYS = {"image": "images", "video": "video", "audio": "audio"}  # v2 output type -> history list name


class _Comfy(Comfy):
    """``comfy_sdk.Comfy`` on a transport of our making (its own ``__init__`` reads COMFY_BASE_URL)."""

    def __init__(self, low: ComfyLow) -> None:  # the attributes Comfy.__init__ sets, minus the model router
        self._low = low
        self.assets = AssetFactory(low)
        self.workflows = WorkflowFactory()
        self.jobs = JobFactory(low)


class V2Backend(RemoteBackend):
    """One Comfy API v2 endpoint. ``http`` may be injected (``transport=httpx.MockTransport(...)``)."""

    kind = "v2"

    def __init__(self, url: str = CLOUD, *, api_key: str | None = None, http: httpx.Client | None = None,
                 output_dir: Path | str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, output_dir=output_dir)
        self._low = ComfyLow(self.url, api_key or None, client=http, timeout=timeout,
                             client_info="comfyui-gradio")
        self._own_http = http
        self.sdk = _Comfy(self._low)

    def close(self) -> None:
        self._low.close()

    def _probe(self) -> None:
        """``GET /api/v2/health`` (comfy-api-proxy's; a surface without it answers 404, which still
        shows it is there). A refused key is an error that says which variable to set."""
        with _translated(self.url):
            status = self._low.raw_request("GET", "/health").status_code
        if status in (401, 403):
            raise ServerError(f"The Comfy API v2 endpoint {self.url} refused the API key (HTTP {status}); set "
                              "COMFY_API_KEY (or COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL).")
        if status >= 500:
            raise ServerError(f"The Comfy API v2 endpoint {self.url} answered HTTP {status}; try again later.")

    def _begin(self, tab: TabSpec, prepared: PreparedPrompt, uploads: dict[str, LocalFile],
               prompt_id: str) -> "_V2Run":
        graph = {node_id: dict(node, inputs=dict(node.get("inputs", {}))) for node_id, node in prepared.prompt.items()}
        with _translated(self.url, tab):
            for key, local in uploads.items():
                asset = self.sdk.assets.from_bytes(local.data, filename=stored_name(local))
                for node_id, name in upload_targets(tab, key):
                    graph[node_id]["inputs"][name] = asset  # the SDK commits it and puts its core/ASSET there
            job = self.sdk.submit(self.sdk.workflows.from_json(graph), idempotency_key=prompt_id)
        log.info("Run %s is job %s on %s", prompt_id, job.id, self.url)
        return _V2Run(self, tab, prepared, job)


class _V2Run:
    """One v2 job followed through the SDK: its event stream for the page, its state for the end."""

    def __init__(self, backend: V2Backend, tab: TabSpec, prepared: PreparedPrompt, job: SdkJob) -> None:
        self.backend, self.tab, self.prepared, self.job = backend, tab, prepared, job
        self._stopped = False  # cancelled or timed out: the job has ended here, so stop following it

    def follow(self, emit: Callable[[Any], None], job_dir: Path) -> list[OutputFile]:
        """The SDK's event stream cannot be closed from another thread: after a cancel it is left at its next
        event (or its end), and nothing more is polled or downloaded."""
        with _translated(self.backend.url, self.tab):
            try:
                for event in self.job.events():
                    if self._stopped:
                        raise JobCancelled("Cancelled.")  # the job has already ended as cancelled or timed out
                    for ours in self._ours(event):
                        emit(ours)
            except (ComfyError, httpx.HTTPError) as exc:  # the stream is best effort; the state is the authority
                log.warning("Lost the event stream of job %s on %s (%s); polling", self.job.id, self.backend.url, exc)
            if self._stopped:
                raise JobCancelled("Cancelled.")
            self.job.wait()  # polls GET /jobs/{id} to the end (at once when the stream saw it)
        if self._stopped:
            raise JobCancelled("Cancelled.")
        return self._ending(job_dir)

    def cancel(self) -> None:
        self._stopped = True
        with _translated(self.backend.url, self.tab):
            self.job.cancel()

    def _ours(self, event: Any) -> list[Any]:
        """The package's job events for one SDK event (``comfy_sdk/events.py``)."""
        if isinstance(event, StatusChange):
            if event.status == "queued":
                return [Queued(None if event.queue_position is None else max(event.queue_position - 1, 0))]
            return [Started()] if event.status == "running" else []
        if isinstance(event, SdkProgress):
            return self._progress(event)
        if isinstance(event, SdkPreview) and event.data:
            return [Preview(event.data, event.content_type, event.node_id or None)]
        if isinstance(event, SdkOutputReady):
            node_id = event.output.node_id
            return [OutputReady(node_id, self._title(node_id), {"name": event.output.name})]
        if isinstance(event, SdkLog):
            return [Log(event.message)]
        return []

    def _progress(self, event: SdkProgress) -> list[Any]:
        node_id = event.current_node or ""
        title = self._title(node_id) if node_id else "Running"
        if event.steps:
            return [Progress(node_id, title, int(event.step or 0), int(event.steps))]
        if event.nodes_total:
            return [Progress(node_id, title, int(event.nodes_done or 0), int(event.nodes_total))]
        return []

    def _title(self, node_id: str) -> str:
        return node_title(self.prepared.prompt, node_id)

    def _ending(self, job_dir: Path) -> list[OutputFile]:
        """The outputs of a succeeded job in ``job_dir``; the package's error for any other end."""
        if self.job.status == "expired":
            self._read_again()
        status, error = self.job.status, self.job.error
        if status == "succeeded":
            return self._download(job_dir)
        if status == "canceled":
            raise JobCancelled("Cancelled on the server; nothing was saved.")
        if status == "failed" and error is not None and error.node_id:
            raise ExecutionFailed(error.node_id, self._title(error.node_id), error.message, error.class_type or "")
        if status == "failed":
            raise ServerError(f"The job failed on {self.backend.url}: {error.message if error else 'no reason given'}. "
                              "Check the workflow, then run it again.")
        raise ServerError(f"The job ended '{status}' on {self.backend.url} (the backend no longer has it); "
                          "run it again.")

    def _read_again(self, delays: tuple[float, ...] = (0.05, 0.2, 0.5)) -> None:
        """comfy-api-proxy 0.1.6 looks at ComfyUI's ``/history`` and then its ``/queue`` (``app.py``
        ``_status_of``): a job that finishes between the two looks is answered ``expired`` once. Ask again."""
        for delay in delays:
            time.sleep(delay)
            self.job.refresh()
            if self.job.status != "expired":
                return

    def _download(self, job_dir: Path) -> list[OutputFile]:
        """Through ``collect.collect_outputs``, so files are named and filtered as a ComfyUI run's are."""
        by_id = {o.id: o for o in self.job.outputs}
        outputs: dict[str, dict[str, list[dict[str, str]]]] = {}
        for output in self.job.outputs:
            key = _OUTPUT_KEYS.get(output.type, "files")
            outputs.setdefault(output.node_id, {}).setdefault(key, []).append(
                {"filename": output.name, "subfolder": "", "type": output.id})

        def download(filename: str, subfolder: str, asset_id: str) -> bytes:
            with _translated(self.backend.url, self.tab):
                return by_id[asset_id].to_bytes()

        return collect_outputs(outputs, self.tab, self.prepared.prompt, download, job_dir)


@contextlib.contextmanager
def _translated(url: str, tab: TabSpec | None = None) -> Iterator[None]:
    """comfy-sdk's and httpx's errors as the package's (``comfy_sdk/exceptions.py`` names the codes)."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ServerUnavailable(url, str(exc) or type(exc).__name__, "the Comfy API v2 endpoint") from exc
    except httpx.HTTPError as exc:
        raise ServerError(f"The Comfy API v2 endpoint {url} did not answer properly ({exc}); try again.") from exc
    except InvalidWorkflow as exc:
        raise _rejected(url, tab, exc) from exc
    except MissingAsset as exc:
        raise ServerError(f"{url} does not have an uploaded input ({exc.message}); run it again.") from exc
    except QueueFull as exc:
        raise ServerError(f"The queue of {url} is full; try again in {exc.retry_after} s.") from exc
    except ComfyError as exc:
        raise ServerError(_sdk_message(url, exc)) from exc


def _rejected(url: str, tab: TabSpec | None, exc: InvalidWorkflow) -> PromptRejected:
    """In the form's field names where the server's ``node_errors`` (ComfyUI's own, passed on by
    comfy-api-proxy as ``details.node_errors``) name an input, as ``client.rejection`` does for /prompt."""
    node_errors = (exc.details or {}).get("node_errors") or {}
    if tab is not None and node_errors:
        return rejection(tab, {"error": {"message": exc.message, "type": exc.code}, "node_errors": node_errors})
    return PromptRejected(f"{url} rejected the workflow: {exc.message}", node_errors=node_errors,
                          error_type=exc.code or "")


def _sdk_message(url: str, exc: ComfyError) -> str:
    if exc.http_status in (401, 403) or exc.code in ("unauthorized", "forbidden", "missing_api_key"):
        return (f"The Comfy API v2 endpoint {url} refused the API key ({exc.code}); set COMFY_API_KEY "
                "(or COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL).")
    if exc.code == "insufficient_credits":
        return f"The account behind the API key for {url} has no credits left; add credits, then run again."
    return f"The Comfy API v2 endpoint {url} answered: {exc.message} ({exc.code or exc.http_status})."
