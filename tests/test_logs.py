"""ComfyUI's own log, live: the subscription, the ``logs`` messages, ``LogLines`` events of a job that asks.

The wire is recorded in ``transcripts/i_logs_subscribe.json`` (ComfyUI 0.3.64); the double says the same.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
import websocket
from gradio_client import Client, handle_file

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import LogEntry, LogLines, MessageType, OutputReady, log_lines, parse_text
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.errors import ConfigError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from comfyui_gradio.web.app import create_app
from comfyui_gradio.web.config import Settings, load_settings
from comfyui_gradio.web.stream import Outputs, RunStream, ServerLog
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port, wait_for
from tests.paths import TRANSCRIPTS, WORKFLOWS
from tests.replay import png_bytes
from tests.test_browser import browser, open_tab, page  # noqa: F401 - fixtures of the browser test

RECORDING = json.loads((TRANSCRIPTS / "i_logs_subscribe.json").read_text())
SECONDS = re.compile(r"Prompt executed in \d+\.\d\d seconds")


def recorded_logs() -> list[dict[str, Any]]:
    return [e["message"]["data"] for e in RECORDING["events"]
            if e["kind"] == "ws_text" and e["message"]["type"] == "logs"]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    """Each message's texts, with the run time (which varies) left out."""
    return [SECONDS.sub("Prompt executed in N seconds", e["m"]) for m in messages for e in m["entries"]]


