"""Against a real ComfyUI (opt in): ``COMFYUI_URL=http://127.0.0.1:8188 ./test.sh -m real``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from gradio_client import handle_file
from PIL import Image

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.errors import PromptRejected
from comfyui_gradio.comfy.events import NodeStarted, Progress
from tests.paths import WORKFLOWS
from tests.harness import RunningApp, only_image, picture, widget_props

pytestmark = pytest.mark.real
URL = os.environ.get("COMFYUI_URL", "").split(",")[0]


@pytest.fixture(scope="module")
def comfyui_url() -> str:
    if not URL:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    return URL


@pytest.fixture()
def running(comfyui_url: str, tmp_path: Path) -> Iterator[RunningApp]:
    app = RunningApp(comfyui_url, WORKFLOWS, tmp_path)
    yield app
    app.close()


def checkpoints(url: str) -> list[str]:
    return httpx.get(f"{url}/models/checkpoints", timeout=10).json()


def test_invert_through_the_app_inverts_the_pixels(running: RunningApp, tmp_path: Path) -> None:
    source = Image.effect_noise((32, 24), 80).convert("RGB")
    path = tmp_path / "noise.png"
    source.save(path)
    status, gallery, _ = running.client.predict(image=handle_file(str(path)), api_name="/invert")
    result = only_image(gallery)
    assert status.startswith("✅") and result.size == source.size
    for xy in [(0, 0), (5, 7), (31, 23), (16, 12)]:
        expected = tuple(255 - c for c in source.getpixel(xy))
        assert all(abs(a - b) <= 1 for a, b in zip(result.getpixel(xy), expected)), xy  # SaveImage rounds down


def test_zero_config_blur_resizes(running: RunningApp, tmp_path: Path) -> None:
    _, gallery, _ = running.client.predict(image=handle_file(picture(tmp_path, (120, 60, 30))), width=48, height=32,
                                           api_name="/blur")
    image = only_image(gallery)
    assert image.size == (48, 32) and all(abs(a - b) <= 1 for a, b in zip(image.getpixel((24, 16)), (120, 60, 30)))


def test_txt2img_through_the_app(running: RunningApp, comfyui_url: str) -> None:
    models = checkpoints(comfyui_url)
    if not models:
        pytest.skip("the server has no checkpoint")
    status, gallery, details = running.client.predict(prompt="a lighthouse", steps=3, width=64, height=64,
                                                      seed=5, seed_randomize=False, checkpoint=models[0],
                                                      api_name="/txt2img")
    assert status.endswith("· seed 5") and only_image(gallery).size == (64, 64)


def test_python_api_events_and_server_validation(comfyui_url: str, tmp_path: Path) -> None:
    models = checkpoints(comfyui_url)
    if not models:
        pytest.skip("the server has no checkpoint")
    with ComfyClient(comfyui_url, output_dir=tmp_path) as client:
        job = client.submit(WORKFLOWS / "txt2img.json", {"checkpoint": models[0], "steps": 3, "width": 64,
                                                          "height": 64})
        events = list(job.events())
        assert [e.value for e in events if isinstance(e, Progress)] == [1, 2, 3]
        assert "KSampler" in [e.title for e in events if isinstance(e, NodeStarted)]
        assert job.result(30).images[0].path.exists()
        with pytest.raises(PromptRejected) as caught:
            client.run(WORKFLOWS / "txt2img.json", {"checkpoint": "missing.safetensors"})
        assert str(caught.value).startswith("Checkpoint: value not in list: ckpt_name: 'missing.safetensors' not in")


def test_a_ui_format_workflow_is_typed_by_the_server_and_runs(comfyui_url: str, tmp_path: Path) -> None:
    import shutil

    from comfyui_gradio.forms.catalog import Catalog
    from comfyui_gradio.forms.convert import ui_to_api
    from tests.paths import ROOT

    source = ROOT / "tests" / "data" / "ui_invert_resize.json"
    object_info = httpx.get(f"{comfyui_url}/object_info", timeout=30).json()
    prompt = ui_to_api(json.loads(source.read_text()), Catalog(object_info))
    accepted = httpx.post(f"{comfyui_url}/prompt", json={"prompt": prompt}, timeout=30)
    assert accepted.status_code == 200 and accepted.json()["node_errors"] == {}  # passes real validation
    folder = tmp_path / "workflows"
    folder.mkdir()
    shutil.copy(source, folder / "resize.json")
    app = RunningApp(comfyui_url, folder, tmp_path)
    try:
        width = Catalog(object_info).input("ImageScale", "width")
        assert widget_props(app, "resize-width")["maximum"] == width.options["max"]
        assert widget_props(app, "resize-upscale_method")["choices"] == [[c, c] for c in
                                                                         Catalog(object_info).input(
                                                                             "ImageScale", "upscale_method").choices]
        _, gallery, _ = app.client.predict(image=handle_file(picture(tmp_path, (10, 20, 30))), height=30,
                                           api_name="/resize")
        image = only_image(gallery)
        assert image.size == (40, 30)
        assert all(abs(a - b) <= 1 for a, b in zip(image.getpixel((20, 15)), (245, 235, 225)))
    finally:
        app.close()
