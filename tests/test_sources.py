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


def counting(tmp_path: Path) -> tuple[WorkflowSources, list[str]]:
    """Sources whose server answers every URL with ``EMPTY``, and the paths it was asked for."""
    hits: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.path)
        return httpx.Response(200, json=EMPTY)

    return WorkflowSources(tmp_path, http=httpx.Client(transport=httpx.MockTransport(handle))), hits


def test_a_url_is_downloaded_once_under_its_own_name(tmp_path: Path) -> None:
    sources, hits = counting(tmp_path)
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


# ---- what each refusal says, the caps and their boundaries, what is remembered --------------------

def fails(sources: WorkflowSources, source: str) -> str:
    with pytest.raises(ConfigError) as raised:
        sources.path_for(source)
    return str(raised.value)


def test_the_defaults_are_the_workflow_cap_thirty_seconds_and_a_folder_of_the_temp_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert WorkflowSources().cache_dir == tmp_path / "comfyui-gradio-workflows"

    def declared(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow.json":
            raise httpx.ReadTimeout("timed out", request=request)
        size = 8 * 2**20 + (1 if request.url.path == "/big.json" else 0)
        return httpx.Response(200, headers={"content-length": str(size)}, content=b"")

    sources = WorkflowSources(tmp_path, http=httpx.Client(transport=httpx.MockTransport(declared)))
    assert fails(sources, f"{SITE}/big.json") == (f"{SITE}/big.json: the file is 8.0 MiB; at most 8.0 MiB is read "
                                                  "(Limits.max_workflow_bytes)")
    assert fails(sources, f"{SITE}/exact.json") == (f"{SITE}/exact.json: this is not a workflow: the download is "
                                                    'not JSON. Give the address of the raw .json file (on GitHub: '
                                                    'the "Raw" button).')  # 8 MiB declared is allowed: read on
    assert fails(sources, f"{SITE}/slow.json") == (f"{SITE}/slow.json: no complete answer within 30 s; try again, "
                                                   "or download the file and give its path")


@pytest.mark.parametrize("body, reason", [
    (b"[1, 2]", "this is not a workflow: the JSON is not an object of nodes"),
    (b"", 'this is not a workflow: the download is not JSON. Give the address of the raw .json file (on GitHub: '
          'the "Raw" button).'),
])
def test_a_download_that_is_not_an_object_of_nodes_is_refused(tmp_path: Path, body: bytes, reason: str) -> None:
    sources = WorkflowSources(tmp_path, http=site({"/w.json": httpx.Response(200, content=body)}))
    assert fails(sources, f"{SITE}/w.json") == f"{SITE}/w.json: {reason}"
    assert list(tmp_path.iterdir()) == []  # nothing was cached


@pytest.mark.parametrize("status", [201, 204, 301, 500])
def test_any_answer_but_200_names_its_status(tmp_path: Path, status: int) -> None:
    sources = WorkflowSources(tmp_path, http=httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(status, json=EMPTY))))
    assert fails(sources, f"{SITE}/w.json") == f"{SITE}/w.json: the server answered HTTP {status}; check the address"


def test_a_failed_connection_names_the_url_and_the_reason(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refused))
    assert fails(WorkflowSources(tmp_path, http=http), f"{SITE}/w.json") == (
        f"{SITE}/w.json: cannot be downloaded (connection refused); check the address")


def test_a_failure_without_words_is_named_by_its_kind(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refused))
    assert fails(WorkflowSources(tmp_path, http=http), f"{SITE}/w.json") == (
        f"{SITE}/w.json: cannot be downloaded (ConnectError); check the address")  # not "()"


def test_a_body_of_exactly_the_cap_is_read_with_or_without_a_length(tmp_path: Path) -> None:
    body = json.dumps(EMPTY).encode()
    routes = {"/sized.json": lambda: httpx.Response(200, content=body),
              "/streamed.json": lambda: httpx.Response(200, content=iter([body[:10], body[10:]]))}
    sources = WorkflowSources(tmp_path, max_bytes=len(body), http=httpx.Client(
        transport=httpx.MockTransport(lambda request: routes[request.url.path]())))
    assert json.loads(sources.path_for(f"{SITE}/sized.json").read_text()) == EMPTY
    assert json.loads(sources.path_for(f"{SITE}/streamed.json").read_text()) == EMPTY
    smaller = WorkflowSources(tmp_path, max_bytes=len(body) - 1, http=httpx.Client(
        transport=httpx.MockTransport(lambda request: routes[request.url.path]())))
    assert fails(smaller, f"{SITE}/streamed.json").startswith(f"{SITE}/streamed.json: the file is more than ")


def test_download_has_its_own_cap_and_no_workflow_hint(tmp_path: Path) -> None:
    picture = b"\x89PNG" + b"x" * (2**20 - 4)
    sources = WorkflowSources(tmp_path, max_bytes=10, http=site({"/cat.png": httpx.Response(200, content=picture)}))
    assert sources.download(f"{SITE}/cat.png", 2**20) == picture  # the workflow cap (10 bytes) is not applied
    with pytest.raises(ConfigError) as raised:
        sources.download(f"{SITE}/cat.png", 2**20 - 1)
    assert str(raised.value) == f"{SITE}/cat.png: the file is 1.0 MiB; at most 1024.0 KiB is read"
    assert list(tmp_path.iterdir()) == []  # a plain download is not cached


