"""The app in-process, called through gradio_client, against the ComfyUI test double."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from comfyui_gradio.app import create_app
from comfyui_gradio.config import Settings
from tests.conftest import WORKFLOWS
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
        self.app.launch(server_port=self.settings.server_port, prevent_thread_lock=True, quiet=True,
                        allowed_paths=[str(self.settings.output_dir.resolve())])
        self.url = f"http://127.0.0.1:{self.settings.server_port}/"
        self.client = Client(self.url, verbose=False)

    def close(self) -> None:
        self.app.close()
        self.backend.close()


@pytest.fixture()
def fake() -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as server:
        yield server


@pytest.fixture()
def running(fake: FakeComfyUI, tmp_path: Path) -> Iterator[RunningApp]:
    app = RunningApp(fake.url, WORKFLOWS, tmp_path)
    yield app
    app.close()


def picture(tmp_path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> str:
    path = tmp_path / f"in_{color[0]}_{color[1]}_{color[2]}.png"
    Image.new("RGB", size, color).save(path)
    return str(path)


def only_image(gallery: list[dict]) -> Image.Image:
    assert len(gallery) == 1, gallery
    return Image.open(gallery[0]["image"]).convert("RGB")


def test_every_shipped_workflow_is_an_endpoint_with_named_parameters(running: RunningApp) -> None:
    api = running.client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/txt2img", "/img2img", "/invert", "/blur"} <= set(api)
    names = [p["parameter_name"] for p in api["/txt2img"]["parameters"]]
    assert names == ["prompt", "negative_prompt", "seed", "seed_randomize", "steps", "cfg", "width", "height",
                     "sampler", "checkpoint", "runs", "seed_mode"]  # the browser's owner id is not in the API


def test_invert_returns_inverted_pixels(running: RunningApp, tmp_path: Path) -> None:
    status, gallery, details = running.client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))),
                                                      api_name="/invert")
    assert status.startswith("✅ Done in ")
    image = only_image(gallery)
    assert image.size == (24, 16) and image.getpixel((3, 3)) == (245, 55, 225)
    assert gallery[0]["caption"] == "inverted"
    assert details["values"]["image"].startswith("comfyui-gradio/")  # uploaded, never a local path


def test_txt2img_runs_with_the_seed_reported(running: RunningApp, fake: FakeComfyUI) -> None:
    status, gallery, details = running.client.predict(
        prompt="a red fox", seed=1234, seed_randomize=False, steps=3, width=64, height=96,
        checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    assert status == f"✅ Done in {details['duration_s']:.1f} s · seed 1234"
    assert only_image(gallery).size == (64, 96)
    sent = fake.prompts[-1]["prompt"]
    assert sent["6"]["inputs"]["text"] == "a red fox" and sent["3"]["inputs"]["seed"] == 1234
    assert type(sent["3"]["inputs"]["steps"]) is int and sent["3"]["inputs"]["steps"] == 3
    _, _, again = running.client.predict(prompt="a red fox", steps=3, width=64, height=64,
                                         checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    assert again["seeds"]["seed"] != 1234  # "Randomize" is ticked by default


def test_img2img_and_zero_config_blur(running: RunningApp, tmp_path: Path) -> None:
    _, gallery, _ = running.client.predict(image=handle_file(picture(tmp_path, (0, 0, 255), (64, 64))),
                                           prompt="oil painting", steps=2,
                                           checkpoint="tiny-random-sd15.safetensors", api_name="/img2img")
    assert only_image(gallery).size == (64, 64)
    _, gallery, _ = running.client.predict(image=handle_file(picture(tmp_path, (90, 90, 90))), width=40,
                                           height=30, api_name="/blur")
    blurred = only_image(gallery)
    assert blurred.size == (40, 30) and blurred.getpixel((20, 15)) == (90, 90, 90)


def test_out_of_range_value_is_refused_before_reaching_comfyui(running: RunningApp, fake: FakeComfyUI) -> None:
    with pytest.raises(Exception) as caught:
        running.client.predict(prompt="x", steps=500, api_name="/txt2img")
    assert "Value 500 is greater than maximum value 50" in str(caught.value)  # Gradio's Slider check
    assert fake.prompts == []


def test_rejected_prompt_names_the_field(fake: FakeComfyUI, tmp_path: Path) -> None:
    fake.checkpoints = ["gone.safetensors", "tiny-random-sd15.safetensors"]
    app = RunningApp(fake.url, WORKFLOWS, tmp_path)
    try:
        fake.checkpoints = ["tiny-random-sd15.safetensors"]  # the model was deleted after the app started
        with pytest.raises(Exception) as caught:
            app.client.predict(prompt="x", steps=2, checkpoint="gone.safetensors", api_name="/txt2img")
        assert "Checkpoint: value not in list: ckpt_name: 'gone.safetensors' not in" in str(caught.value)
    finally:
        app.close()


def test_broken_schema_gets_an_error_tab_and_other_tabs_work(fake: FakeComfyUI, tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name in ("invert.json", "invert.yaml", "txt2img.json"):
        shutil.copy(WORKFLOWS / name, folder / name)
    (folder / "txt2img.yaml").write_text("inputs:\n  steps: {node: '3', input: stepz}\n")
    app = RunningApp(fake.url, folder, tmp_path)
    try:
        page = httpx.get(app.url + "config").text
        assert "inputs.steps: node &#x27;3&#x27; has no input &#x27;stepz&#x27;" in page or \
               "inputs.steps: node '3' has no input 'stepz'" in page
        endpoints = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert "/txt2img" not in endpoints
        _, gallery, _ = app.client.predict(image=handle_file(picture(tmp_path, (0, 0, 0))), api_name="/invert")
        assert only_image(gallery).getpixel((0, 0)) == (255, 255, 255)
    finally:
        app.close()


def test_app_starts_without_comfyui_and_works_once_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    app = RunningApp(f"http://127.0.0.1:{port}", WORKFLOWS, tmp_path)
    try:
        assert "ComfyUI is not reachable" in httpx.get(app.url + "config").text
        with pytest.raises(Exception) as caught:
            app.client.predict(image=handle_file(picture(tmp_path, (1, 2, 3))), api_name="/invert")
        assert f"Cannot reach ComfyUI at http://127.0.0.1:{port}" in str(caught.value)
        with FakeComfyUI(port=port):
            _, gallery, _ = app.client.predict(image=handle_file(picture(tmp_path, (1, 2, 3))), api_name="/invert")
            assert only_image(gallery).getpixel((0, 0)) == (254, 253, 252)
    finally:
        app.close()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_users_are_not_serialised_behind_one_job(running: RunningApp, fake: FakeComfyUI) -> None:
    fake.step_delay = 0.2
    slow = running.client.submit(prompt="slow", steps=20, width=64, height=64,
                                 checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 1)
    other = Client(running.url, verbose=False)
    fast = threading.Thread(target=lambda: other.predict(prompt="fast", steps=1, width=64, height=64,
                                                         checkpoint="tiny-random-sd15.safetensors",
                                                         api_name="/txt2img"))
    fast.start()
    wait_for(lambda: len(fake.prompts) == 2)  # the second user's prompt reached ComfyUI while the first runs
    assert not slow.done()
    slow.cancel()
    fast.join(timeout=30)


def test_cancel_from_gradio_client_interrupts_only_that_job(running: RunningApp, fake: FakeComfyUI) -> None:
    fake.step_delay = 0.3
    job = running.client.submit(prompt="long", steps=30, width=64, height=64,
                                checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 1)
    prompt_id = fake.prompts[0]["prompt_id"]
    time.sleep(0.5)
    job.cancel()
    wait_for(lambda: ("POST", "/interrupt") in fake.requests)
    wait_for(lambda: fake_history_status(fake, prompt_id) == "error", timeout=15)


def fake_history_status(fake: FakeComfyUI, prompt_id: str) -> str | None:
    entry = httpx.get(f"{fake.url}/history/{prompt_id}").json().get(prompt_id)
    return entry["status"]["status_str"] if entry else None
