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

from comfyui_gradio.comfy.backend import Log
from comfyui_gradio.comfy.events import OutputReady, Preview, Progress, Queued, Started
from comfyui_gradio.comfy.v2 import V2Backend
from comfyui_gradio.errors import ExecutionFailed, JobCancelled, PromptRejected, ServerError, ServerUnavailable
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.harness import free_port, wait_for
from tests.paths import WORKFLOWS
from tests.replay import png_bytes
from tests.v2_double import BASE, PREVIEW, V2Double


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


# ---- each end of a job, each live event, each refusal -------------------------------------------------

def run_with(double: V2Double, invert: TabSpec, tmp_path: Path):
    job = backend_for(double, tmp_path).submit(invert, {"image": png_bytes((10, 200, 30))})
    try:
        return job, job.result(timeout=5)
    except Exception as exc:  # the events are read after the ending
        return job, exc


def test_a_job_cancelled_on_the_server_says_so_and_saves_nothing(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.ending = "canceled"
    job, ended = run_with(double, invert, tmp_path)
    assert type(ended) is JobCancelled and str(ended) == "Cancelled on the server; nothing was saved."
    assert not any(c.endswith("/content") for c in double.calls) and not job.job_dir.exists()


@pytest.mark.parametrize(("error", "reason"), [
    ({"code": "node_execution_error", "message": "CUDA out of memory", "node_id": None, "class_type": None,
      "traceback": None}, "CUDA out of memory"),
    ({"code": "node_execution_error", "message": "Disk full", "node_id": "", "class_type": None,
      "traceback": None}, "Disk full"),
    (None, "no reason given"),
])
def test_a_failure_without_a_node_is_a_server_error(invert: TabSpec, tmp_path: Path, error, reason: str) -> None:
    double = V2Double()
    double.ending, double.error = "failed", error
    _, ended = run_with(double, invert, tmp_path)
    assert type(ended) is ServerError
    assert str(ended) == f"The job failed on {BASE}: {reason}. Check the workflow, then run it again."


def test_a_failed_node_without_its_class_is_named(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.ending = "failed"
    double.error = {"code": "node_execution_error", "message": "bad pixels", "node_id": "2", "class_type": None,
                    "traceback": None}
    _, ended = run_with(double, invert, tmp_path)
    assert type(ended) is ExecutionFailed
    assert str(ended) == "Invert Image (node 2) failed: bad pixels" and ended.exception_type == ""


def test_a_job_that_stays_expired_is_asked_about_three_more_times_then_reported(invert: TabSpec,
                                                                                 tmp_path: Path) -> None:
    double = V2Double()
    double.expired_reads = 100
    _, ended = run_with(double, invert, tmp_path)
    assert type(ended) is ServerError
    assert str(ended) == f"The job ended 'expired' on {BASE} (the backend no longer has it); run it again."
    reads = [c for c in double.calls if c.startswith("GET /jobs/") and c.count("/") == 2]
    assert 100 - double.expired_reads == len(reads) and len(reads) >= 4  # the wait's read, then three again


def test_an_expired_job_read_again_on_the_third_try_succeeds(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.expired_reads = 3  # the wait's read and two of the three reads again
    _, result = run_with(double, invert, tmp_path)
    assert Image.open(result.images[0].path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)


@pytest.mark.parametrize(("live", "expected"), [
    ([("progress", {"value": 0.1, "current_node": "2", "step": 3, "steps": 20, "nodes_done": 0, "nodes_total": 2})],
     [Progress("2", "Invert Image", 3, 20)]),  # sampler steps come before node counts
    ([("progress", {"value": 0.1, "current_node": "2", "step": None, "steps": 20})],
     [Progress("2", "Invert Image", 0, 20)]),
    ([("progress", {"value": 0.5, "current_node": None, "nodes_done": 1, "nodes_total": 2})],
     [Progress("", "Running", 1, 2)]),
    ([("progress", {"value": 0.5, "current_node": "3", "nodes_done": None, "nodes_total": 2})],
     [Progress("3", "Save Image", 0, 2)]),
    ([("progress", {"value": 0.5, "current_node": "2", "steps": 0, "nodes_total": 0})], []),
    ([("progress", {"value": 0.5})], []),
    ([("preview", {"node_id": "", "content_type": "image/jpeg", "data_base64": PREVIEW})],
     [Preview(b"\x89PNG\r\n\x1a\n", "image/jpeg", None)]),
    ([("preview", {"node_id": "2", "content_type": "image/png", "data_base64": ""})], []),
    ([("log", {"level": "info", "message": "got prompt"})], [Log("got prompt")]),
    ([("status", {"status": "queued", "queue_position": 4})], [Queued(3)]),
    ([("status", {"status": "queued", "queue_position": 0})], [Queued(0)]),
    ([("status", {"status": "queued", "queue_position": None})], [Queued(None)]),
    ([("unknown", {"x": 1}), ("status", {"status": "paused"})], []),
])
def test_live_events_become_the_packages_events(invert: TabSpec, tmp_path: Path, live, expected) -> None:
    double = V2Double()
    double.live = live
    job, _ = run_with(double, invert, tmp_path)
    events = list(job.events())
    assert events[:2] == [Queued(0), Started()]
    assert [e for e in events[2:] if not isinstance(e, OutputReady)] == expected


def test_a_broken_event_stream_falls_back_to_polling(invert: TabSpec, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    double = V2Double()
    double.events_status = 500
    job, result = run_with(double, invert, tmp_path)
    assert Image.open(result.images[0].path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)
    assert not [e for e in job.events() if isinstance(e, (Progress, Preview))]
    (job_id,) = double.jobs
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"Lost the event stream of job {job_id} on {BASE} (") and warning.endswith("); polling")
    assert "The event stream failed." in warning


def test_each_output_is_downloaded_with_its_bytes_and_kind(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.outputs = [("3", "a_00001_.png", "image", png_bytes((1, 2, 3))), ("3", "clip.bin", "video", b"video"),
                      ("3", "sound.bin", "audio", b"audio"), ("3", "notes.bin", "text", b"text")]
    job, result = run_with(double, invert, tmp_path)
    assert [(o.path.name, o.kind, o.node_id, o.output_name) for o in result.outputs] == [
        ("3_a_00001_.png", "image", "3", "inverted"), ("3_clip.bin", "video", "3", "inverted"),
        ("3_sound.bin", "audio", "3", "inverted"), ("3_notes.bin", "file", "3", "inverted")]
    assert [o.path.read_bytes() for o in result.outputs] == [png_bytes((1, 2, 3)), b"video", b"audio", b"text"]
    assert {o.path.parent for o in result.outputs} == {tmp_path / job.prompt_id}


def test_the_job_is_sent_with_its_run_id_and_the_form_values_stay_as_they_were(invert: TabSpec,
                                                                               tmp_path: Path) -> None:
    double = V2Double()
    job = backend_for(double, tmp_path).submit(invert, {"image": png_bytes()}, prompt_id="run-1")
    job.result(timeout=5)
    (headers,) = double.job_headers
    assert headers["idempotency-key"] == "run-1"
    assert job.prepared.prompt["1"]["inputs"]["image"] == double.submitted[0]["workflow"]["1"]["inputs"][
        "image"]["info"]["file_path"]  # the prepared prompt keeps the stored name; the asset went only to the server
    assert isinstance(job.prepared.prompt["1"]["inputs"]["image"], str)


@pytest.mark.parametrize(("status", "expected"), [(404, None), (500, "answered HTTP 500"), (503, "answered HTTP 503"),
                                                  (403, "refused the API key (HTTP 403)")])
def test_the_health_check(tmp_path: Path, status: int, expected: str | None) -> None:
    double = V2Double()
    double.health_status = status
    backend = backend_for(double, tmp_path)
    if expected is None:  # a surface without /health is still there
        assert backend.queue_state() == {"queue_running": [], "queue_pending": []}
        return
    with pytest.raises(ServerError) as caught:
        backend.queue_state()
    tail = ("; try again later." if status >= 500 else
            "; set COMFY_API_KEY (or COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL).")
    assert str(caught.value) == f"The Comfy API v2 endpoint {BASE} {expected}{tail}"


@pytest.mark.parametrize(("status", "error", "message"), [
    (402, {"code": "insufficient_credits", "message": "No credits.", "details": {}},
     f"The account behind the API key for {BASE} has no credits left; add credits, then run again."),
    (403, {"code": "forbidden", "message": "Not yours.", "details": {}},
     f"The Comfy API v2 endpoint {BASE} refused the API key (forbidden); set COMFY_API_KEY (or COMFY_API_KEY_<n> "
     "for the n-th entry of COMFYUI_URL)."),
    (403, {"code": "some_new_code", "message": "Not yours.", "details": {}},
     f"The Comfy API v2 endpoint {BASE} refused the API key (some_new_code); set COMFY_API_KEY (or "
     "COMFY_API_KEY_<n> for the n-th entry of COMFYUI_URL)."),
    (400, {"code": "bad_request", "message": "Body too large.", "details": {}},
     f"The Comfy API v2 endpoint {BASE} answered: Body too large. (bad_request)."),
    (400, {"code": "missing_asset", "message": "Asset abc is not scanned.", "details": {}},
     f"{BASE} does not have an uploaded input (Asset abc is not scanned.); run it again."),
])
def test_a_refused_job_says_why(invert: TabSpec, tmp_path: Path, status: int, error: dict, message: str) -> None:
    double = V2Double()
    double.reject, double.reject_status = error, status
    with pytest.raises(ServerError) as caught:
        backend_for(double, tmp_path).submit(invert, {"image": png_bytes()})
    assert type(caught.value) is ServerError and str(caught.value) == message


def test_a_plain_rejection_keeps_its_code(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.reject = {"code": "workflow_format_ui", "message": "That is a UI export.", "details": None}
    with pytest.raises(PromptRejected) as caught:
        backend_for(double, tmp_path).submit(invert, {"image": png_bytes()})
    assert str(caught.value) == f"{BASE} rejected the workflow: That is a UI export."
    assert (caught.value.error_type, caught.value.node_errors, caught.value.field_errors) == (
        "workflow_format_ui", {}, {})


def test_an_answer_that_breaks_is_a_server_error(invert: TabSpec, tmp_path: Path) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    backend = V2Backend(BASE, output_dir=tmp_path, http=httpx.Client(transport=httpx.MockTransport(broken)))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert type(caught.value) is ServerError
    assert str(caught.value) == f"The Comfy API v2 endpoint {BASE} did not answer properly (timed out); try again."


def test_an_expired_answer_is_asked_about_again_only_until_it_is_not(invert: TabSpec, tmp_path: Path) -> None:
    double = V2Double()
    double.expired_reads = 2  # the wait's read and the first read again
    job, result = run_with(double, invert, tmp_path)
    assert result.images and double.expired_reads == 0
    (job_id,) = double.jobs
    assert double.calls.count(f"GET /jobs/{job_id}") == 3
