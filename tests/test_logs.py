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

import httpx
import pytest
import websocket

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import LogEntry, LogLines, MessageType, OutputReady, log_lines, parse_text
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.fake_comfyui import FakeComfyUI
from tests.harness import wait_for
from tests.paths import TRANSCRIPTS, WORKFLOWS
from tests.replay import png_bytes

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
