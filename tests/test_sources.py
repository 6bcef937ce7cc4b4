"""Workflows from anywhere: paths, dicts, URLs (capped, bounded, cached by content), RunningHub ids."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.runninghub import NO_KEY, RunningHubClient
from comfyui_gradio.comfy.sources import WorkflowSources
from comfyui_gradio.errors import ConfigError
from tests.fake_comfyui import FakeComfyUI
from tests.fake_runninghub import KEY, URL, FakeRunningHub
from tests.paths import WORKFLOWS

EMPTY = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
               "_meta": {"title": "Empty, $color.color"}},
         "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "empty", "images": ["1", 0]},
               "_meta": {"title": "$output.picture"}}}
SITE = "https://example.com"


def site(routes: dict[str, httpx.Response]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        return routes.get(request.url.path, httpx.Response(404))

    return httpx.Client(transport=httpx.MockTransport(handle), follow_redirects=True, max_redirects=5)


def test_a_path_stays_a_path_and_a_dict_is_stored_by_content(tmp_path: Path) -> None:
    sources = WorkflowSources(tmp_path)
    assert sources.path_for(WORKFLOWS / "invert.json") == WORKFLOWS / "invert.json"
    first, second = sources.path_for(EMPTY), sources.path_for(dict(EMPTY))
    assert first == second and first.name == "workflow.json" and first.parent.parent == tmp_path
    assert json.loads(first.read_text()) == EMPTY


def test_a_url_is_downloaded_once_under_its_own_name(tmp_path: Path) -> None:
    hits = []

    def handle(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.path)
        return httpx.Response(200, json=EMPTY)

    sources = WorkflowSources(tmp_path, http=httpx.Client(transport=httpx.MockTransport(handle)))
    path = sources.path_for(f"{SITE}/flows/empty.json")
    assert path.name == "empty.json" and json.loads(path.read_text()) == EMPTY
    assert sources.path_for(f"{SITE}/flows/empty.json") == path and hits == ["/flows/empty.json"]


@pytest.mark.parametrize("routes, reason", [
    ({}, "the server answered HTTP 404; check the address"),
    ({"/w.json": httpx.Response(200, content=b"<html>")},
     'this is not a workflow: the download is not JSON. Give the address of the raw .json file (on GitHub: '
     'the "Raw" button).'),
    ({"/w.json": httpx.Response(200, content=b"x" * 2048)},
     "the file is 2.0 KiB; at most 1.0 KiB is read (Limits.max_workflow_bytes)"),
    ({"/w.json": httpx.Response(302, headers={"location": f"{SITE}/w.json"})},
     "more than 5 redirects (a redirect loop?); give the file's final address"),
])
def test_url_errors_name_the_url_and_say_what_to_do(tmp_path: Path, routes: dict, reason: str) -> None:
    sources = WorkflowSources(tmp_path, http=site(routes), max_bytes=1024)
    with pytest.raises(ConfigError) as raised:
        sources.path_for(f"{SITE}/w.json")
    assert str(raised.value) == f"{SITE}/w.json: {reason}"


def test_an_oversized_stream_without_a_length_is_cut_off(tmp_path: Path) -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"{" + b" " * 999] * 10_000))  # 10 MB, no Content-Length

    sources = WorkflowSources(tmp_path, http=httpx.Client(transport=httpx.MockTransport(endless)), max_bytes=4096)
    with pytest.raises(ConfigError, match=r"^https://example.com/big.json: the file is more than 4\.\d KiB; at most "
                                          r"4\.0 KiB is read \(Limits"):
        sources.path_for(f"{SITE}/big.json")


def test_a_timeout_and_an_unreachable_host_name_the_url(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    sources = WorkflowSources(tmp_path, http=httpx.Client(transport=httpx.MockTransport(slow)), timeout=3)
    with pytest.raises(ConfigError, match=rf"^{SITE}/w.json: no complete answer within 3 s; try again"):
        sources.path_for(f"{SITE}/w.json")
    with pytest.raises(ConfigError, match=r"^http://127.0.0.1:9/w.json: cannot be downloaded \(.*\); check the"):
        WorkflowSources(tmp_path).path_for("http://127.0.0.1:9/w.json")


def test_a_runninghub_id_is_fetched_with_the_key(tmp_path: Path) -> None:
    hub = FakeRunningHub(workflows={"1987654321": EMPTY})
    sources = WorkflowSources(tmp_path, runninghub=lambda: RunningHubClient(KEY, URL, http=hub.client()))
    path = sources.path_for("1987654321")
    assert path.name == "runninghub-1987654321.json" and json.loads(path.read_text()) == EMPTY


def test_a_runninghub_id_without_a_key_says_how_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    with pytest.raises(ConfigError) as raised:
        WorkflowSources(tmp_path).path_for("1987654321")
    assert str(raised.value) == f"settings: RUNNINGHUB_API_KEY: {NO_KEY}"


def test_the_client_runs_a_dict_and_a_url(fake: FakeComfyUI, tmp_path: Path) -> None:
    with ComfyClient(fake.url, output_dir=tmp_path / "out") as client:
        served = site({"/empty.json": httpx.Response(200, json=EMPTY)})
        client.sources = WorkflowSources(tmp_path / "cache", http=served)
        for source in (EMPTY, f"{SITE}/empty.json"):
            result = client.run(source, {"color": 255}, timeout=30)
            assert [o.output_name for o in result.outputs] == ["picture"]
            assert result.prompt["1"]["inputs"]["color"] == 255