def test_a_redirect_is_followed_even_by_a_client_that_does_not_and_the_file_keeps_the_asked_name(
        tmp_path: Path) -> None:
    routes = {"/old/flow.json": httpx.Response(301, headers={"location": f"{SITE}/new/moved.json"}),
              "/new/moved.json": httpx.Response(200, json=EMPTY)}
    http = httpx.Client(transport=httpx.MockTransport(lambda request: routes[request.url.path]))
    sources = WorkflowSources(tmp_path, http=http)
    path = sources.path_for(f"{SITE}/old/flow.json")
    assert path.name == "flow.json" and json.loads(path.read_text()) == EMPTY
    assert not http.is_closed  # an injected client is the caller's to close


def _serve(handler: type) -> tuple[str, "object"]:
    from http.server import ThreadingHTTPServer
    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def test_the_own_client_bounds_redirects_and_time(tmp_path: Path) -> None:
    """Without an injected client, ``max_redirects`` and ``timeout`` bound a real connection."""
    import time as _time
    from http.server import BaseHTTPRequestHandler

    class Server(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slow.json":
                _time.sleep(0.2)
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    url, server = _serve(Server)
    try:
        assert fails(WorkflowSources(tmp_path, max_redirects=2), f"{url}/loop.json") == (
            f"{url}/loop.json: more than 2 redirects (a redirect loop?); give the file's final address")
        assert fails(WorkflowSources(tmp_path, timeout=0.05), f"{url}/slow.json") == (
            f"{url}/slow.json: no complete answer within 0 s; try again, or download the file and give its path")
    finally:
        server.shutdown()
        server.server_close()


def test_a_cached_file_that_was_removed_is_fetched_again(tmp_path: Path) -> None:
    sources, hits = counting(tmp_path)
    path = sources.path_for(f"{SITE}/empty.json")
    path.unlink()
    assert sources.path_for(f"{SITE}/empty.json") == path and path.exists()
    assert hits == ["/empty.json", "/empty.json"]


@pytest.mark.parametrize("url, name", [
    (f"{SITE}/a/b/My Flow (v2).json?raw=1", "My Flow _v2_.json"),
    (f"{SITE}/flows/upscale/", "upscale.json"),
    (f"{SITE}/flows/XFLUX/", "XFLUX.json"),
    (f"{SITE}/", "workflow.json"),
    (f"{SITE}/..json", "workflow.json"),
    (f"{SITE}/" + "x" * 100 + ".json", "x" * 80 + ".json"),
])
def test_the_cached_file_is_named_by_the_urls_last_part_made_safe(tmp_path: Path, url: str, name: str) -> None:
    sources = WorkflowSources(tmp_path, http=httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=EMPTY))))
    assert sources.path_for(url).name == name


def test_stored_files_share_a_folder_by_content_and_keep_unicode_readable(tmp_path: Path) -> None:
    sources = WorkflowSources(tmp_path)
    café = {"1": {"class_type": "Note", "inputs": {"text": "café ☕"}}}
    first, second = sources.store(café, "one"), sources.store(café, "two")
    assert first.parent == second.parent and (first.name, second.name) == ("one.json", "two.json")
    assert "café ☕" in first.read_text(encoding="utf-8")
    assert sources.store(EMPTY, "one").parent != first.parent
    assert sorted(p.name for p in first.parent.iterdir()) == ["one.json", "two.json"]  # no partial file left
    first.write_text("{}")
    assert sources.store(café, "one") == first and first.read_text() == "{}"  # an existing file is kept


def test_fetch_all_keeps_the_files_and_the_failures_in_order(tmp_path: Path) -> None:
    sources = WorkflowSources(tmp_path, http=site({"/a.json": httpx.Response(200, json=EMPTY)}))
    files, failed = sources.fetch_all([f"{SITE}/a.json", f"{SITE}/gone.json", f"{SITE}/b.json"])
    assert [f.name for f in files] == ["a.json"]
    assert [(url, str(exc)) for url, exc in failed] == [
        (f"{SITE}/gone.json", f"{SITE}/gone.json: the server answered HTTP 404; check the address"),
        (f"{SITE}/b.json", f"{SITE}/b.json: the server answered HTTP 404; check the address")]


def test_a_file_named_like_an_id_wins_and_a_path_object_is_never_an_id(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_runninghub() -> RunningHubClient:
        raise AssertionError("RunningHub was asked")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "12345").write_text(json.dumps(EMPTY))
    sources = WorkflowSources(tmp_path / "cache", runninghub=no_runninghub)
    assert sources.path_for("12345") == Path("12345")
    assert sources.path_for(Path("67890")) == Path("67890")


def test_a_runninghub_id_is_fetched_once_and_its_client_closed_even_when_refused(tmp_path: Path) -> None:
    hub = FakeRunningHub(workflows={"1987654321": EMPTY})
    made, closed = [], []

    class Recording(RunningHubClient):
        def close(self) -> None:
            closed.append(self)

    def factory() -> RunningHubClient:
        made.append(Recording(KEY, URL, http=hub.client()))
        return made[-1]

    sources = WorkflowSources(tmp_path, runninghub=factory)
    path = sources.path_for("1987654321")
    assert sources.path_for("1987654321") == path and len(made) == 1 and closed == made
    with pytest.raises(ConfigError, match=r"^RunningHub workflow 42: RunningHub has no workflow with this id"):
        sources.path_for("42")
    assert len(made) == 2 and closed == made
