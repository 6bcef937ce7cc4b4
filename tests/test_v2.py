"""Comfy API v2 backends through comfy-sdk: against a double of comfy-api-proxy (tests/v2_double.py),
and for real (``-m real``) through a comfy-api-proxy this test starts in front of COMFYUI_URL."""

from __future__ import annotations

import os
import time
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from PIL import Image

from comfyui_gradio.comfy.events import OutputReady, Preview, Progress, Queued, Started
from comfyui_gradio.comfy.v2 import V2Backend
from comfyui_gradio.errors import ExecutionFailed, JobCancelled, PromptRejected, ServerError, ServerUnavailable
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.harness import free_port, wait_for
from tests.paths import WORKFLOWS
from tests.replay import png_bytes
from tests.v2_double import BASE, V2Double


@pytest.fixture()
def invert() -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json")


def backend_for(double: V2Double, tmp_path: Path, api_key: str | None = None) -> V2Backend:
    return V2Backend(BASE, api_key=api_key, output_dir=tmp_path, http=httpx.Client(transport=double.transport()))


def test_a_run_uploads_its_image_as_an_asset_and_saves_the_output(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    job = backend_for(double, tmp_path).submit(invert, {"image": png_bytes((10, 200, 30))})
    events = list(job.events())
    result = job.result(timeout=5)
    (body,) = double.submitted
    reference = body["workflow"]["1"]["inputs"]["image"]
    assert reference["__type"] == "core/ASSET" and reference["info"]["id"] in double.assets
    assert reference["info"]["hash"].startswith("blake3:")
    assert body["workflow"]["3"]["inputs"] == {"filename_prefix": "comfyui-gradio/invert", "images": ["2", 0]}
    assert events == [Queued(0), Started(), Progress("2", "Invert Image", 1, 2),
                      Preview(b"\x89PNG\r\n\x1a\n", "image/png", "2"),
                      OutputReady("3", "Save Image", {"name": "invert_00001_.png"})]
    (image,) = result.images
    assert (image.node_id, image.output_name, image.path.parent) == ("3", "inverted", tmp_path / job.prompt_id)
    assert Image.open(image.path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)
    assert result.server == BASE


def test_a_job_the_proxy_calls_expired_as_it_finishes_is_read_again(invert: TabSpec, tmp_path: Path) -> None:
    """comfy-api-proxy 0.1.6 answers "expired" for a job that finished between its /history and /queue looks."""
    double = V2Double()
    double.expired_reads = 1
    result = backend_for(double, tmp_path).run(invert, {"image": png_bytes((10, 200, 30))}, timeout=5)
    (image,) = result.images
    assert Image.open(image.path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)
    assert double.expired_reads == 0


def test_an_image_the_server_has_is_not_uploaded_again(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    backend = backend_for(double, tmp_path)
    for _ in range(2):
        backend.run(invert, {"image": png_bytes()})
    assert double.calls.count("POST /assets") == 1 and double.calls.count("POST /assets/from-hash") == 1
    first, second = (b["workflow"]["1"]["inputs"]["image"]["info"]["id"] for b in double.submitted)
    assert first == second


def test_a_failed_node_is_named(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.ending = "failed"
    with pytest.raises(ExecutionFailed) as caught:
        backend_for(double, tmp_path).run(invert, {"image": png_bytes()})
    assert str(caught.value) == "Invert Image (node 2) failed: ImageInvert: CUDA out of memory"


def test_a_rejected_workflow_names_the_form_field(invert: TabSpec, tmp_path: Path) -> None:
    """node_errors as ComfyUI 0.3.64 sent them through comfy-api-proxy 0.1.6 (seen with the real pair)."""
    double = V2Double()
    node_errors = {"1": {"errors": [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                     "details": "image - Invalid image file: gone.png",
                                     "extra_info": {"input_name": "image"}}],
                         "dependent_outputs": ["3"], "class_type": "LoadImage"}}
    double.reject = {"code": "invalid_workflow", "message": "Prompt outputs failed validation",
                     "details": {"node_errors": node_errors}}
    with pytest.raises(PromptRejected) as caught:
        backend_for(double, tmp_path).submit(invert, {"image": "gone.png"})
    assert str(caught.value) == "Picture: custom validation failed for node: image - Invalid image file: gone.png"
    assert caught.value.field_errors == {"image": str(caught.value)} and caught.value.node_errors == node_errors
    double.reject = {"code": "invalid_workflow", "message": "Missing 'workflow' (API-format graph).", "details": {}}
    with pytest.raises(PromptRejected) as plain:
        backend_for(double, tmp_path).submit(invert, {"image": "gone.png"})
    assert str(plain.value) == f"{BASE} rejected the workflow: Missing 'workflow' (API-format graph)."


def test_a_refused_key_says_what_to_set_and_is_never_shown(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double(api_key="right-key")
    backend = backend_for(double, tmp_path, api_key="wrong-key")
    with pytest.raises(ServerError) as probe:
        backend.queue_state()
    assert str(probe.value) == (f"The Comfy API v2 endpoint {BASE} refused the API key (HTTP 401); set COMFY_API_KEY "
                                "(or COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL).")
    with pytest.raises(ServerError) as submit:
        backend.submit(invert, {"image": png_bytes()})
    assert str(submit.value) == (f"The Comfy API v2 endpoint {BASE} refused the API key (unauthorized); set "
                                 "COMFY_API_KEY (or COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL).")
    assert "wrong-key" not in repr(backend) + repr(backend.sdk) + str(probe.value) + str(submit.value)
    assert backend_for(double, tmp_path, api_key="right-key").queue_state() == {"queue_running": [],
                                                                                 "queue_pending": []}


def test_cancel_asks_the_server_and_ends_the_job(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.ending = "running"
    job = backend_for(double, tmp_path).submit(invert, {"image": png_bytes()})
    wait_for(lambda: job.started_at is not None)
    job.cancel()
    with pytest.raises(JobCancelled, match="^Cancelled by you.$"):
        job.result(timeout=5)
    assert any(c.endswith("/cancel") for c in double.calls)
    asked = len(double.calls)
    time.sleep(0.5)  # the job has ended here: nothing more is polled or downloaded for it (the SDK may have
    later = double.calls[asked:]  # reopened its event stream once already: that ends at its first event)
    assert len(later) <= 1 and all(c.endswith("/events") for c in later) and not job.job_dir.exists(), later


def test_an_endpoint_that_cannot_be_reached(invert: TabSpec, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = V2Backend(url, output_dir=tmp_path)
    with pytest.raises(ServerUnavailable) as caught:
        backend.queue_state()
    backend.close()
    assert str(caught.value).startswith(f"Cannot reach the Comfy API v2 endpoint at {url} (")
    assert str(caught.value).endswith("). Check its address in COMFYUI_URL and that this machine can reach it, "
                                      "then try again.")  # not "Start ComfyUI": it may be Comfy Cloud


# ---- for real: comfy-api-proxy in front of a real ComfyUI -------------------------------------------

PROXY = shutil.which("comfy-api-proxy") or os.environ.get("COMFY_API_PROXY", "")
COMFYUI = os.environ.get("COMFYUI_URL", "").split(",")[0]


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    """A comfy-api-proxy (PyPI 0.1.6) of its own in front of COMFYUI_URL (``COMFY_API_PROXY`` may name
    its executable, e.g. one in a venv of its own)."""
    if not COMFYUI:
        pytest.skip("set COMFYUI_URL to a real ComfyUI to run the Comfy API v2 backend through comfy-api-proxy")
    if not PROXY:
        pytest.skip("comfy-api-proxy is not installed (pip install comfy-api-proxy==0.1.6, or set COMFY_API_PROXY "
                    "to its executable)")
    port = free_port()
    process = subprocess.Popen([PROXY, "run", "--comfyui", COMFYUI, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v2/health").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.real
@pytest.mark.parametrize("name", ["invert", "blur"])
def test_the_shipped_workflows_run_through_a_real_comfy_api_proxy(proxy: str, name: str, tmp_path: Path) -> None:
    backend = V2Backend(proxy, output_dir=tmp_path)
    tab = load_tab(WORKFLOWS / f"{name}.json")
    source = png_bytes((10, 200, 30), size=(16, 16))
    result = backend.run(tab, {"image": source}, timeout=120)
    (image,) = result.images
    pixel = Image.open(image.path).convert("RGB").getpixel((8, 8))
    expected = (245, 55, 225) if name == "invert" else (10, 200, 30)  # a blur of one colour is that colour
    assert all(abs(a - b) <= 1 for a, b in zip(pixel, expected)), pixel
    backend.close()


@pytest.mark.real
def test_a_rejection_through_a_real_comfy_api_proxy_names_the_field(proxy: str, tmp_path: Path) -> None:
    backend = V2Backend(proxy, output_dir=tmp_path)
    with pytest.raises(PromptRejected) as caught:
        backend.submit(load_tab(WORKFLOWS / "invert.json"), {"image": "gone.png"})
    assert caught.value.field_errors == {
        "image": "Picture: custom validation failed for node: image - Invalid image file: gone.png"}
    backend.close()


@pytest.mark.real
def test_cancel_through_comfy_api_proxy_needs_a_newer_comfyui(proxy: str, tmp_path: Path) -> None:
    """comfy-api-proxy 0.1.6 cancels with ComfyUI's POST /api/jobs/{id}/cancel, which 0.3.64 lacks: the job
    ends here as cancelled, and the server finishes it anyway."""
    backend = V2Backend(proxy, output_dir=tmp_path)
    before = set(httpx.get(f"{COMFYUI}/history").json())
    slow = {"image": png_bytes((1, 2, 3), size=(1024, 1024)), "blur_radius": 31}  # seconds on a CPU
    job = backend.submit(load_tab(WORKFLOWS / "blur.json"), slow)
    job.cancel()
    with pytest.raises(JobCancelled):
        job.result(timeout=30)

    def finished_anyway() -> bool:
        later = httpx.get(f"{COMFYUI}/history").json()
        return any(later[p]["status"].get("status_str") == "success" for p in set(later) - before)
    wait_for(finished_anyway, timeout=60)
    backend.close()


@pytest.mark.real
def test_the_app_runs_its_tabs_unchanged_on_a_v2_entry(proxy: str, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from tests.harness import RunningApp, only_image, picture

    running = RunningApp(f"v2+{proxy}", WORKFLOWS, tmp_path)
    try:
        status, gallery, _ = running.client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))),
                                                    api_name="/invert")
        assert status.startswith("✅")
        assert all(abs(a - b) <= 1 for a, b in zip(only_image(gallery).getpixel((3, 3)), (245, 55, 225)))
        assert running.backend.statuses()[0].kind == "v2"
    finally:
        running.close()
