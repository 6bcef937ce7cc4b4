"""The seed SDKs' own example flows, with only the import changed, on the ComfyUI double and the
RunningHub double: ComfyKit's result-handling walkthrough (``docs/en/usage/results.md``, "Complete
Example") and ViewComfy's ``main.py`` (``ViewComfy_API/Python/main.py``, base64 outputs). Each flow
is written here step for step as the seed's document has it (same calls, same attributes read)."""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
import io
import json
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfyui_gradio.comfy.runninghub import NO_KEY, RunningHubClient
from comfyui_gradio.comfy.v2 import V2Backend
from comfyui_gradio.compat import ComfyKit, ExecuteResult, ViewComfyClient
from comfyui_gradio.compat.viewcomfy import LOGS_NEEDED, infer, infer_with_logs
from comfyui_gradio.errors import InputError
from tests.fake_comfyui import FakeComfyUI
from tests.fake_runninghub import KEY, URL, FakeRunningHub
from tests.paths import WORKFLOWS
from tests.v2_double import BASE as V2_BASE, V2Double


def txt2img(marked: bool = True) -> dict:
    """The shipped txt2img workflow on the double's checkpoint, with ComfyKit markers in its titles."""
    workflow = json.loads((WORKFLOWS / "txt2img.json").read_text())
    workflow["4"]["inputs"]["ckpt_name"] = "tiny-random-sd15.safetensors"
    if marked:
        workflow["6"]["_meta"]["title"] = "$prompt.text"
        workflow["9"]["_meta"]["title"] = "$output.cover"
    return workflow


def marked_txt2img(folder: Path) -> Path:
    path = folder / "workflow.json"
    path.write_text(json.dumps(txt2img()))
    return path


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- ComfyKit ---------------------------------------------------------------------------------------

def test_comfykits_result_walkthrough_runs_unchanged(fake: FakeComfyUI, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_BASE_URL", fake.url)  # ComfyKit() reads it, as comfykit does
    monkeypatch.chdir(tmp_path)
    marked_txt2img(tmp_path)
    said: list[str] = []

    async def main() -> ExecuteResult:
        kit = ComfyKit()
        result = await kit.execute("workflow.json", {"prompt": "a beautiful sunset"})
        if result.status != "completed":
            said.append(f"Failed: {result.msg}")
            return result
        said.append(f"Success! Took {result.duration:.2f}s")
        said.append(f"Generated {len(result.images)} images")
        if "cover" in result.images_by_var:
            said.append(f"Cover image: {result.images_by_var['cover'][0]}")
        output_dir = Path("outputs")
        output_dir.mkdir(exist_ok=True)
        async with httpx.AsyncClient() as client:
            for i, img_url in enumerate(result.images):
                response = await client.get(img_url)
                output_path = output_dir / f"image_{i}.png"
                output_path.write_bytes(response.content)
                said.append(f"Saved: {output_path}")
        await kit.close()
        return result

    result = asyncio.run(main())
    assert result.status == "completed", result.msg
    assert said[1:] == ["Generated 1 images", f"Cover image: {result.images[0]}", "Saved: outputs/image_0.png"]
    assert result.images[0].startswith(f"{fake.url}/view?filename=")
    assert Image.open(tmp_path / "outputs" / "image_0.png").size == (512, 512)
    assert result.prompt_id and result.outputs and list(result.outputs) == ["9"]
    assert fake.prompts[-1]["prompt"]["6"]["inputs"]["text"] == "a beautiful sunset"


def test_execute_json_groups_unnamed_outputs_by_node_id(fake: FakeComfyUI, tmp_path: Path) -> None:
    result = asyncio.run(ComfyKit(fake.url, output_dir=tmp_path).execute_json(txt2img(marked=False), {}))
    assert result.status == "completed", result.msg
    assert list(result.images_by_var) == ["9"] and result.images == result.images_by_var["9"]


@pytest.mark.parametrize("workflow, message", [
    ("http://127.0.0.1:9/flow.json", r"^http://127.0.0.1:9/flow.json: cannot be downloaded \(.+\); check the"),
    ("1987654321", rf"^settings: RUNNINGHUB_API_KEY: {NO_KEY}$".replace("(", r"\(").replace(")", r"\)")
     .replace(".", r"\.")),
])
def test_errors_are_kept_in_msg_with_status_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   workflow: str, message: str) -> None:
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    monkeypatch.delenv("COMFYUI_API_KEY", raising=False)
    result = asyncio.run(ComfyKit("http://127.0.0.1:9", output_dir=tmp_path).execute(workflow))
    assert result.status == "failed"
    assert result.msg is not None
    assert __import__("re").match(message, result.msg), result.msg


