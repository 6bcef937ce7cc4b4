"""Start-up: settings, the node catalogue, the tabs, and ``launch``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

import gradio as gr

from .catalog import Catalog, load_cached, save_cached
from .client import ComfyClient
from .config import Settings, load_settings
from .errors import ConfigError
from .pool import ComfyPool
from .ui import build_app, discover_tabs

__all__ = ["create_app", "main"]

log = logging.getLogger(__name__)

def pick_catalog(pool: ComfyPool, cache: Path) -> Catalog | None:
    """A live server's ``/object_info`` (cached to disk), else the cached copy marked stale, else None."""
    catalog = pool.catalog()
    if catalog is not None:
        save_cached(cache, catalog)
        return catalog
    for status in pool.statuses():
        log.warning("%s", status.error)
    cached = load_cached(cache)
    if cached:
        log.warning("Building forms from the node list cached in %s; choices may be stale", cache)
    return cached


def make_pool(settings: Settings) -> ComfyPool:
    clients = [ComfyClient(url, headers=settings.headers_for(number), output_dir=settings.output_dir,
                           tracker=settings.tracker, max_upload_bytes=settings.max_upload_mb * 2**20,
                           max_upload_pixels=settings.max_upload_pixels)
               for number, url in enumerate(settings.comfyui_urls, start=1)]
    return ComfyPool(clients).start()


def create_app(settings: Settings, pool: ComfyPool | None = None) -> tuple[gr.Blocks, ComfyPool]:
    """Build the app; its queue runs up to CONCURRENCY jobs, and at least 4 per server, at once."""
    pool = pool or make_pool(settings)
    catalog = pick_catalog(pool, settings.cache_dir / "object_info.json")
    tabs = discover_tabs(settings.workflows_dir, catalog)
    app = build_app(settings, pool, tabs)
    app.queue(default_concurrency_limit=max(settings.concurrency, 4 * len(pool.clients)))
    return app, pool


def launch(app: gr.Blocks, settings: Settings, **extra: object) -> None:
    """``app.launch`` with the settings; a share link that cannot be made is reported in one line."""
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    if settings.share and not settings.auth:
        log.warning("The public share link has no password: anyone with the link can run workflows. "
                    "Set GRADIO_AUTH=user:password (or --auth) to protect it.")
    kwargs: dict = dict(server_name=settings.server_name, server_port=settings.server_port,
                        auth=list(settings.auth) or None, allowed_paths=[str(settings.output_dir.resolve())],
                        footer_links=["api", "gradio", "settings"], **extra)
    try:
        app.launch(share=settings.share, **kwargs)
    except Exception as exc:  # Gradio raises plain exceptions when the share tunnel fails
        if not settings.share:
            raise
        log.error("Could not create a share link (%s); serving locally at http://%s:%s only.",
                  str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                  settings.server_name, settings.server_port)
        app.launch(share=False, **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        sys.exit(f"Invalid settings:\n{exc}")
    app, _ = create_app(settings)
    launch(app, settings)
