"""Workflows from anywhere: a path, a dict, an http(s) URL or a RunningHub workflow id, as a local file.

    sources = WorkflowSources()
    sources.path_for("workflows/txt2img.json")               # the path itself
    sources.path_for({"3": {"class_type": ...}})              # API or UI format, written to the cache
    sources.path_for("https://example.com/flux.json")         # downloaded once, capped, cached by content
    sources.path_for("1987654321")                            # RunningHub's getJsonApiFormat (needs a key)

Everything that is not already a file is written to ``<cache_dir>/<sha256 prefix>/<name>.json``: the folder
is named by the content, so the same workflow is one file however it was given, and the file keeps a
readable name (the URL's last part, ``runninghub-<id>``, ``workflow``) for the tab it becomes. The rest
of the package then reads it as any workflow file (``forms.loader.load_tab``), schema-less: its form comes
from its title markers or is inferred.

A URL is fetched with a size cap (``max_bytes``, the workflow cap), a timeout and at most
``max_redirects`` redirects; every error names the URL. It is fetched once per ``WorkflowSources`` (a
``ComfyClient`` holds one): a new client reads it again. An existing file wins over an id: ``"12345"`` is
a RunningHub id only if no file of that name exists.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import httpx

from ..errors import ConfigError, Problem
from ..forms.workflow import MAX_WORKFLOW_BYTES
from .runninghub import RunningHubClient, is_runninghub_id

__all__ = ["WorkflowSource", "WorkflowSources", "default_cache_dir", "url_stem"]

WorkflowSource = Union[str, Path, Mapping[str, Any]]
"""What ``ComfyClient.run/submit/load`` take besides a ``TabSpec``."""

MAX_REDIRECTS = 5
URL_TIMEOUT = 30.0


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "comfyui-gradio-workflows"


class WorkflowSources:
    """Turns workflow sources into local files. Thread-safe.

    ``runninghub`` makes the client for RunningHub ids when one is needed (default: from
    RUNNINGHUB_API_KEY; without a key a RunningHub id is refused with a ``ConfigError`` saying so).
    """

    def __init__(self, cache_dir: Path | None = None, *, http: httpx.Client | None = None,
                 max_bytes: int = MAX_WORKFLOW_BYTES, timeout: float = URL_TIMEOUT,
                 max_redirects: int = MAX_REDIRECTS,
                 runninghub: Callable[[], RunningHubClient] = RunningHubClient) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self._http = http
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._runninghub = runninghub
        self._fetched: dict[str, Path] = {}
        self._lock = threading.Lock()

    def path_for(self, source: WorkflowSource) -> Path:
        """The local file of ``source``; raise ``ConfigError`` naming the source if it cannot be had."""
        if isinstance(source, Mapping):
            return self.store(dict(source), "workflow")
        text = str(source)
        if isinstance(source, str) and text.startswith(("http://", "https://")):
            return self._remembered(text, lambda: self._download(text))
        if isinstance(source, str) and is_runninghub_id(text) and not Path(text).exists():
            return self._remembered(f"runninghub:{text}", lambda: self._from_runninghub(text))
        return Path(source)

    def fetch_all(self, urls: Sequence[str]) -> tuple[list[Path], list[tuple[str, ConfigError]]]:
        """Every URL's file, and the URLs that could not be had with why (the app starts without them)."""
        files, failed = [], []
        for url in urls:
            try:
                files.append(self.path_for(url))
            except ConfigError as exc:
                failed.append((url, exc))
        return files, failed

    def store(self, workflow: dict[str, Any], name: str) -> Path:
        """Write a workflow under a folder named by its content; the same content gives the same path."""
        data = json.dumps(workflow, indent=1, ensure_ascii=False).encode()
        folder = self.cache_dir / hashlib.sha256(data).hexdigest()[:16]
        path = folder / f"{_safe_stem(name)}.json"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
        return path

    def _remembered(self, key: str, make: Callable[[], Path]) -> Path:
        with self._lock:
            known = self._fetched.get(key)
        if known is not None and known.exists():
            return known
        path = make()
        with self._lock:
            self._fetched[key] = path
        return path

    def _from_runninghub(self, workflow_id: str) -> Path:
        client = self._runninghub()
        try:
            prompt = client.workflow_json(workflow_id)
        finally:
            client.close()
        return self.store(prompt, f"runninghub-{workflow_id}")

    def _download(self, url: str) -> Path:
        data = self._fetch(url)
        try:
            workflow = json.loads(data)
        except ValueError:
            raise _url_error(url, "this is not a workflow: the download is not JSON. Give the address of the "
                                  "raw .json file (on GitHub: the \"Raw\" button).") from None
        if not isinstance(workflow, dict):
            raise _url_error(url, "this is not a workflow: the JSON is not an object of nodes")
        return self.store(workflow, url_stem(url))

    def download(self, url: str, max_bytes: int) -> bytes:
        """Any file at ``url`` (an input image, say), with this object's timeout and redirect bound and
        its own size cap; raise ``ConfigError`` naming the URL."""
        return self._fetch(url, max_bytes, hint="")

    def _fetch(self, url: str, max_bytes: int | None = None, hint: str = " (Limits.max_workflow_bytes)") -> bytes:
        """The body of ``url``, refused as soon as it passes ``max_bytes`` (default: the workflow cap)."""
        cap = max_bytes or self.max_bytes
        http = self._http or httpx.Client(timeout=self.timeout, follow_redirects=True,
                                          max_redirects=self.max_redirects)
        try:
            with http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise _url_error(url, f"the server answered HTTP {response.status_code}; check the address")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _url_error(url, _too_big(int(declared), cap, hint))
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise _url_error(url, _too_big(size, cap, hint, at_least=True))
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TooManyRedirects:
            raise _url_error(url, f"more than {self.max_redirects} redirects (a redirect loop?); give the "
                                  "file's final address") from None
        except httpx.TimeoutException:
            raise _url_error(url, f"no complete answer within {self.timeout:.0f} s; try again, or download the "
                                  "file and give its path") from None
        except httpx.HTTPError as exc:
            raise _url_error(url, f"cannot be downloaded ({str(exc) or type(exc).__name__}); check the address") from None
        finally:
            if self._http is None:
                http.close()



def _too_big(size: int, cap: int, hint: str, at_least: bool = False) -> str:
    """``hint`` names the setting that raises the cap."""
    return f"the file is {'more than ' if at_least else ''}{_size(size)}; at most {_size(cap)} is read{hint}"


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


def url_stem(url: str) -> str:
    """The name a workflow at ``url`` is known by: the last part of its path without ``.json``."""
    return _safe_stem(httpx.URL(url).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json"))


def _url_error(url: str, reason: str) -> ConfigError:
    return ConfigError([Problem(url, "", reason)])


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name).strip(". ")[:80]
    return cleaned or "workflow"
