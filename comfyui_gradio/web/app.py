"""Start-up: settings, the node catalogue, the tabs, and ``launch``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import gradio as gr
from starlette.middleware import Middleware

from ..forms.catalog import Catalog, load_cached, save_cached
from ..forms.loader import Limits, TabLoad, discover_tabs, unique_name
from ..comfy.backend import KINDS, Backend
from ..comfy.client import ComfyClient
from ..comfy.sources import WorkflowSources, url_stem
from .config import Settings, load_settings
from ..errors import ConfigError, Problem
from ..comfy.pool import ComfyPool
from .page import build_app
from .runs import RunBook
from .shared import SECRET_FILE, ActiveRuns
from .uploads import UploadGuard

__all__ = ["create_app", "launch", "main", "stop_on_sigterm"]

log = logging.getLogger(__name__)

def pick_catalog(pool: ComfyPool, cache: Path) -> Catalog | None:
    """A live server's ``/object_info`` (cached to disk), else the cached copy marked stale, else None."""
    catalog = pool.catalog()
    if catalog is not None:
        save_cached(cache, catalog)
        return catalog
    for status in pool.statuses():
        if status.error:
            log.warning("%s", status.error)
    cached = load_cached(cache)
    if cached:
        log.warning("Building forms from the node list cached in %s; choices may be stale", cache)
    return cached


def make_pool(settings: Settings) -> ComfyPool:
    """One backend per COMFYUI_URL entry, of the kind its prefix names (``comfy.backend.KINDS``)."""
    backends = [make_backend(settings, number, kind, url) for number, kind, url in settings.backends]
    return ComfyPool(backends, cloud_after=settings.cloud_after).start()


def make_backend(settings: Settings, number: int, kind: str, url: str) -> Backend:
    """Entry ``number`` of COMFYUI_URL, with its secrets from the environment."""
    if kind == "comfyui":
        return ComfyClient(url, headers=settings.headers_for(number), output_dir=settings.output_dir,
                           tracker=settings.tracker, max_upload_bytes=settings.max_upload_mb * 2**20,
                           max_upload_pixels=settings.max_upload_pixels)
    return KINDS[kind].build(url, settings.secrets_for(number, kind), output_dir=settings.output_dir)


def create_app(settings: Settings, pool: ComfyPool | None = None,
               runs: RunBook | None = None) -> tuple[gr.Blocks, ComfyPool]:
    """Build the app; its queue runs up to CONCURRENCY jobs, and at least 4 per server, at once.

    The runs an earlier process left going (``runs``, read from OUTPUT_DIR if not given) are followed
    again in the background: their records show "running" until each is collected or failed.
    """
    pool = pool or make_pool(settings)
    runs = runs or RunBook(settings.output_dir).load()
    catalog = pick_catalog(pool, settings.cache_dir / "object_info.json")
    tabs = load_tabs(settings, catalog)
    active = ActiveRuns()
    app = build_app(settings, pool, tabs, runs, active)
    app.queue(default_concurrency_limit=max(settings.concurrency, 4 * len(pool.clients)))
    specs = {load.name: load.spec for load in tabs if load.spec is not None}
    threading.Thread(target=runs.reattach, args=(pool.clients, specs), name="reattach-runs", daemon=True,
                     kwargs={"timeout": settings.job_timeout,
                             "on_job": lambda record, job: active.add(record.owner, record.tab, job)}).start()
    return app, pool


def load_tabs(settings: Settings, catalog: Catalog | None) -> list[TabLoad]:
    """The tabs of WORKFLOWS_DIR and of WORKFLOW_URLS (fetched now into CACHE_DIR/workflows); a URL that
    cannot be fetched is a broken tab saying why, and the other tabs start."""
    limits = Limits(max_batch_size=settings.max_batch_size)
    sources = WorkflowSources(settings.cache_dir / "workflows", max_bytes=limits.max_workflow_bytes)
    files, failed = sources.fetch_all(settings.workflow_urls)
    tabs = discover_tabs(settings.workflows_dir, catalog, limits, extra=files)
    taken = {load.name for load in tabs}
    for url, error in failed:
        log.error("Workflow %s cannot be used:\n%s", url, error)
        name = unique_name(url_stem(url), taken)
        taken.add(name)
        tabs.append(TabLoad(name, Path(url), error=error))
    return tabs


def stop_on_sigterm(runs: RunBook) -> None:
    """On SIGTERM (a redeploy, a Space going to sleep, ``docker stop``), write down the runs in flight,
    still "running" with their prompt ids and servers so the next start collects them, and end the
    process at once: closing Gradio's server first would cancel API callers' runs as they disconnect.
    Only for the main thread of the process that serves the app (``main``)."""

    def stop(signum: int, frame: object) -> None:
        going = runs.suspend()
        log.info("Stopping; %d run(s) in flight will be collected when the app starts again", going)
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


def launch(app: gr.Blocks, settings: Settings, **extra: Any) -> None:
    """``app.launch`` with the settings. A share link that cannot be made is reported in one line
    (Gradio's own multi-line advice is kept out of the log) and the app keeps serving locally."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    if settings.mcp:
        _require_mcp()
    kwargs: dict[str, Any] = dict(server_name=settings.server_name, server_port=settings.server_port,
                                  mcp_server=settings.mcp,
                                  auth=list(settings.auth) or None, max_file_size=f"{settings.max_upload_mb}mb",
                                  allowed_paths=[str(settings.output_dir.resolve())],
                                  blocked_paths=[str((settings.output_dir / SECRET_FILE).resolve())],
                                  footer_links=["api", "gradio", "settings"],
                                  app_kwargs={"middleware": [Middleware(UploadGuard, blocks=app)]})
    kwargs.update(extra)  # e.g. auth=callable(user, password) when embedding the app
    if not settings.share:
        app.launch(**kwargs)
        return
    if not kwargs.get("auth"):
        log.warning("The public link has no password: anyone who has it can run your workflows. "
                    "Set GRADIO_AUTH=user:password (or --auth) to protect it.")
    wait = not kwargs.pop("prevent_thread_lock", False)
    gradio_says = io.StringIO()
    with contextlib.redirect_stdout(gradio_says):
        app.launch(share=True, prevent_thread_lock=True, **kwargs)
    if app.share_url:
        log.info("Public link: %s", app.share_url)
    else:
        log.error("Could not create a public share link (%s); the app is still served at %s",
                  _share_failure(gradio_says.getvalue()), app.local_url)
    if wait:
        app.block_thread()


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError([Problem("settings", "GRADIO_MCP_SERVER", "the MCP server needs optional packages: "
                                   "pip install 'comfyui-gradio[mcp]', or pip install -r requirements-mcp.txt in a "
                                   "checkout (they pin an older pydantic)")]) from None


def _share_failure(gradio_output: str) -> str:
    if "frpc" in gradio_output or "internet" in gradio_output:
        return "no internet connection, or Gradio's tunnel program could not be downloaded"
    line = next((x for x in gradio_output.splitlines() if "share" in x.lower()), "").strip()
    return line or "Gradio gave no reason"


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request (health checks too) is noise
    try:
        settings = load_settings(argv)
        runs = RunBook(settings.output_dir).load()
        app, _ = create_app(settings, runs=runs)
        stop_on_sigterm(runs)
        launch(app, settings)
    except ConfigError as exc:
        sys.exit(f"Invalid settings:\n{exc}")
