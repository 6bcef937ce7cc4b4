"""Helpers shared by the app-level tests: the app in-process, pictures, waiting."""

from __future__ import annotations

import copy
import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
from gradio_client import Client
from PIL import Image

from comfyui_gradio.web.app import create_app, launch
from comfyui_gradio.web.config import Settings
from tests.fake_comfyui import FakeComfyUI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    def __init__(self, comfyui_url: str, workflows: Path, tmp_path: Path) -> None:
        self.settings = Settings(comfyui_url=comfyui_url, workflows_dir=workflows, output_dir=tmp_path / "out",
                                 cache_dir=tmp_path / "cache", server_port=free_port())
        self.app, self.backend = create_app(self.settings)
        launch(self.app, self.settings, prevent_thread_lock=True, quiet=True)  # as the app is launched
        self.url = f"http://127.0.0.1:{self.settings.server_port}/"
        self.client = Client(self.url, verbose=False)

    def with_new_client(self) -> RunningApp:
        """The same app seen by a new caller (a new Gradio session: its own runs and in-flight count)."""
        view = copy.copy(self)
        view.client = Client(self.url, verbose=False)
        return view

    def close(self) -> None:
        self.app.close()
        self.backend.close()


KNOBS = ("step_delay", "node_delay", "max_pixels", "checkpoints")


def one_test_on(fake: FakeComfyUI) -> Iterator[FakeComfyUI]:
    """``fake`` for one test of several sharing it: it starts idle with empty request lists, and its
    knobs are put back afterwards (and what the test left queued is let run out quickly)."""
    knobs = {name: copy.copy(getattr(fake, name)) for name in KNOBS}
    wait_for(lambda: fake.queue_remaining == 0, timeout=30)
    for seen in (fake.prompts, fake.requests, fake.uploads):
        seen.clear()
    yield fake
    for name, value in knobs.items():
        setattr(fake, name, value)
    wait_for(lambda: fake.queue_remaining == 0, timeout=30)


def picture(tmp_path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> str:
    path = tmp_path / f"in_{color[0]}_{color[1]}_{color[2]}.png"
    Image.new("RGB", size, color).save(path)
    return str(path)


def only_image(gallery: list[dict]) -> Image.Image:
    assert len(gallery) == 1, gallery
    return Image.open(gallery[0]["image"]).convert("RGB")


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def fake_history_status(fake: FakeComfyUI, prompt_id: str) -> str | None:
    entry = httpx.get(f"{fake.url}/history/{prompt_id}").json().get(prompt_id)
    return entry["status"]["status_str"] if entry else None


def widget_props(app: RunningApp, elem_id: str) -> dict:
    """The properties of the component with ``elem_id`` as the page receives them."""
    config = httpx.get(app.url + "config").json()
    return next(c["props"] for c in config["components"] if c["props"].get("elem_id") == elem_id)
