"""4. Bytes uploaded to ComfyUI for 10 runs that reuse one 10 MB input image.

Counts the bytes of every ``POST /upload/image`` the client sends (an httpx request hook on the
injected ``httpx.Client``: works against a real server too), for ``ComfyClient.run`` and for the app
through ``gradio_client`` (app in-process, so the hook can be installed). Content hashing should make
it upload once. Byte counts do not depend on timing, so nothing here is interleaved.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image

from comfyui_gradio.web.app import create_app
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.web.config import Settings
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.forms.loader import load_tab

from .common import WORKFLOWS, Target, comfy_servers, median, ms, table

RUNS = 10
SIZE = 10 * 2**20


class UploadCounter:
    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0

    def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == "/upload/image":
            self.requests += 1
            self.bytes += int(request.headers.get("content-length", 0))

    def client(self, url: str, output_dir: Path) -> ComfyClient:
        http = httpx.Client(base_url=url, timeout=60, event_hooks={"request": [self]})
        return ComfyClient(url, http=http, output_dir=output_dir)


def noise_png(folder: Path) -> Path:
    """A PNG of random pixels (incompressible) of a little over 10 MB."""
    side = int((SIZE / 3) ** 0.5) + 8
    path = folder / "noise.png"
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, compress_level=1)
    return path


def through_client(url: str, image: Path, tmp: Path) -> tuple[UploadCounter, list[float]]:
    counter = UploadCounter()
    client = counter.client(url, tmp / "client")
    tab = load_tab(WORKFLOWS / "invert.json", client.catalog())
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        client.run(tab, {"image": str(image)})
        times.append(time.perf_counter() - start)
    client.close()
    return counter, times


def through_app(url: str, image: Path, tmp: Path) -> tuple[UploadCounter, list[float]]:
    from tests.test_app import free_port

    counter = UploadCounter()
    settings = Settings(comfyui_url=url, workflows_dir=WORKFLOWS, output_dir=tmp / "app",
                        cache_dir=tmp / "cache", server_port=free_port())
    app, pool = create_app(settings, ComfyPool([counter.client(url, tmp / "app")]).start())
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    try:
        caller = Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False)
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            caller.predict(image=handle_file(str(image)), api_name="/invert")
            times.append(time.perf_counter() - start)
    finally:
        app.close()
        pool.close()
    return counter, times


def run(rounds: int | None = None) -> list[Target]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_uploads_"))
    image = noise_png(tmp)
    size = image.stat().st_size
    rows, targets = [], []
    with comfy_servers(1) as servers:
        for name, how in (("ComfyClient.run", through_client), ("the app via gradio_client", through_app)):
            counter, times = how(servers[0].url, image, tmp)
            rows.append([name, counter.requests, f"{counter.bytes / 2**20:.2f}", f"{counter.bytes / size:.2f}",
                         ms(times[0]), ms(median(times[1:]))])
            ok = counter.requests == 1 and counter.bytes < 1.01 * size
            targets.append(Target(f"4 upload once: {name}", f"1 upload, <= 1.01 x {size / 2**20:.1f} MB",
                                  f"{counter.requests} upload(s), {counter.bytes / 2**20:.2f} MB", ok))
    table(f"4. uploads for {RUNS} runs of invert reusing one {size / 2**20:.1f} MB PNG",
          ["caller", "POST /upload/image", "MB sent", "x image size", "run 1 ms", "runs 2-10 median ms"], rows)
    return targets
