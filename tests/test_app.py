"""The app in-process, called through gradio_client, against the ComfyUI test double.

The tests share one double and one app (``module_app``): each gets the double idle with its knobs put
back after, and a client of its own (its own session, runs and limits). A test that needs other
workflows or settings starts its own app on the double.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.paths import ROOT, WORKFLOWS
from tests.fake_comfyui import FakeComfyUI
from comfyui_gradio.web.runs import owner_folder
from tests.harness import RunningApp, fake_history_status, free_port, only_image, picture, wait_for, widget_props


@pytest.fixture()
def fake(shared_fake: FakeComfyUI) -> FakeComfyUI:
    return shared_fake


@pytest.fixture()
def running(shared_running: RunningApp) -> RunningApp:
    return shared_running


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
    with pytest.raises(AppError) as caught:
        running.client.predict(prompt="x", steps=500, api_name="/txt2img")
    assert caught.value.message == "Value 500 is greater than maximum value 50."  # Gradio's Slider check
    assert fake.prompts == []


def test_rejected_prompt_names_the_field(fake: FakeComfyUI, tmp_path: Path) -> None:
    fake.checkpoints = ["gone.safetensors", "tiny-random-sd15.safetensors"]
    app = RunningApp(fake.url, WORKFLOWS, tmp_path)
    try:
        fake.checkpoints = ["tiny-random-sd15.safetensors"]  # the model was deleted after the app started
        with pytest.raises(AppError) as caught:
            app.client.predict(prompt="x", steps=2, checkpoint="gone.safetensors", api_name="/txt2img")
        assert (caught.value.title, caught.value.message) == (
            "Could not start", "Checkpoint: value not in list: ckpt_name: 'gone.safetensors' not in "
                               "['tiny-random-sd15.safetensors']")
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
        with pytest.raises(AppError) as caught:
            app.client.predict(image=handle_file(picture(tmp_path, (1, 2, 3))), api_name="/invert")
        assert caught.value.title == "Could not start"
        # The pool wraps the client's whole message in a second one (comfy/pool.py): hence no == here.
        assert caught.value.message.startswith(f"Cannot reach ComfyUI at http://127.0.0.1:{port} (")
        assert caught.value.message.endswith(". Start ComfyUI (python main.py --listen) or set COMFYUI_URL / "
                                             "--comfyui-url to its address.")
        with FakeComfyUI(port=port):
            _, gallery, _ = app.client.predict(image=handle_file(picture(tmp_path, (1, 2, 3))), api_name="/invert")
            assert only_image(gallery).getpixel((0, 0)) == (254, 253, 252)
    finally:
        app.close()


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
    fake.step_delay = 0.1
    cancelled = running.client.submit(prompt="long", seed=1, seed_randomize=False, steps=30, width=64, height=64,
                                      checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 1)
    other = Client(running.url, verbose=False).submit(prompt="other", seed=2, seed_randomize=False, steps=2,
                                                      width=64, height=64, checkpoint="tiny-random-sd15.safetensors",
                                                      api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 2)  # another person's job, waiting behind the first on the double
    cancelled_id, other_id = (p["prompt_id"] for p in fake.prompts)
    wait_for(lambda: [item[1] for item in httpx.get(f"{fake.url}/queue").json()["queue_running"]] == [cancelled_id])
    cancelled.cancel()
    status, gallery, details = other.result(timeout=30)  # the other job keeps going, with its own result
    assert status.startswith("✅"), status
    assert (status, details["prompt_id"]) == (f"✅ Done in {details['duration_s']:.1f} s · seed 2", other_id)
    assert only_image(gallery).size == (64, 64)
    assert ("POST", "/interrupt") in fake.requests
    assert fake_history_status(fake, cancelled_id) == "error"  # stopped, not finished
    assert fake_history_status(fake, other_id) == "success"


def test_tabs_say_what_the_server_lacks_and_when_the_catalogue_is_stale(tmp_path: Path, object_info: dict) -> None:
    from comfyui_gradio.forms.catalog import Catalog
    from comfyui_gradio.forms.loader import discover_tabs

    notes = {t.name: t.spec.notes for t in discover_tabs(WORKFLOWS, Catalog(object_info))}
    assert notes["txt2img"] == ("On this ComfyUI server: needs model v1-5-pruned-emaonly-fp16.safetensors. Pick "
                                "another under *Advanced*, or add it to ComfyUI.",)
    assert notes["invert"] == ()
    stale = {t.name: t.spec.notes for t in discover_tabs(WORKFLOWS, Catalog(object_info, stale=True))}
    assert stale["invert"] == ("ComfyUI was not reachable when the app started, so this form uses the node list "
                               "saved earlier: choices (models, samplers) may be out of date.",)
    offline = {t.name: t.spec.notes for t in discover_tabs(WORKFLOWS, None) if t.spec}  # UI files need the server
    assert offline["invert"][0].startswith("ComfyUI was not reachable when the app started, so this form was built")


def test_runs_with_incrementing_seeds_fill_the_gallery_and_leave_records(running: RunningApp) -> None:
    status, gallery, details = running.client.predict(
        prompt="three foxes", seed=100, seed_randomize=False, steps=1, width=64, height=64, runs=3,
        seed_mode="increment", checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    assert [d["seeds"]["seed"] for d in details] == [100, 101, 102]
    assert len(gallery) == 3 and status.endswith("seed 100, seed 101, seed 102")
    records = sorted((running.settings.output_dir / owner_folder(running.client.session_hash)).glob("*/record.json"))
    assert len(records) == 3
    record = json.loads(records[0].read_text())
    assert record["status"] == "done" and record["tab"] == "txt2img"
    assert record["record"]["prompt"]["6"]["inputs"]["text"] == "three foxes"
    assert record["record"]["workflow_sha256"] and record["record"]["schema_sha256"]
    assert record["record"]["server"] == running.settings.comfyui_url
    assert Path(record["outputs"][0]["path"]).parent == records[0].parent


def test_random_seed_runs_differ(running: RunningApp) -> None:
    _, gallery, details = running.client.predict(prompt="x", steps=1, width=64, height=64, runs=2,
                                                 checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    assert len({d["seeds"]["seed"] for d in details}) == 2 and len(gallery) == 2


def test_runs_in_flight_are_limited_per_person(running: RunningApp, fake: FakeComfyUI) -> None:
    fake.step_delay = 0.2
    first = running.client.submit(prompt="a", steps=30, width=64, height=64, runs=4,
                                  checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 4)
    with pytest.raises(AppError) as caught:
        running.client.predict(image=handle_file(picture(Path(fake.base_dir), (1, 1, 1))), api_name="/invert")
    assert (caught.value.title, caught.value.message) == (
        "Too many runs", "You already have 4 run(s) going and may have at most 4 at once. Wait for one to finish, "
                         "or cancel it.")
    other = Client(running.url, verbose=False)  # another person is not affected
    inverted = other.submit(image=handle_file(picture(Path(fake.base_dir), (1, 1, 1))), api_name="/invert")
    wait_for(lambda: len(fake.prompts) == 5)  # accepted while the first person's four are going
    first.cancel()  # the double runs one prompt at a time: the other person's waits behind the four
    _, gallery, _ = inverted.result(timeout=30)
    assert only_image(gallery).getpixel((0, 0)) == (254, 254, 254)


def test_cancelling_a_waiting_job_removes_it_from_the_queue(running: RunningApp, fake: FakeComfyUI) -> None:
    fake.step_delay = 0.2
    busy = Client(running.url, verbose=False).submit(prompt="a", steps=15, width=64, height=64,
                                                     checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 1)
    waiting = running.client.submit(prompt="b", steps=15, width=64, height=64,
                                    checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 2)
    waiting_id = fake.prompts[1]["prompt_id"]
    waiting.cancel()
    wait_for(lambda: any(r == ("POST", "/queue") for r in fake.requests))
    fake.step_delay = 0.0  # the rest of the busy job need not take its time
    status, gallery, _ = busy.result(timeout=30)  # the other person's job finishes normally
    assert status.startswith("✅") and len(gallery) == 1
    assert fake_history_status(fake, waiting_id) is None  # never ran


def test_twenty_concurrent_jobs_each_get_their_own_result(running: RunningApp, tmp_path: Path) -> None:
    colors = [(i * 12, 255 - i * 12, (i * 37) % 256) for i in range(20)]
    clients = [Client(running.url, verbose=False) for _ in range(4)]
    jobs = []
    for index, color in enumerate(colors):
        api = "/invert" if index % 2 else "/blur"
        extra = {} if api == "/invert" else {"width": 24, "height": 16}
        jobs.append((color, api, clients[index % 4].submit(image=handle_file(picture(tmp_path, color)),
                                                           api_name=api, **extra)))
    for color, api, job in jobs:
        _, gallery, details = job.result(timeout=60)
        pixel = only_image(gallery).getpixel((5, 5))
        expected = tuple(255 - c for c in color) if api == "/invert" else color
        assert pixel == expected, (api, color, pixel)
    for client in clients:  # one folder per caller, with its five runs
        assert len(list((running.settings.output_dir / owner_folder(client.session_hash)).glob("*/record.json"))) == 5


def test_a_ui_format_workflow_without_schema_becomes_a_typed_tab(fake: FakeComfyUI, tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "ui_invert_resize.json", folder / "resize.json")
    app = RunningApp(fake.url, folder, tmp_path)
    try:
        api = app.client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/resize"]
        params = {p["parameter_name"]: p for p in api["parameters"]}
        assert list(params) == ["image", "upscale_method", "width", "height", "crop", "runs"]
        assert params["width"]["parameter_default"] == 40  # the primitive's value
        assert widget_props(app, "resize-width")["maximum"] == 16384  # the server's range
        methods = params["upscale_method"]["python_type"]["type"]
        assert "'nearest-exact'" in methods and "'lanczos'" in methods  # the server's choices
        _, gallery, _ = app.client.predict(image=handle_file(picture(tmp_path, (10, 20, 30))), height=30,
                                           api_name="/resize")
        image = only_image(gallery)
        assert image.size == (40, 30) and image.getpixel((20, 15)) == (245, 235, 225)
    finally:
        app.close()


def test_incrementing_seeds_start_from_a_random_one_when_randomize_is_ticked(running: RunningApp) -> None:
    _, _, details = running.client.predict(prompt="x", steps=1, width=64, height=64, runs=3, seed_mode="increment",
                                           checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    first = details[0]["seeds"]["seed"]
    assert [d["seeds"]["seed"] for d in details] == [first, first + 1, first + 2]
    assert first != 156680208700286  # not the workflow's seed: Randomize is ticked by default


def test_random_runs_of_a_fixed_seed_still_differ(running: RunningApp) -> None:
    _, _, details = running.client.predict(prompt="x", seed=5, seed_randomize=False, steps=1, width=64, height=64,
                                           runs=3, checkpoint="tiny-random-sd15.safetensors", api_name="/txt2img")
    seeds = [d["seeds"]["seed"] for d in details]
    assert seeds[0] == 5 and len(set(seeds)) == 3


def test_text_and_preview_outputs_reach_their_components(fake: FakeComfyUI, tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "probe.json").write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 1, "color": 255}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}, "_meta": {"title": "Look"}},
        "3": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}, "_meta": {"title": "Size"}}}))
    app = RunningApp(fake.url, folder, tmp_path)
    try:
        status, gallery, _, text = app.client.predict(width=40, api_name="/probe")
        assert status.startswith("✅") and gallery[0]["caption"] == "Look (preview)"
        assert only_image(gallery).getpixel((0, 0)) == (0, 0, 255)
        assert text == "40"
    finally:
        app.close()