def test_a_runninghub_id_runs_on_runninghub_with_the_simple_params(tmp_path: Path) -> None:
    hub = FakeRunningHub(workflows={"1987654321": txt2img()})
    rh = RunningHubClient(KEY, URL, http=hub.client(), sleep=lambda s: None)
    kit = ComfyKit(runninghub_api_key=KEY, runninghub=rh, output_dir=tmp_path)
    result = asyncio.run(kit.execute("1987654321", {"prompt": "a red fox"}))
    assert result.status == "completed", result.msg
    create = next(body for path, body in hub.requests if path == "/task/openapi/create")
    assert {"nodeId": "6", "fieldName": "text", "fieldValue": "a red fox"} in create["nodeInfoList"]
    assert result.images_by_var == {"cover": [f"{URL}/files/{result.prompt_id}_0.png"]}
    assert result.outputs == {"raw_data": [{"file_url": result.images[0], "file_type": "png", "node_id": "9"}]}


def test_a_failed_runninghub_task_is_status_failed_with_the_reason(tmp_path: Path) -> None:
    hub = FakeRunningHub(workflows={"5": txt2img(marked=False)},
                         task_fails="node 3: CUDA out of memory")
    kit = ComfyKit(runninghub=RunningHubClient(KEY, URL, http=hub.client(), sleep=lambda s: None),
                   output_dir=tmp_path)
    result = asyncio.run(kit.execute("5"))
    assert (result.status, result.msg) == ("failed", f"RunningHub task {next(iter(hub.tasks))} failed: node 3: "
                                                     "CUDA out of memory")


def marked_invert() -> dict:
    workflow = json.loads((WORKFLOWS / "invert.json").read_text())
    workflow["1"]["_meta"]["title"] = "$~image"
    workflow["3"]["_meta"]["title"] = "$output.inverted"
    return workflow