@pytest.fixture()
def invert(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json", catalog)


# ---- the wire ---------------------------------------------------------------------------------


def test_a_recorded_logs_message_becomes_log_lines() -> None:
    first = next(e["message"] for e in RECORDING["events"] if e["kind"] == "ws_text"
                 and e["message"]["type"] == "logs")
    message = parse_text(json.dumps(first))
    assert message.type is MessageType.LOGS and message.prompt_id is None
    lines = log_lines(message.data)
    assert lines == LogLines((LogEntry(first["data"]["entries"][0]["t"], "got prompt\n"),))
    assert lines.text == "got prompt\n"


def test_log_lines_of_an_odd_message_keep_what_can_be_read() -> None:
    assert log_lines({"entries": [{"t": "x", "m": "a"}, "junk", {"m": "b"}], "size": None}).text == "ab"
    assert log_lines({"entries": None}) == LogLines(())


def test_the_double_logs_what_the_recorded_server_logged(fake: FakeComfyUI) -> None:
    """The recording's requests sent again to the double: the same log texts, in the same messages, and
    the same answers to the subscription."""
    client_id = RECORDING["client_id"]
    ws = websocket.create_connection(f"{fake.url.replace('http://', 'ws://')}/ws?clientId={client_id}", timeout=5)
    statuses = []
    with httpx.Client(base_url=fake.url) as http:
        for event in (e for e in RECORDING["events"] if e["kind"] == "http"):
            body = {"json": event["request_json"]} if "request_json" in event else \
                {"content": event["request_body"].encode(), "headers": {"Content-Type": "application/json"}}
            statuses.append(http.request(event["method"], event["path"], **body).status_code)
            wait_for(lambda: fake.queue_remaining == 0)
            time.sleep(0.05)
    got = _logs_on(ws)
    assert statuses == [e["status"] for e in RECORDING["events"] if e["kind"] == "http"]
    assert texts(got) == texts(recorded_logs())
    assert [len(m["entries"]) for m in got] == [1] * len(got)  # one message per log record
    assert [m["size"] for m in got] == [m["size"] for m in recorded_logs()]  # the terminal size only at first


def test_the_double_drops_a_subscriber_whose_socket_has_gone(fake: FakeComfyUI) -> None:
    ws = websocket.create_connection(f"{fake.url.replace('http://', 'ws://')}/ws?clientId=gone", timeout=5)
    httpx.patch(f"{fake.url}/internal/logs/subscribe", json={"enabled": True, "clientId": "gone"})
    ws.close()
    wait_for(lambda: "gone" not in fake._sockets)
    fake.log("after")
    assert fake._log_subscribers == set()


def _logs_on(ws: websocket.WebSocket) -> list[dict[str, Any]]:
    """Every ``logs`` message that reached ``ws``, until it has been quiet for a moment."""
    ws.settimeout(0.3)
    found = []
    while True:
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            ws.close()
            return found
        message = json.loads(frame) if isinstance(frame, str) else {}
        if message.get("type") == "logs":
            found.append(message["data"])


# ---- a job that asks for the log --------------------------------------------------------------


def test_a_job_with_logs_gets_the_servers_lines_as_events(fake: FakeComfyUI, invert: TabSpec,
                                                          tmp_path: Path) -> None:
    fake.node_delay = 0.05
    with ComfyClient(fake.url, output_dir=tmp_path) as client:
        job = client.submit(invert, {"image": png_bytes()}, logs=True)
        wait_for(lambda: fake.queue_remaining == 1)
        fake.log("a line of someone else's")  # the log is the whole server's
        events = list(job.events())
        job.result()
    lines = "".join(e.text for e in events if isinstance(e, LogLines))
    assert lines.startswith("got prompt\n") and "a line of someone else's\n" in lines
    assert ("PATCH", "/internal/logs/subscribe") in fake.requests
    first_output = next(i for i, e in enumerate(events) if isinstance(e, OutputReady))
    assert any(isinstance(e, LogLines) for e in events[:first_output])  # they come while it runs


def test_without_logs_a_job_neither_subscribes_nor_gets_lines(fake: FakeComfyUI, invert: TabSpec,
                                                              tmp_path: Path) -> None:
    with ComfyClient(fake.url, output_dir=tmp_path) as client:
        job = client.submit(invert, {"image": png_bytes()})
        events = list(job.events())
        job.result()
    assert not any(isinstance(e, LogLines) for e in events)
    assert ("PATCH", "/internal/logs/subscribe") not in fake.requests


def test_a_pool_job_asks_for_the_log_too(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path) -> None:
    pool = ComfyPool([ComfyClient(fake.url, output_dir=tmp_path)], health_interval=3600).start()
    job = pool.submit(invert, {"image": png_bytes()}, logs=True)
    assert "got prompt\n" in "".join(e.text for e in job.events() if isinstance(e, LogLines))
    job.result()
    pool.close()


class _NoLogRoute(FakeComfyUI):
    """A server (or a proxy in front of it) that does not serve /internal."""

    def _routes(self):  # type: ignore[no-untyped-def]
        routes = super()._routes()
        del routes[("PATCH", "/internal/logs/subscribe")]
        return routes


def test_a_server_without_the_log_route_runs_the_job_without_lines(invert: TabSpec, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with _NoLogRoute() as server, ComfyClient(server.url, output_dir=tmp_path) as client:
        job = client.submit(invert, {"image": png_bytes()}, logs=True)
        events = list(job.events())
        assert job.result().images
    assert not any(isinstance(e, LogLines) for e in events)
    assert f"No server log for prompt {job.prompt_id}: ComfyUI at {server.url} does not stream its log (PATCH " \
           "/internal/logs/subscribe answered HTTP 404); run without the server log." in caplog.messages


def test_subscribe_logs_says_what_the_server_answered(tmp_path: Path) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200 if seen[-1][2]["enabled"] else 404)

    http = httpx.Client(base_url="http://comfy", transport=httpx.MockTransport(handler))
    client = ComfyClient("http://comfy", http=http, output_dir=tmp_path)
    client.subscribe_logs("abc")
    with pytest.raises(Exception, match=r"answered HTTP 404\); run without the server log\.$"):
        client.subscribe_logs("abc", enabled=False)
    assert seen == [("PATCH", "/internal/logs/subscribe", {"enabled": True, "clientId": "abc"}),
                    ("PATCH", "/internal/logs/subscribe", {"enabled": False, "clientId": "abc"})]


# ---- the real server ----------------------------------------------------------------------------


@pytest.mark.real
def test_a_real_comfyui_sends_its_log_to_a_job_that_asks(invert: TabSpec, tmp_path: Path) -> None:
    url = os.environ.get("COMFYUI_URL", "").split(",")[0]
    if not url:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    with ComfyClient(url, output_dir=tmp_path) as client:
        job = client.submit(invert, {"image": png_bytes((1, 2, 3), (9, 7))}, logs=True)
        events = list(job.events())
        assert job.result().images[0].path.is_file()
    lines = [e for e in events if isinstance(e, LogLines)]
    assert "got prompt\n" in [entry.text for e in lines for entry in e.entries]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+", entry.time) for e in lines for entry in e.entries)


# ---- the "Server log" panel of the app ----------------------------------------------------------


@pytest.mark.parametrize(("raw", "share", "value", "shown"), [
    ("", False, "off", False), ("1", False, "on", True), ("on", True, "on", False), ("public", True, "public", True),
    ("no", False, "off", False)])
def test_show_server_log_is_off_by_default_and_never_on_a_share_link_unless_public(
        raw: str, share: bool, value: str, shown: bool) -> None:
    settings = load_settings([], {"SHOW_SERVER_LOG": raw, "GRADIO_SHARE": "1" if share else ""})
    assert (settings.server_log, settings.shows_server_log) == (value, shown)


def test_a_wrong_show_server_log_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([], {"SHOW_SERVER_LOG": "loud"})
    assert str(caught.value.problems[0]) == "settings: SHOW_SERVER_LOG: 'loud' must be one of: off, on, public"


def test_the_panel_keeps_the_tail_and_overwrites_progress_bars_as_comfyui_does() -> None:
    log = ServerLog(limit=40)
    for write in ["got prompt\n", " 10%|#", "\r 50%|#####", "\r100%|##########|\n", "Prompt executed in 0.1 s\n"]:
        log.add(write)
    assert log.text() == "100%|##########|\nPrompt executed in 0.1 s\n"[-40:]
    log.add("\rstill going")  # after a whole line nothing is overwritten
    assert log.text().endswith("0.1 s\nstill going")


def test_a_runs_log_lines_go_to_the_panel_not_to_the_status(invert: TabSpec) -> None:
    class Finished:
        def events(self, idle: float | None = None):
            yield LogLines((LogEntry("t", "got prompt\n"), LogEntry("t", "Prompt executed in 0.01 seconds\n")))

    with gr.Blocks():
        outputs = Outputs(gr.Markdown(), gr.Gallery(), gr.JSON())
    log = ServerLog()
    updates = list(RunStream(outputs, lambda job: None, previews=True, log=log).one(Finished(), lambda *a, **k: None,
                                                                                     "", []))
    assert log.text() == "got prompt\nPrompt executed in 0.01 seconds\n"
    assert "got prompt" not in repr(updates)


@pytest.mark.parametrize("server_log", ["off", "on"])
def test_the_panel_is_on_the_page_only_when_asked(server_log: str, fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = Settings(comfyui_url=fake.url, workflows_dir=WORKFLOWS, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", server_log=server_log)
    app, pool = create_app(settings)
    ids = {c.get("props", {}).get("elem_id") for c in app.config["components"]}
    labels = {c.get("props", {}).get("label") for c in app.config["components"]}
    pool.close()
    assert ("invert-server-log" in ids) == ("Server log" in labels) == (server_log == "on")


def test_api_callers_never_get_the_server_log(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = Settings(comfyui_url=fake.url, workflows_dir=WORKFLOWS, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", server_log="on", server_port=free_port())
    app, pool = create_app(settings)
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    try:
        client = Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False)
        source = tmp_path / "in.png"
        source.write_bytes(png_bytes((5, 5, 5), (8, 8)))
        status, _, _ = client.predict(image=handle_file(str(source)), api_name="/invert")  # the API is unchanged
        assert status.startswith("✅")
    finally:
        app.close()
        pool.close()
    assert ("PATCH", "/internal/logs/subscribe") not in fake.requests


@pytest.mark.browser
def test_the_server_log_panel_shows_comfyuis_lines_during_a_run_from_the_page(page, fake: FakeComfyUI,
                                                                              tmp_path: Path) -> None:
    from playwright.sync_api import expect

    fake.node_delay = 1.5  # 4.5 s for the three nodes: the panel's timer ticks every second meanwhile
    settings = Settings(comfyui_url=fake.url, workflows_dir=WORKFLOWS, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", server_log="on", server_port=free_port())
    app, pool = create_app(settings)
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    try:
        source = tmp_path / "in.png"
        source.write_bytes(png_bytes((5, 5, 5), (8, 8)))
        open_tab(page, f"http://127.0.0.1:{settings.server_port}/", "Invert colors")
        page.locator("#invert-image input[type=file]").set_input_files(source)
        expect(page.locator("#invert-image img")).to_be_visible()
        page.locator("#invert-generate").click()
        page.locator("#invert-server-log").get_by_text("Server log").click()
        log = page.locator("#invert-server-log textarea")
        expect(log).to_have_value(re.compile(r"^got prompt\n"))  # ComfyUI's first line for a prompt
        assert "Done" not in page.locator("#invert-status").inner_text()  # shown while the run goes on
        expect(page.locator("#invert-status")).to_contain_text("✅ Done")
        expect(log).to_have_value(re.compile(r"^got prompt\n"))  # still there once the run has ended
    finally:
        app.close()
        pool.close()
    assert ("PATCH", "/internal/logs/subscribe") in fake.requests
