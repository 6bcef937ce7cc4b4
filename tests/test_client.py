"""The client against recorded transcripts: events, outputs, errors, drops and fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.hub import SocketHub
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.errors import ExecutionFailed, InputError, JobTimeout, PromptRejected, ServerUnavailable
from comfyui_gradio.comfy.events import (MessageType, NodeStarted, OutputReady, Preview, PreviewFrame, Progress, Started,
                                   TextFrame, parse_binary, parse_text)
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow
from tests.paths import WORKFLOWS
from tests.replay import TRANSCRIPTS, Replay, client_for, load_transcript, png_bytes


def tab_of(transcript: dict, tmp_path: Path, schema: dict | None = None) -> TabSpec:
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(transcript["workflow"]))
    workflow = Workflow("recorded", path, transcript["workflow"])
    return tab_from_schema(workflow, schema or {}, None)


# ---- parsing every recorded frame ----------------------------------------------------------------

def test_every_recorded_text_message_parses_to_a_known_type() -> None:
    seen = set()
    for path in TRANSCRIPTS.glob("*.json"):
        for event in json.loads(path.read_text()).get("events", []):
            if event["kind"] == "ws_text":
                message = parse_text(json.dumps(event["message"]))
                assert message.type is not MessageType.OTHER, (path.name, event["message"]["type"])
                seen.add(message.type)
    assert seen == set(MessageType) - {MessageType.OTHER, MessageType.NOTIFICATION}  # 0.3.64 sends no notification


def test_binary_frames_legacy_metadata_and_text() -> None:
    legacy = parse_binary((TRANSCRIPTS / "blobs/g1_txt2img_tiny_sd15_legacy_previews_bin0.bin").read_bytes())
    assert isinstance(legacy, PreviewFrame) and legacy.mime == "image/jpeg" and legacy.prompt_id is None
    assert legacy.image[:3] == b"\xff\xd8\xff"  # a JPEG
    meta = parse_binary((TRANSCRIPTS / "blobs/g2_txt2img_tiny_sd15_metadata_previews_bin0.bin").read_bytes())
    assert isinstance(meta, PreviewFrame) and meta.node_id == "3" and meta.mime == "image/jpeg"
    assert meta.prompt_id == Replay(load_transcript("g2_txt2img_tiny_sd15_metadata_previews")).recorded_id
    text = parse_binary((TRANSCRIPTS / "blobs/b5_getimagesize_progress_text_bin0.bin").read_bytes())
    assert text == TextFrame("2", "width: 40, height: 24\n batch size: 3")


# ---- whole runs replayed ------------------------------------------------------------------------

def test_invert_run_uploads_tracks_and_downloads(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    client = client_for(replay, tmp_path)
    job = client.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    events = list(job.events())
    result = job.result(5)
    assert events[0] == Started()
    assert [e.title for e in events if isinstance(e, NodeStarted)] == ["Load Image", "Invert Image", "Save Image"]
    assert [e.node_id for e in events if isinstance(e, OutputReady)] == ["3"]
    assert [o.output_name for o in result.outputs] == ["inverted"]
    assert result.images_by_output == {"inverted": [result.images[0].path]}
    assert result.images[0].path.read_bytes() == replay.view_bytes
    assert result.images[0].path.parent == tmp_path / job.prompt_id
    upload = next(r for r in replay.requests if r.url.path == "/upload/image")
    assert b'name="subfolder"\r\n\r\ncomfyui-gradio' in upload.content
    posted = json.loads(next(r for r in replay.requests if r.url.path == "/prompt").content)
    assert posted["client_id"] == job.client_id and posted["prompt_id"] == job.prompt_id
    assert posted["prompt"]["1"]["inputs"]["image"] == "comfyui-gradio/x.png"  # the server's name, not a path
    view = next(r for r in replay.requests if r.url.path == "/view")
    assert dict(view.url.params) == {"filename": "invert_00001_.png", "subfolder": "probe", "type": "output"}
    assert json.loads(replay.sockets[0].sent[0]) == {"type": "feature_flags",
                                                     "data": {"supports_preview_metadata": True,
                                                              "supports_progress_text_metadata": True}}


@pytest.mark.parametrize("name", ["g1_txt2img_tiny_sd15_legacy_previews", "g2_txt2img_tiny_sd15_metadata_previews"])
def test_txt2img_progress_and_previews_in_order(name: str, tmp_path: Path, catalog: Catalog) -> None:
    transcript = load_transcript(name)
    replay = Replay(transcript)
    job = client_for(replay, tmp_path).submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    events = list(job.events())
    steps = [(e.title, e.value, e.max) for e in events if isinstance(e, Progress)]
    assert steps == [("KSampler", i, 4) for i in range(1, 5)]
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == sum(1 for e in transcript["events"] if e["kind"] == "ws_binary")
    assert all(p.mime == "image/jpeg" for p in previews)
    assert job.result(5).images[0].output_name == "image"


def test_messages_before_the_http_answer_are_kept(tmp_path: Path) -> None:
    transcript = load_transcript("b3_preview_getsize_wssave")
    replay = Replay(transcript)  # the script pushes every frame before POST /prompt returns
    job = client_for(replay, tmp_path).submit(tab_of(transcript, tmp_path))
    events = list(job.events())
    assert events[0] == Started()
    assert any(isinstance(e, Preview) and e.mime == "image/png" for e in events)
    result = job.result(5)
    assert [o.preview for o in result.images] == [True]  # PreviewImage output is a temp preview


def test_runtime_error_names_the_node_and_message(tmp_path: Path) -> None:
    transcript = load_transcript("c_runtime_error")
    job = client_for(Replay(transcript), tmp_path).submit(tab_of(transcript, tmp_path))
    with pytest.raises(ExecutionFailed) as caught:
        job.result(5)
    assert str(caught.value).startswith("EmptyImage (node 3) failed: RuntimeError: [enforce fail at "
                                        "alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory")


def test_rejected_prompt_names_form_fields_not_node_ids(tmp_path: Path) -> None:
    transcript = load_transcript("c_validation_errors")
    replay = Replay(transcript)
    body = next(e["response_json"] for e in transcript["events"] if e["kind"] == "http"
                and "99999" in json.dumps(e.get("request_json")))
    replay.routes[("POST", "/prompt")] = lambda request: httpx.Response(400, json=body)
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    tab = tab_of({"workflow": workflow}, tmp_path, {"inputs": {"width": {"node": "1", "input": "width",
                                                                         "label": "Width"}}})
    client = client_for(replay, tmp_path)
    with pytest.raises(PromptRejected) as caught:
        client.submit(tab, {"width": 99999})
    assert str(caught.value) == ("EmptyImage (node 1), input 'height': Value 0 smaller than min of 1\n"
                                 "Width: value 99999 bigger than max of 16384")
    assert caught.value.field_errors == {"width": "Width: value 99999 bigger than max of 16384"}
    assert client.socket_hub().prompt_ids == frozenset()  # the job that joined before submitting has left


def test_unknown_node_class_rejection_says_what_to_do(tmp_path: Path) -> None:
    transcript = load_transcript("c_validation_errors")
    replay = Replay(transcript)
    replay.routes[("POST", "/prompt")] = lambda request: httpx.Response(400, json={
        "error": {"type": "invalid_prompt", "message": "Cannot execute because node NoSuchNode does not exist.",
                  "details": "Node ID '#1'", "extra_info": {}}, "node_errors": {}})
    with pytest.raises(PromptRejected) as caught:
        client_for(replay, tmp_path).submit(tab_of({"workflow": {"1": {"class_type": "SaveImage", "inputs": {}}}},
                                                   tmp_path))
    assert str(caught.value) == ("ComfyUI rejected the workflow: Cannot execute because node NoSuchNode does not "
                                 "exist. (Node ID '#1'). Check that the workflow is in API format and that its "
                                 "custom nodes are installed.")


# ---- dropped sockets, refused sockets, polling --------------------------------------------------

def test_dropped_socket_reconnects_and_finishes(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), drop_after=4, running_polls=3)  # still running after
    job = client_for(replay, tmp_path).submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    events = list(job.events())  # the look after the reconnect (its place, its history), unlike polling to the end
    assert job.result(10).images[0].path.exists()
    assert len(replay.sockets) == 2  # same client id, a second connection
    assert [e.title for e in events if isinstance(e, NodeStarted)] == ["Load Image", "Invert Image", "Save Image"]
    assert events[-1] == OutputReady("3", "Save Image", {"images": [
        {"filename": "invert_00001_.png", "subfolder": "probe", "type": "output"}]})  # read from the new socket


def test_socket_that_cannot_come_back_falls_back_to_polling(tmp_path: Path, catalog: Catalog,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SocketHub, "reconnect_delay", 0.0)
    replay = Replay(load_transcript("b1_load_invert_save"), drop_after=4, running_polls=3)
    replay.refuse_reconnect = True
    job = client_for(replay, tmp_path, poll_interval=0.001).submit(load_tab(WORKFLOWS / "invert.json", catalog),
                                                                   {"image": png_bytes()})
    events = list(job.events())
    assert job.result(5).images[0].path.read_bytes() == replay.view_bytes
    assert len(replay.sockets) == 1 and events == [Started()]  # the socket died after execution_start
    history = f"/history/{job.prompt_id}"
    polled = [r.url.path for r in replay.requests if r.url.path in ("/queue", history) and r.method == "GET"]
    # each poll reads the queue and, as it is not waiting there, its history; it ends on the 3rd poll
    assert polled == ["/queue", history, "/queue", history, "/queue", history, history]


def test_http_tracker_never_opens_a_socket(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    client = client_for(replay, tmp_path, tracker="http", poll_interval=0.05)
    result = client.run(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    assert replay.sockets == [] and result.images[0].output_name == "inverted"


# ---- uploads and outputs ------------------------------------------------------------------------

def test_same_image_is_uploaded_once(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    client = client_for(replay, tmp_path)
    tab = load_tab(WORKFLOWS / "invert.json", catalog)
    for _ in range(2):
        client.run(tab, {"image": png_bytes((1, 2, 3))})
    assert sum(1 for r in replay.requests if r.url.path == "/upload/image") == 1


def test_non_image_and_oversized_uploads_are_refused_before_sending(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    replay.routes[("GET", "/features")] = lambda r: httpx.Response(200, json={"max_upload_size": 1000})
    client = client_for(replay, tmp_path)
    tab = load_tab(WORKFLOWS / "invert.json", catalog)
    with pytest.raises(InputError, match=r"^Picture: this file is not an image"):
        client.run(tab, {"image": b"%PDF-1.4 not an image"})
    with pytest.raises(InputError, match=r"^Picture: the file is 0\.0 MB; at most 0 MB is accepted\. Use a smaller file\.$"):
        client.run(tab, {"image": png_bytes(size=(300, 300)) + b"\0" * 2000})
    small_limit = client_for(replay, tmp_path, max_upload_pixels=10_000)
    with pytest.raises(InputError, match=r"^Picture: the image is 300×300 pixels; at most 0 megapixels"):
        small_limit.run(tab, {"image": png_bytes(size=(300, 300))})
    missing = tmp_path / "nope.png"
    with pytest.raises(InputError, match=f"^Picture: the file '{missing}' does not exist$"):
        client.run(tab, {"image": missing})
    assert not any(r.url.path in ("/upload/image", "/prompt") for r in replay.requests)


def test_server_filenames_never_escape_the_job_folder(tmp_path: Path, catalog: Catalog) -> None:
    transcript = load_transcript("b1_load_invert_save")
    replay = Replay(transcript)
    entry = replay.recorded_http("GET", f"/history/{replay.recorded_id}")
    outputs = entry["response_json"][replay.recorded_id]["outputs"]["3"]["images"]
    outputs[0]["filename"] = "../../../etc/evil.png"
    outputs.append({"filename": "/abs/olute.png", "subfolder": "", "type": "output"})
    result = client_for(replay, tmp_path).run(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    for output in result.outputs:
        assert output.path.resolve().parent == (tmp_path / result.prompt_id).resolve()
    assert [o.path.name for o in result.outputs] == ["3_evil.png", "3_olute.png"]


def test_unreachable_server_says_where_and_how_to_fix(tmp_path: Path) -> None:
    client = ComfyClient("http://127.0.0.1:9", output_dir=tmp_path, timeout=2)
    with pytest.raises(ServerUnavailable) as caught:
        client.run(WORKFLOWS / "blur.json", {})
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://127.0.0.1:9 (")
    assert "set COMFYUI_URL / --comfyui-url" in str(caught.value)


def test_video_uploads_are_not_decoded_as_images(tmp_path: Path) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    workflow = {"1": {"class_type": "LoadVideo", "inputs": {"file": "x.mp4"}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "p"}}}
    tab = tab_of({"workflow": workflow}, tmp_path, {"inputs": {"clip": {"node": "1", "input": "file"}}})
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 not an image")
    client_for(replay, tmp_path).submit(tab, {"clip": clip})
    upload = next(r for r in replay.requests if r.url.path == "/upload/image")
    assert b"ftypmp42" in upload.content and b'filename="' in upload.content and b'.mp4"' in upload.content


def test_a_run_past_its_timeout_is_cancelled_on_the_server(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    replay.routes[("POST", "/prompt")] = lambda request: httpx.Response(
        200, json={"prompt_id": json.loads(request.content)["prompt_id"], "number": 3, "node_errors": {}})
    job = client_for(replay, tmp_path).submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()},
                                              timeout=0.3)
    with pytest.raises(JobTimeout) as caught:
        job.result(10)
    assert str(caught.value) == f"The run took longer than allowed and was cancelled (prompt {job.prompt_id})."
    sent = [(r.url.path, json.loads(r.content)) for r in replay.requests
            if r.method == "POST" and r.url.path in ("/queue", "/interrupt")]
    assert ("/queue", {"delete": [job.prompt_id]}) in sent and ("/interrupt", {"prompt_id": job.prompt_id}) in sent


def test_outputs_of_every_kind_are_sorted_and_grouped(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    entry = replay.recorded_http("GET", f"/history/{replay.recorded_id}")["response_json"][replay.recorded_id]
    entry["outputs"] = {
        "3": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
              "gifs": [{"filename": "clip.mp4", "subfolder": "", "type": "output"}]},
        "7": {"audio": [{"filename": "voice.flac", "subfolder": "", "type": "output"}]},
        "8": {"3d": [{"filename": "mesh.glb", "subfolder": "", "type": "output"}], "text": ["hello"]}}
    tab = tab_of(replay.t, tmp_path, {"inputs": {"image": {"node": "1", "input": "image"}}})  # no outputs: all
    result = client_for(replay, tmp_path).run(tab, {"image": png_bytes()})
    assert [(o.kind, o.path.name) for o in result.outputs] == [
        ("image", "3_a.png"), ("video", "3_clip.mp4"), ("audio", "7_voice.flac"), ("model3d", "8_mesh.glb"),
        ("text", "8_text_0.txt")]
    assert result.texts == ["hello"] and (tmp_path / result.prompt_id / "8_text_0.txt").read_text() == "hello"
    assert [o.path.name for o in result.by_output["node 7"]] == ["7_voice.flac"]

