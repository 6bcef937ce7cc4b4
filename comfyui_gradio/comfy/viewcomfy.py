"""ViewComfy serverless deployments: one streamed POST per run.

The protocol, from ViewComfy's own API guide and client (``ViewComfy/cloud-public``,
``ViewComfy_API/Python/api.py`` ``infer_with_logs`` / ``consume_event_source``, and ``README.MD``):

* ``POST <deployment url>`` with headers ``client_id`` and ``client_secret``; a multipart form with
  ``params`` (a JSON object of flat ``"<nodeId>-inputs-<name>": value`` keys), ``logs=true``, and
  each input file as a part named by the same kind of key;
* success is HTTP 201 with ``text/event-stream``: events ``log_message`` and ``error`` carry text
  (ComfyUI's console, tqdm bars included), ``prompt_result`` carries the result as JSON:
  ``{prompt_id, status, completed, execution_time_seconds, prompt, outputs: [{filename,
  content_type, data (base64), size}]}``; any other status carries a JSON error body.

The deployment runs its own copy of the workflow: the tab's workflow file should be the one
deployed, and every literal input of the prepared prompt is sent as a param. Outputs come back
inline and are saved into the job's folder; their node is not given, so they are named by file
name. Cancelling closes the stream (the guide has no cancel call): the deployment may finish the run.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

import httpx

from ..errors import ProtocolError, ServerError, ServerUnavailable
from ..forms.prepare import PreparedPrompt
from ..forms.schema import TabSpec
from ..forms.workflow import is_link
from .backend import Log, RemoteBackend, progress_in_log, stored_name, upload_targets
from .client import LocalFile
from .collect import local_path
from .events import Started
from .results import OutputFile, kind_of

__all__ = ["ViewComfyBackend"]

log = logging.getLogger(__name__)

READ_TIMEOUT = 2400.0  # seconds between two events (the guide's client waits 2400 s)


class ViewComfyBackend(RemoteBackend):
    """One ViewComfy deployment. ``http`` may be injected (``transport=httpx.MockTransport(...)``)."""

    kind = "viewcomfy"
    max_output_bytes = 512 * 2**20  # per output file, decoded; a larger one is refused unread

    def __init__(self, url: str, *, client_id: str, client_secret: str, http: httpx.Client | None = None,
                 output_dir: Path | str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, output_dir=output_dir)
        self._own_http = http is None
        # No redirects: the credentials are plain headers, which httpx would send on to another host.
        self.http = http or httpx.Client(timeout=httpx.Timeout(timeout, read=READ_TIMEOUT), follow_redirects=False)
        self._headers = {"client_id": client_id, "client_secret": client_secret}

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def _probe(self) -> None:
        """No health call is documented, and a serverless deployment may be asleep: taken as up; a run
        that cannot reach it fails with ``ServerUnavailable``."""

    def _begin(self, tab: TabSpec, prepared: PreparedPrompt, uploads: dict[str, LocalFile],
               prompt_id: str) -> "_ViewComfyRun":
        files = [(key, (stored_name(local), local.data))
                 for name, local in uploads.items() for key in _keys(upload_targets(tab, name))]
        params = flat_params(prepared.prompt, skip={key for key, _ in files})
        request = self.http.build_request("POST", self.url, headers=self._headers, files=files or None,
                                          data={"params": json.dumps(params), "logs": "true"})
        try:
            response = self.http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailable(self.url, str(exc) or type(exc).__name__, "ViewComfy") from exc
        except httpx.HTTPError as exc:
            raise ServerError(f"The ViewComfy deployment {self.url} did not answer properly ({exc}); "
                              "try again.") from exc
        if response.status_code != 201:
            response.read()
            response.close()
            raise _refusal(self.url, response)
        return _ViewComfyRun(self, tab, response)


def flat_params(prompt: dict[str, dict[str, Any]], skip: Collection[str] = ()) -> dict[str, Any]:
    """Every literal input of the prompt as ``"<nodeId>-inputs-<name>"`` (links are the deployment's)."""
    return {key: value for node_id, node in prompt.items() for name, value in node.get("inputs", {}).items()
            if not is_link(value) and (key := f"{node_id}-inputs-{name}") not in skip}


def _keys(targets: list[tuple[str, str]]) -> list[str]:
    return [f"{node_id}-inputs-{name}" for node_id, name in targets]




def _refusal(url: str, response: httpx.Response) -> ServerError:
    status = response.status_code
    if response.is_redirect:
        where = httpx.URL(response.headers.get("location", "")).host or "another address"
        return ServerError(f"The ViewComfy deployment {url} redirected to {where} (HTTP {status}); the credentials "
                           "were not sent there. Put the deployment's final URL in COMFYUI_URL.")
    if status in (401, 403):
        return ServerError(f"The ViewComfy deployment {url} refused the credentials (HTTP {status}); set "
                           "VIEWCOMFY_CLIENT_ID and VIEWCOMFY_CLIENT_SECRET (or their _<n> variants for the n-th "
                           "entry of COMFYUI_URL) to the deployment's API keys.")
    return ServerError(f"The ViewComfy deployment {url} answered HTTP {status}: {_said(response)}")


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "no reason given"
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    return str(detail)[:300]


class _ViewComfyRun:
    """The open event stream of one run."""

    def __init__(self, backend: ViewComfyBackend, tab: TabSpec, response: httpx.Response) -> None:
        self.backend, self.tab, self.response = backend, tab, response

    def cancel(self) -> None:
        self.response.close()

    def follow(self, emit: Callable[[Any], None], job_dir: Path) -> list[OutputFile]:
        try:
            if "text/event-stream" not in self.response.headers.get("content-type", ""):
                raise ProtocolError(f"The ViewComfy deployment {self.backend.url} answered without an event "
                                    "stream although logs=true was sent.")
            emit(Started())
            result = self._read(emit)
        except httpx.HTTPError as exc:
            raise ServerError(f"The connection to the ViewComfy deployment {self.backend.url} broke during the "
                              f"run ({exc}); run it again.") from exc
        finally:
            self.response.close()
        return self._save(result, job_dir)

    def _read(self, emit: Callable[[Any], None]) -> dict[str, Any]:
        for event, data in _sse(self.response.iter_lines()):
            if event == "log_message":
                text = _text(data)
                emit(Log(text))
                progress = progress_in_log(text)
                if progress is not None:
                    emit(progress)
            elif event == "error":
                raise ServerError(f"The ViewComfy deployment {self.backend.url} reported an error: {_text(data)}")
            elif event == "prompt_result":
                return _result(self.backend.url, data)
        raise ServerError(f"The ViewComfy deployment {self.backend.url} ended the stream without a result; run it "
                          "again.")

    def _save(self, result: dict[str, Any], job_dir: Path) -> list[OutputFile]:
        names = [o.name for o in self.tab.outputs]
        files = []
        for item in result.get("outputs") or []:
            data = _decoded(self.backend.url, item, self.backend.max_output_bytes)
            path = local_path(job_dir, "output", str(item.get("filename") or "output"))
            path.write_bytes(data)
            kind = kind_of(path.name)
            name = names[0] if len(names) == 1 else Path(str(item.get("filename") or "output")).stem
            files.append(OutputFile(path, kind, "", name, text=data.decode("utf-8", "replace") if kind == "text"
                                    else None))
        return files


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of each server-sent event; comments and ids are skipped."""
    event, data = "message", []
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)  # one space only (the SSE standard)
    if data:
        yield event, "\n".join(data)


def _text(data: str) -> str:
    """A log or error line: sent as text, or as a JSON string or object."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    if isinstance(value, dict):
        return str(value.get("message") or value.get("error") or value.get("detail") or value)
    return str(value)


def _result(url: str, data: str) -> dict[str, Any]:
    try:
        result = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"The ViewComfy deployment {url} sent a result that is not JSON") from exc
    if not isinstance(result, dict):
        raise ProtocolError(f"The ViewComfy deployment {url} sent a result that is not a JSON object")
    if result.get("completed") is False or str(result.get("status", "")).lower() in ("error", "failed"):
        raise ServerError(f"The run did not complete on the ViewComfy deployment {url} (status "
                          f"{result.get('status')!r}); check the deployment's logs, then run it again.")
    return result


def _decoded(url: str, item: dict[str, Any], limit: int) -> bytes:
    """An output's bytes from its base64 ``data``: refused unread when larger than ``limit``."""
    name = str(item.get("filename") or "output")
    raw = item.get("data")
    if not isinstance(raw, str) or not raw:
        raise ProtocolError(f"The ViewComfy deployment {url} sent the output {name!r} without its data "
                            "(stored elsewhere?); this app reads outputs sent inline only.")
    if len(raw) * 3 // 4 > limit:
        raise ProtocolError(f"The output {name!r} from {url} is over {limit / 2**20:.0f} MB; it was not saved.")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"The ViewComfy deployment {url} sent the output {name!r} in broken base64; run it "
                            "again.") from exc