def test_an_input_given_as_a_url_is_downloaded_and_uploaded(fake: FakeComfyUI, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "cat.png").write_bytes(png((10, 20, 30)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    kit = ComfyKit(fake.url, output_dir=tmp_path / "kit")
    try:
        result = asyncio.run(kit.execute_json(marked_invert(), {"image": f"{base}/cat.png"}))
        assert result.status == "completed", result.msg
        view = httpx.get(result.images_by_var["inverted"][0])
        assert Image.open(io.BytesIO(view.content)).convert("RGB").getpixel((0, 0)) == (245, 235, 225)
        missing = asyncio.run(kit.execute_json(marked_invert(), {"image": f"{base}/gone.png"}))
        assert (missing.status, missing.msg) == ("failed", f"Image: {base}/gone.png: the server answered HTTP 404; "
                                                           "check the address")
    finally:
        server.shutdown()
        server.server_close()


def test_a_local_input_is_uploaded_to_runninghub(tmp_path: Path) -> None:
    hub = FakeRunningHub(workflows={"77": marked_invert()})
    kit = ComfyKit(runninghub=RunningHubClient(KEY, URL, http=hub.client(), sleep=lambda s: None),
                   output_dir=tmp_path)
    photo = tmp_path / "photo.png"
    photo.write_bytes(png((1, 2, 3)))
    result = asyncio.run(kit.execute("77", {"image": str(photo)}))
    assert result.status == "completed", result.msg
    create = next(body for path, body in hub.requests if path == "/task/openapi/create")
    assert create["nodeInfoList"] == [{"nodeId": "1", "fieldName": "image", "fieldValue": "api/0001.png"}]
    assert photo.read_bytes() in hub.uploads["api/0001.png"]
    assert result.images_by_var == {"inverted": [f"{URL}/files/{result.prompt_id}_0.png"]}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


# ---- ViewComfy --------------------------------------------------------------------------------------

def test_a_v2_address_runs_on_comfy_api_v2_with_outputs_as_local_paths(tmp_path: Path) -> None:
    double = V2Double()
    backend = V2Backend(V2_BASE, output_dir=tmp_path, http=httpx.Client(transport=double.transport()))
    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "cat.png")
    kit = ComfyKit(comfyui_url=f"v2+{V2_BASE}", v2=backend)
    result = asyncio.run(kit.execute(str(WORKFLOWS / "invert.json"), {"image": str(tmp_path / "cat.png")}))
    assert (result.status, result.msg) == ("completed", None)
    [path] = result.images_by_var["inverted"]
    assert result.images == [path] and Image.open(path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)
    assert len(double.submitted) == 1
    asyncio.run(kit.close())


def test_viewcomfys_main_flow_runs_unchanged(fake: FakeComfyUI, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("input_folder").mkdir()
    Path("input_folder/input_img.png").write_bytes(png((10, 20, 30)))
    view_comfy_api_url = f"{fake.url}?workflow={WORKFLOWS / 'invert.json'}"
    client_id, client_secret = "<Your_ViewComfy_client_id>", "<Your_ViewComfy_client_secret>"
    logs: list[str] = []

    async def api_examples() -> None:
        params = {}
        params["1-inputs-image"] = open("input_folder/input_img.png", "rb")
        override_workflow_api = None

        def logging_callback(log_message: str) -> None:
            logs.append(log_message)

        prompt_result = await infer_with_logs(api_url=view_comfy_api_url, params=params,
                                              logging_callback=logging_callback, client_id=client_id,
                                              client_secret=client_secret,
                                              override_workflow_api=override_workflow_api)
        assert prompt_result
        for file in prompt_result.outputs:
            binary_data = base64.b64decode(file.data)
            with open(file.filename, "wb") as f:
                f.write(binary_data)
        params["1-inputs-image"].close()

    asyncio.run(api_examples())
    saved = [p for p in tmp_path.iterdir() if p.suffix == ".png"]
    assert len(saved) == 1 and Image.open(saved[0]).convert("RGB").getpixel((0, 0)) == (245, 235, 225)
    assert "log_message: got prompt" in logs, logs  # ComfyUI's own console, as a deployment streams it
    assert logs.index("log_message: started") < logs.index("log_message: executing Invert Image (node 2)"), logs


def test_infer_with_an_override_workflow_gives_the_seeds_result_shape(fake: FakeComfyUI, tmp_path: Path) -> None:
    override = json.loads((WORKFLOWS / "invert.json").read_text())
    source = tmp_path / "in.png"
    source.write_bytes(png((0, 0, 0)))
    with source.open("rb") as image:
        result = asyncio.run(infer(api_url=fake.url, params={"1-inputs-image": image}, client_id="",
                                   client_secret="", override_workflow_api=override))
    assert (result.status, result.completed) == ("success", True)
    assert result.execution_time_seconds > 0 and result.prompt["2"]["class_type"] == "ImageInvert"
    [output] = result.outputs
    data = base64.b64decode(output.data)
    assert (output.content_type, output.size) == ("image/png", len(data))
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_the_client_wants_logs_on_for_streaming_and_a_workflow(fake: FakeComfyUI) -> None:
    client = ViewComfyClient(infer_url=fake.url)
    with pytest.raises(InputError) as raised:
        asyncio.run(client.infer_with_logs(data={"logs": False, "params": "{}"}, logging_callback=print))
    assert str(raised.value) == f"logs: {LOGS_NEEDED}"
    with pytest.raises(InputError, match="^workflow_api: this ComfyUI has no deployed workflow: give override_"):
        asyncio.run(client.infer(data={"logs": False, "params": "{}"}))
    client.close()


# ---- opt in: the same flows on a real ComfyUI (model-free workflows) -------------------------------------

REAL = os.environ.get("COMFYUI_URL", "").split(",")[0]
BLANK = {"1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 1, "color": 0},
               "_meta": {"title": "Blank, $color.color"}},
         "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "comfykit/blank", "images": ["1", 0]},
               "_meta": {"title": "$output.cover"}}}


@pytest.mark.real
def test_real_comfykit_walkthrough_downloads_the_cover(tmp_path: Path) -> None:
    if not REAL:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")

    async def main() -> tuple[ExecuteResult, bytes]:
        async with ComfyKit(comfyui_url=REAL, executor_type="websocket", output_dir=tmp_path) as kit:
            result = await kit.execute_json(BLANK, {"color": 0xFF8000})
            async with httpx.AsyncClient() as client:
                response = await client.get(result.images_by_var["cover"][0])
        return result, response.content

    result, content = asyncio.run(main())
    assert result.status == "completed", result.msg
    assert Image.open(io.BytesIO(content)).convert("RGB").getpixel((3, 3)) == (255, 128, 0)


@pytest.mark.real
def test_real_viewcomfy_infer_inverts(tmp_path: Path) -> None:
    if not REAL:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    source = tmp_path / "in.png"
    source.write_bytes(png((10, 20, 30)))
    lines: list[str] = []
    with source.open("rb") as image:
        result = asyncio.run(infer_with_logs(api_url=f"{REAL}?workflow={WORKFLOWS / 'invert.json'}",
                                             params={"1-inputs-image": image}, logging_callback=lines.append,
                                             client_id="", client_secret=""))
    assert result is not None and result.completed
    pixel = Image.open(io.BytesIO(base64.b64decode(result.outputs[0].data))).convert("RGB").getpixel((0, 0))
    assert pixel == (245, 235, 225) and "log_message: executing Invert Image (node 2)" in lines
