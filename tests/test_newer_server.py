"""Today's servers: what a newer ComfyUI offers is detected and used, and 0.3.64 keeps its own path.

The newer server is the test double in its ``newer`` mode (``tests/fake_comfyui.py``, read in ComfyUI's
``server.py`` and ``comfy_execution/jobs.py``); 0.3.64 is the double's default and the recordings.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from comfyui_gradio.comfy.client import UNKNOWN_PROMPT, ComfyClient
from comfyui_gradio.comfy.events import (Cached, MessageType, NodeStarted, Notification, OutputReady, Progress, TextFrame,
                                         Started, graph_progress, parse_binary, parse_text)
from comfyui_gradio.comfy.jobs_api import ServerFeatures, history_entry, queue_state
from comfyui_gradio.errors import InputError, JobCancelled, PromptRejected, ProtocolError, ServerError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.prepare import prepare
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow
from tests.fake_comfyui import FakeComfyUI
from tests.harness import wait_for
from tests.paths import WORKFLOWS
from tests.replay import Replay, client_for, load_transcript, png_bytes

GET_SIZE = {  # as recorded in b5: GetImageSize sends a text frame, its size makes the next image
    "1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 3, "color": 0}},
    "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}, "_meta": {"title": "Image size"}},
    "3": {"class_type": "EmptyImage", "inputs": {"width": ["2", 0], "height": ["2", 1], "batch_size": 1,
                                                 "color": 255}},
    "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}, "_meta": {"title": "Preview"}},
}


@pytest.fixture()
def newer() -> Iterator[FakeComfyUI]:
    with FakeComfyUI(newer=True) as server:
        yield server


@pytest.fixture()
def invert(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json", catalog)


def paths(fake: FakeComfyUI) -> list[str]:
    return [f"{method} {path}" for method, path in fake.requests]


# ---- detection --------------------------------------------------------------------------------------

def test_a_newer_server_is_recognised_by_its_version_flags_and_jobs_api(newer: FakeComfyUI) -> None:
    features = ComfyClient(newer.url).features()
    assert (features.version, features.jobs_api, features.text_prompt_ids) == ("0.38.1", True, True)
    assert features.flags["max_upload_size"] == 104857600 and features.flags["assets"] is True


def test_0_3_64_is_recognised_as_having_no_jobs_api(fake: FakeComfyUI) -> None:
    client = ComfyClient(fake.url)
    assert client.features() == ServerFeatures("0.3.64", {"supports_preview_metadata": True,
                                                          "max_upload_size": 104857600}, False)
    client.features()
    assert paths(fake).count("GET /api/jobs") == 1  # asked once: 404 there


def test_what_a_server_offers_is_read_again_when_its_jobs_api_answers_wrongly(newer: FakeComfyUI) -> None:
    """E.g. an older ComfyUI now runs behind the address: its /api/jobs is a 404, and /queue is used again."""
    client = ComfyClient(newer.url)
    assert client.features().jobs_api
    newer.newer = False  # the server behind the address is 0.3.64 now
    with pytest.raises(ProtocolError, match="^ComfyUI answered GET /api/jobs with HTTP 404$"):
        client.queue_state()
    assert client.queue_state() == {"queue_running": [], "queue_pending": []}
    assert not client.features().jobs_api


# ---- following a job through /api/jobs -----------------------------------------------------------------

def test_a_run_on_a_newer_server_is_followed_through_api_jobs(newer: FakeComfyUI, invert: TabSpec,
                                                             tmp_path: Path) -> None:
    client = ComfyClient(newer.url, output_dir=tmp_path, tracker="http", poll_interval=0.01)
    job = client.submit(invert, {"image": png_bytes()})
    result = job.result(10)
    assert result.images[0].path.parent == tmp_path / job.prompt_id
    assert f"GET /api/jobs/{job.prompt_id}" in paths(newer)
    assert not [p for p in paths(newer) if p.startswith(("GET /history", "GET /queue"))]
    upload = next(u for u in newer.uploads if u["filename"])
    assert job.prepared.values["image"] == f"comfyui-gradio/{upload['name']}"  # the asset object is not needed


def test_the_same_run_on_0_3_64_uses_history_and_queue(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    client = ComfyClient(fake.url, output_dir=tmp_path, tracker="http", poll_interval=0.01)
    job = client.submit(invert, {"image": png_bytes()})
    job.result(10)
    assert f"GET /history/{job.prompt_id}" in paths(fake) and "GET /queue" in paths(fake)
    assert not [p for p in paths(fake) if p.startswith("GET /api/jobs/")]


def test_a_job_is_found_again_through_api_jobs(newer: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    first = ComfyClient(newer.url, output_dir=tmp_path / "a").submit(invert, {"image": png_bytes()})
    first.result(10)
    again = ComfyClient(newer.url, output_dir=tmp_path / "b")  # e.g. the app after a restart
    newer.requests.clear()
    result = again.attach(invert, first.prompt_id, first.prepared).result(10)
    assert [p for p in paths(newer) if "/history" in p or "/queue" in p or "/api/jobs/" in p] == [
        f"GET /api/jobs/{first.prompt_id}"] * 3  # known? finished? its outputs
    assert result.images[0].path.read_bytes() == first.result().images[0].path.read_bytes()
    with pytest.raises(ServerError) as caught:
        again.attach(invert, str(uuid.uuid4()), first.prepared)
    assert str(caught.value) == UNKNOWN_PROMPT


def test_cancelling_on_a_newer_server_goes_through_api_jobs(newer: FakeComfyUI, invert: TabSpec,
                                                             tmp_path: Path) -> None:
    newer.node_delay = 5.0
    job = ComfyClient(newer.url, output_dir=tmp_path).submit(invert, {"image": png_bytes()})
    wait_for(lambda: newer.queue_remaining == 1 and not newer._pending)  # running
    job.cancel()
    with pytest.raises(JobCancelled, match="^Cancelled by you"):
        job.result(10)
    assert "POST /api/jobs/cancel" in paths(newer) and "POST /interrupt" not in paths(newer)
    entry = ComfyClient(newer.url)._job(job.prompt_id)
    assert entry is not None and entry["status"] == "cancelled"


# ---- the socket's additions ----------------------------------------------------------------------------

def test_text_frames_carry_their_prompt_id_when_the_client_asks(newer: FakeComfyUI, tmp_path: Path) -> None:
    tab = tab_from_schema(Workflow("size", tmp_path / "size.json", GET_SIZE), {}, None)
    job = ComfyClient(newer.url, output_dir=tmp_path).submit(tab)
    events = list(job.events())
    assert OutputReady("2", "Image size", {"text": ["width: 40, height: 24\n batch size: 3"]}) in events
    assert job.graph_progress == 1.0


def test_a_text_frame_with_a_prompt_id_is_parsed_only_when_the_server_frames_it() -> None:
    prompt, node, text = b"p-1", b"12:5", b"width: 4"
    framed = b"\x00\x00\x00\x03" + struct.pack(">I", len(prompt)) + prompt + struct.pack(">I", len(node)) + node + text
    assert parse_binary(framed, text_prompt_ids=True) == TextFrame("12:5", "width: 4", "p-1")
    legacy = b"\x00\x00\x00\x03" + struct.pack(">I", len(node)) + node + text
    assert parse_binary(legacy) == TextFrame("12:5", "width: 4")


def test_a_text_frame_of_another_prompt_is_ignored(tmp_path: Path) -> None:
    transcript = load_transcript("b5_getimagesize_progress_text")
    other = b"\x00\x00\x00\x03" + struct.pack(">I", 36) + str(uuid.uuid4()).encode() + b"\x00\x00\x00\x012other"
    flags = json.dumps({"type": "feature_flags", "data": {"supports_progress_text_metadata": True}})
    own = Replay(transcript).ws_frames()
    after_text = next(i for i, frame in enumerate(own) if isinstance(frame, bytes) and frame[:4] == b"\x00\x00\x00\x03")
    filler = [json.dumps({"type": "crystools.monitor", "data": {}})] * after_text  # a custom node's, ignored
    replay = Replay(transcript, foreign=[*filler, flags, other])
    workflow = Workflow("b5", tmp_path / "b5.json", transcript["workflow"])
    events = list(client_for(replay, tmp_path).submit(tab_from_schema(workflow, {}, None)).events())
    texts = [e.output["text"] for e in events if isinstance(e, OutputReady) and "text" in e.output]
    assert texts == [["width: 40, height: 24\n batch size: 3"]]  # recorded before the flags: the legacy layout


def test_a_notification_reaches_the_job(newer: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    newer.node_delay = 0.3
    job = ComfyClient(newer.url, output_dir=tmp_path).submit(invert, {"image": png_bytes()})
    events = job.events()
    assert next(e for e in events if isinstance(e, NodeStarted))
    newer.notify("Model download finished", id="dl-1")
    assert Notification("Model download finished", "dl-1") in list(events)


def test_executing_names_the_node_the_user_sees(tmp_path: Path, invert: TabSpec) -> None:
    transcript = load_transcript("b1_load_invert_save")
    events = []
    for event in transcript["events"]:  # node 2 as a graph expansion ran it: "2.0.0.1", shown as "2"
        message = event.get("message") or {}
        events.append(event)
        if event["kind"] == "ws_text" and message.get("type") == "executing" and message["data"].get("node") == "2":
            message["data"]["node"] = "2.0.0.1"
            step = {"value": 1, "max": 3, "node": "2.0.0.1", "prompt_id": message["data"]["prompt_id"]}
            events.append({"kind": "ws_text", "message": {"type": "progress", "data": step}})
    replay = Replay({**transcript, "events": events})
    job = client_for(replay, tmp_path).submit(invert, {"image": png_bytes()})
    seen = [e for e in job.events() if isinstance(e, (NodeStarted, Progress))]
    assert seen[:3] == [NodeStarted("1", "Load Image"),  # display_node is the node itself: nothing more said
                        NodeStarted("2.0.0.1", "Invert Image", "2"), Progress("2.0.0.1", "Invert Image", 1, 3)]


def test_executing_parses_display_node_and_notification_parses() -> None:
    message = parse_text('{"type": "executing", "data": {"node": "5", "display_node": "12", "prompt_id": "p"}}')
    assert (message.node, message.display_node) == ("5", "12")
    assert parse_text('{"type": "executing", "data": {"node": "5"}}').display_node is None  # a reconnect's
    assert parse_text('{"type": "notification", "data": {"value": "hi"}}').type is MessageType.NOTIFICATION


def test_progress_state_gives_the_share_of_the_whole_graph() -> None:
    def state(nodes: dict) -> object:
        return parse_text(json.dumps({"type": "progress_state", "data": {"prompt_id": "p", "nodes": nodes}}))

    assert graph_progress(state({"1": {"value": 1, "max": 1, "state": "finished"},
                                 "2": {"value": 5, "max": 20, "state": "running"}}), 4) == pytest.approx(1.25 / 4)
    assert graph_progress(state({"1": {"state": "finished"}, "2": {"state": "finished"}}), 1) == 1.0  # expanded
    assert graph_progress(state({"1": {"value": 3, "max": 0, "state": "running"}}), 2) == 0.0
    assert graph_progress(state({}), 2) is None
    cached_run = state({"3": {"value": 1, "max": 1, "state": "finished"}})  # e_caching: only the output node
    assert graph_progress(cached_run, 3, frozenset({"1", "2", "3"})) == 1.0


def test_a_run_with_cached_nodes_ends_at_the_whole_workflow(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    client = ComfyClient(fake.url, output_dir=tmp_path)
    image = png_bytes((7, 8, 9))
    client.submit(invert, {"image": image}).result(10)
    again = client.submit(invert, {"image": image})  # every node cached this time
    assert Cached(("1", "2", "3")) in list(again.events())
    assert again.graph_progress == 1.0


# ---- prompt ids, uploads, the catalogue ----------------------------------------------------------------

def test_prompt_ids_are_canonical_uuids(newer: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    client = ComfyClient(newer.url, output_dir=tmp_path)
    with pytest.raises(InputError, match="^prompt_id: must be a UUID in canonical form such as .*, not 'Mine'$"):
        client.submit(invert, {"image": png_bytes()}, prompt_id="Mine")
    upper = str(uuid.uuid4()).upper()
    with pytest.raises(PromptRejected) as caught:
        client.post_prompt(invert, prepare(invert, {"image": "example.png"}), upper, "c")
    assert str(caught.value) == ("ComfyUI rejected the workflow: prompt_id must be a valid UUID (prompt_id must be "
                                 "a UUID string in canonical lowercase hyphenated form; omit it to let the server "
                                 "generate one). Give the run a canonical UUID (str(uuid.uuid4())) as its prompt "
                                 "id, or none.")


def test_newer_object_info_keys_are_read_and_unknown_ones_ignored(object_info: dict) -> None:
    newer = {name: {**entry, "has_intermediate_output": name == "PreviewAny", "search_aliases": ["x"],
                    "essentials_category": "Basics", "dev_only": name == "PreviewAny", "a_key_from_2027": {"y": 1}}
             for name, entry in object_info.items()}
    old, new = Catalog(object_info), Catalog(newer)
    for name in ("KSampler", "LoadImage", "SaveImage", "PreviewAny"):
        assert new.inputs(name) == old.inputs(name)
        assert (new.is_output_node(name), new.display_name(name)) == (old.is_output_node(name), old.display_name(name))
    assert (new.has_intermediate_output("PreviewAny"), new.has_intermediate_output("SaveImage")) == (True, False)
    assert (new.is_dev_only("PreviewAny"), old.is_dev_only("PreviewAny")) == (True, False)


def test_the_newer_double_lists_the_newer_keys(newer: FakeComfyUI) -> None:
    info = ComfyClient(newer.url).catalog()
    assert info.raw["SaveImage"]["search_aliases"] == ["save", "save image", "export image"]
    assert [p.name for p in load_tab(WORKFLOWS / "invert.json", info).params] == ["image"]


# ---- the jobs API read into the 0.3.64 shapes ------------------------------------------------------------

def test_a_finished_job_reads_as_its_history_entry() -> None:
    status = {"status_str": "success", "completed": True, "messages": []}
    job = {"id": "p", "status": "completed", "outputs": {"3": {"images": []}}, "execution_status": status}
    assert history_entry(job) == {"outputs": {"3": {"images": []}}, "status": status}
    assert history_entry({"id": "p", "status": "in_progress"}) is None
    assert history_entry({"id": "p", "status": "failed"})["status"]["status_str"] == "error"
    assert queue_state([{"id": "a", "status": "in_progress", "priority": 3},
                        {"id": "b", "status": "pending", "priority": 5}]) == {
        "queue_running": [[3, "a"]], "queue_pending": [[5, "b"]]}


def test_the_jobs_list_pages_as_the_server_does(newer: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    client = ComfyClient(newer.url, output_dir=tmp_path)
    for _ in range(3):
        client.submit(invert, {"image": png_bytes()}).result(10)
    page = client.http.get("/api/jobs", params={"limit": 2, "offset": 1, "sort_order": "asc"}).json()
    assert page["pagination"] == {"offset": 1, "limit": 2, "total": 3, "has_more": False}
    assert [j["status"] for j in page["jobs"]] == ["completed", "completed"]
    assert client.http.get("/api/jobs", params={"status": "done"}).json() == {
        "error": "Invalid status value(s): done. Valid values: pending, in_progress, completed, failed, cancelled"}


# ---- what the page shows ---------------------------------------------------------------------------------

def test_the_status_line_names_the_node_shown_and_the_share_of_the_workflow_done() -> None:
    from comfyui_gradio.web.stream import status_line

    assert status_line(NodeStarted("2.0.0.1", "Invert Image", "2"), 0.5) == \
        "▶️ Invert Image · 50% of the workflow done"
    assert status_line(Progress("3", "KSampler", 4, 20), 0.456, eta=12.4) == \
        "▶️ KSampler: step 4 of 20 · about 12 s left · 46% of the workflow done"
    assert status_line(Progress("3", "KSampler", 4, 20), None) == "▶️ KSampler: step 4 of 20"  # before progress_state
    assert status_line(Notification("Model download finished"), 0.5) == "ℹ️ Model download finished"
    assert status_line(Notification(""), None) == ""


# ---- recordings replayed as a newer server would serve them ------------------------------------------------

def test_polling_a_newer_server_asks_api_jobs_only(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=2, jobs_api=True)
    replay.refuse_sockets = True
    job = client_for(replay, tmp_path, poll_interval=0.001).submit(invert, {"image": png_bytes()})
    assert job.result(5).images[0].path.read_bytes() == replay.view_bytes
    looks = [str(r.url.copy_with(scheme=None, host=None)) for r in replay.requests if r.method == "GET"
             and r.url.path not in ("/features", "/system_stats", "/view")]
    jobs, one = "/api/jobs?status=in_progress%2Cpending", f"/api/jobs/{job.prompt_id}"
    assert looks == ["/api/jobs?limit=1", jobs, one, jobs, one, one]  # two looks (queue, then itself); outputs


def test_cancelling_on_a_newer_server_needs_no_interrupt(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("g3_txt2img_interrupt_mid_sampling"), running_polls=10**6, jobs_api=True)
    replay.routes[("POST", "/api/jobs/cancel")] = lambda request: (replay.finished.set(), httpx.Response(
        200, json={"cancelled": True}))[1]
    client = client_for(replay, tmp_path, tracker="http", poll_interval=0.001)
    job = client.submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    assert next(e for e in job.events() if e is not None) == Started()
    job.cancel()
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled by you at KSampler; nothing was saved from this run."
    posts = [r.url.path for r in replay.requests if r.method == "POST"]
    assert "/interrupt" not in posts and "/queue" not in posts
    assert replay.cancelled == [job.prompt_id]  # then /api/jobs/{id}/cancel, a no-op once cancelled


# ---- the real 0.3.64 (opt in: COMFYUI_URL=http://127.0.0.1:8188 pytest -m real) -------------------------------

@pytest.mark.real
def test_the_real_0_3_64_is_followed_through_history_and_queue(tmp_path: Path, invert: TabSpec) -> None:
    url = os.environ.get("COMFYUI_URL", "").split(",")[0]
    if not url:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    client = ComfyClient(url, output_dir=tmp_path, tracker="http", poll_interval=0.05)
    features = client.features()
    assert features.version.startswith("0.3.") and not features.jobs_api and not features.text_prompt_ids
    job = client.submit(invert, {"image": png_bytes()})
    assert job.result(60).images and job.graph_progress is None  # polled: no socket, no progress_state
    assert client.attach(invert, job.prompt_id, job.prepared).result(30).images


@pytest.mark.real
def test_the_real_0_3_64_sends_text_frames_in_the_old_layout_to_a_client_that_asks_for_ids(tmp_path: Path) -> None:
    url = os.environ.get("COMFYUI_URL", "").split(",")[0]
    if not url:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    width = 16 + uuid.uuid4().int % 1000  # not cached by an earlier run: a cached node sends no text
    nodes = json.loads(json.dumps(GET_SIZE).replace('"width": 40', f'"width": {width}'))
    job = ComfyClient(url, output_dir=tmp_path).submit(tab_from_schema(Workflow("size", tmp_path / "s.json", nodes),
                                                                       {}, None))
    events = list(job.events())
    assert OutputReady("2", "Image size", {"text": [f"width: {width}, height: 24\n batch size: 3"]}) in events
    assert job.graph_progress == 1.0  # from its progress_state messages


# ---- the app on a newer server ---------------------------------------------------------------------------------

def test_the_app_runs_a_tab_on_a_newer_server(newer: FakeComfyUI, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from tests.harness import RunningApp, only_image, picture

    app = RunningApp(newer.url, WORKFLOWS, tmp_path)
    try:
        status, gallery, details = app.client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))),
                                                      api_name="/invert")
    finally:
        app.close()
    assert status.startswith("✅ Done in ") and only_image(gallery).getpixel((3, 3)) == (245, 55, 225)
    assert f"GET /api/jobs/{details['prompt_id']}" in paths(newer)
    assert not [p for p in paths(newer) if p.startswith(("GET /history", "POST /interrupt"))]


def test_a_proxy_that_refuses_api_jobs_leaves_history_and_queue_in_use(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), jobs_api=True)
    replay.routes[("GET", "/api/jobs")] = lambda request: httpx.Response(403)
    client = client_for(replay, tmp_path)
    assert client.submit(invert, {"image": png_bytes()}).result(5).images
    assert client.features().jobs_api is False
    assert any(r.url.path.startswith("/history/") for r in replay.requests)


def test_the_jobs_list_refuses_bad_paging_as_the_server_does(newer: FakeComfyUI) -> None:
    http = ComfyClient(newer.url).http
    assert http.get("/api/jobs", params={"limit": 0}).json() == {"error": "limit must be a positive integer"}
    assert http.get("/api/jobs", params={"limit": "x"}).json() == {"error": "limit must be an integer"}
    assert http.get("/api/jobs", params={"offset": "x"}).json() == {"error": "offset must be an integer"}
    assert http.get("/api/jobs", params={"offset": -5}).json()["pagination"]["offset"] == 0
    assert http.post("/api/jobs/cancel", json={"job_ids": ["Nope"]}).json() == {
        "error": "job_ids contains invalid id(s)", "invalid_ids": ["Nope"]}
    assert http.get(f"/api/jobs/{uuid.uuid4()}").json() == {"error": "Job not found"}


@pytest.mark.parametrize("assets", [True, False])
def test_an_upload_is_named_alike_with_or_without_an_asset_object(newer: FakeComfyUI, assets: bool) -> None:
    newer.assets = assets
    client = ComfyClient(newer.url)
    answer = client.http.post("/upload/image", files={"image": ("a.png", png_bytes((1, 2, 3)))},
                              data={"subfolder": "comfyui-gradio", "type": "input"}).json()
    assert ("asset" in answer) is assets and answer["name"] == "a.png"
    assert client.upload_image(png_bytes((4, 5, 6)), filename="b.png").startswith("comfyui-gradio/")
