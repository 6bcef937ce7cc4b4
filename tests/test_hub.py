"""One socket per server (``comfy/hub.py``): many jobs in flight on the test double share it, each sees
only its own prompt, and a drop or a refusal is handled for all of them at once."""

from __future__ import annotations

import json
import queue
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import MessageType, Preview, Progress, Queued, WireMessage
from comfyui_gradio.comfy.hub import Place, SocketHub, queue_places
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.comfy.transport import WebSocketConnection, connect_websocket
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.fake_comfyui import FakeComfyUI
from tests.harness import wait_for
from tests.paths import WORKFLOWS
from tests.replay import ScriptedSocket

CHECKPOINT = "tiny-random-sd15.safetensors"


class Connector:
    """``connect_websocket``, counting attempts and keeping the connections so a test can cut one."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.opened: list[Any] = []

    def __call__(self, url: str, *, headers: dict[str, str], timeout: float) -> WebSocketConnection:
        self.urls.append(url)
        connection = connect_websocket(url, headers=headers, timeout=timeout)
        self.opened.append(connection)
        return connection

    def cut(self) -> None:
        """Drop the newest connection like a network failure (no close frame)."""
        self.opened[-1]._ws.sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture()
def connector() -> Connector:
    return Connector()


@pytest.fixture()
def client(fake: FakeComfyUI, tmp_path: Path, connector: Connector) -> Iterator[ComfyClient]:
    with ComfyClient(fake.url, output_dir=tmp_path, poll_interval=0.05, connect_ws=connector) as client:
        yield client


@pytest.fixture()
def txt2img(fake: FakeComfyUI, catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


def submit_all(client: ComfyClient, tab: TabSpec, count: int) -> list[Job]:
    """``count`` jobs at once, job ``i`` with ``i + 1`` steps (so its previews and progress are its own)."""
    return [client.submit(tab, {"steps": i + 1, "seed": 1000 + i, "checkpoint": CHECKPOINT}, timeout=30)
            for i in range(count)]


def assert_own_pictures(fake: FakeComfyUI, jobs: list[Job]) -> None:
    """Each job saved the picture the server made for its own prompt."""
    for job in jobs:
        result = job.result(30)
        outputs = httpx.get(f"{fake.url}/history/{job.prompt_id}").json()[job.prompt_id]["outputs"]
        image = outputs["9"]["images"][0]
        served = httpx.get(f"{fake.url}/view", params=image).content
        assert [o.path.read_bytes() for o in result.images] == [served]


def test_jobs_in_flight_share_one_socket_and_each_sees_only_its_own_prompt(
        fake: FakeComfyUI, client: ComfyClient, connector: Connector, txt2img: TabSpec) -> None:
    fake.step_delay = 0.01
    jobs = submit_all(client, txt2img, 6)
    assert_own_pictures(fake, jobs)
    assert (len(connector.urls), fake.ws_connections) == (1, 1)
    for steps, job in enumerate(jobs, start=1):
        events = list(job.events())
        progress = [e for e in events if isinstance(e, Progress)]
        assert [(e.value, e.max) for e in progress] == [(n, steps) for n in range(1, steps + 1)]
        assert len([e for e in events if isinstance(e, Preview)]) == steps
    assert {p["client_id"] for p in fake.prompts} == {client.socket_hub().client_id}
    assert client.socket_hub().prompt_ids == frozenset()


def test_a_dropped_socket_is_reopened_once_for_every_job_in_flight(
        fake: FakeComfyUI, client: ComfyClient, connector: Connector, txt2img: TabSpec,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SocketHub, "reconnect_delay", 0.0)
    fake.step_delay = 0.05
    jobs = submit_all(client, txt2img, 5)
    wait_for(lambda: jobs[1].prompt_id in fake._running)
    connector.cut()
    assert_own_pictures(fake, jobs)
    assert (len(connector.urls), fake.ws_connections) == (2, 2)  # reopened once, with the same client id
    assert len(set(connector.urls)) == 1


def test_a_refused_socket_makes_every_job_poll(fake: FakeComfyUI, client: ComfyClient, connector: Connector,
                                               txt2img: TabSpec) -> None:
    fake.refuse_ws = True  # a proxy that lets no WebSocket through
    jobs = submit_all(client, txt2img, 5)
    assert_own_pictures(fake, jobs)
    assert (len(connector.urls), fake.ws_connections) == (1, 0)  # later jobs did not knock again at once


# ---- routing, frame by frame (a scripted socket) --------------------------------------------------

class ScriptedServer:
    """What a hub needs of a server (``server.JobServer``), with one scripted socket."""

    url, headers, timeout = "http://comfy.test", {}, 5.0

    def __init__(self) -> None:
        self.socket = ScriptedSocket()
        self.subscribed: list[tuple[str, bool]] = []
        self.queue_reads = 0

    def connect_ws(self, url: str, *, headers: dict[str, str], timeout: float) -> ScriptedSocket:
        return self.socket

    def subscribe_logs(self, client_id: str, enabled: bool = True) -> None:
        self.subscribed.append((client_id, enabled))

    def queue_state(self) -> dict[str, list[Any]]:
        self.queue_reads += 1
        return {"queue_running": [[7, "A", {}, {}, []]], "queue_pending": [[8, "Z", {}, {}, []], [9, "B", {}, {}, []]]}


def message(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})


def legacy_preview() -> bytes:
    """Binary type 1 (no prompt id: a server without preview metadata), as in ``server.py`` ``send_image``."""
    return b"\x00\x00\x00\x01\x00\x00\x00\x02" + b"\xff\xd8jpeg"


def text_frame(node: str, text: str) -> bytes:
    """Binary type 3 as 0.3.64 sends it: ``u32 len · node id · text``, no prompt id."""
    return b"\x00\x00\x00\x03" + len(node).to_bytes(4, "big") + node.encode() + text.encode()


def drain(inbox: queue.Queue[Any]) -> list[Any]:
    items = []
    while not inbox.empty():
        items.append(inbox.get_nowait())
    return items


def describe(item: Any) -> str:
    if isinstance(item, Place):
        return f"Place:{item.position}"
    if isinstance(item, WireMessage):
        return f"{item.type.value}:{item.prompt_id}" if item.type is not MessageType.LOGS else "logs"
    return f"{type(item).__name__}:{item.prompt_id}"


def test_each_frame_goes_to_its_prompt_and_unkeyed_ones_to_the_prompt_running_now() -> None:
    server = ScriptedServer()
    hub = SocketHub(server)
    a, b = queue.Queue(), queue.Queue()
    assert hub.join("A", a) and hub.join("B", b, logs=True)
    assert server.subscribed == [(hub.client_id, True)]
    for frame in [message("execution_start", prompt_id="A"), message("executing", node="3", prompt_id="A"),
                  legacy_preview(), text_frame("5", "8x8"), message("progress", value=1, max=2, prompt_id="A",
                                                                       node="3"),
                  message("progress", value=1, max=2, prompt_id="Z", node="3"),  # another client's prompt
                  message("logs", entries=[{"t": "", "m": "got prompt"}]), message("status", status={}),
                  message("executing", node=None, prompt_id="A"), message("execution_start", prompt_id="B"),
                  legacy_preview()]:
        server.socket.frames.put(frame)
    done = threading.Event()
    server.socket.frames.put(done.set)
    server.socket.frames.put(message("status", status={}))
    assert done.wait(5)
    wait_for(lambda: b.qsize() >= 4)
    assert [describe(i) for i in drain(a)] == [
        "execution_start:A", "executing:A", "PreviewFrame:None", "TextFrame:None", "progress:A", "executing:A"]
    # a status goes to no job as such: the hub read the queue and told B, waiting behind A and Z, its place
    # once (unchanged after the second status), whenever that read was done
    got = [describe(i) for i in drain(b)]
    assert [i for i in got if not i.startswith("Place")] == ["logs", "execution_start:B", "PreviewFrame:None"]
    assert [i for i in got if i.startswith("Place")] == ["Place:2"] and 1 <= server.queue_reads <= 2
    hub.leave("B")
    assert server.subscribed == [(hub.client_id, True), (hub.client_id, False)]  # the last log reader left
    hub.close()
    assert not server.socket.closed and not hub.join("C", queue.Queue())  # A is still in; nobody joins now
    hub.leave("A")
    assert server.socket.closed


def test_a_waiting_prompts_place_counts_the_running_ones_and_those_with_lower_numbers() -> None:
    state = {"queue_running": [[3, "R", {}, {}, []]],
             "queue_pending": [[9, "late", {}, {}, []], [-1, "front", {}, {}, []], [5, "mid", {}, {}, []]]}
    assert queue_places(state) == {"front": 1, "mid": 2, "late": 3}  # by number, not by list order
    assert queue_places({"queue_running": [], "queue_pending": [[4, "x", {}, {}, []], [4, "y", {}, {}, []]]}) == {
        "x": 0, "y": 0}  # equal numbers: neither is ahead of the other
    assert queue_places({}) == {}


def test_forty_jobs_in_flight_take_a_few_threads_not_one_each(fake: FakeComfyUI, client: ComfyClient,
                                                              txt2img: TabSpec) -> None:
    fake.step_delay = 0.005
    before, most, stop = threading.active_count(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            most[0] = max(most[0], threading.active_count())
            stop.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        jobs = submit_all(client, txt2img, 40)
        assert_own_pictures(fake, jobs)
    finally:
        stop.set()
        sampler.join()
    extra = most[0] - before - 1  # not counting the sampler
    assert extra <= client.socket_hub().workers.size + 2, extra  # the workers, the socket's reader, the clock


def test_a_pool_routes_and_runs_its_jobs_over_one_socket_per_server(fake: FakeComfyUI, tmp_path: Path,
                                                                    txt2img: TabSpec) -> None:
    fake.step_delay = 0.01
    with FakeComfyUI() as other:
        other.step_delay = 0.01
        pool = ComfyPool([ComfyClient(fake.url, output_dir=tmp_path), ComfyClient(other.url, output_dir=tmp_path)],
                         health_interval=3600).start()  # its queue watches listen before any job is sent
        try:
            jobs = [pool.submit(txt2img, {"steps": 3, "seed": 3000 + i, "checkpoint": CHECKPOINT}) for i in range(8)]
            assert all(job.result(30).images for job in jobs)
            assert {job.client.url for job in jobs} == {fake.url, other.url}
            assert (fake.ws_connections, other.ws_connections) == (1, 1)  # routing and jobs share it
        finally:
            pool.close()


def test_a_waiting_job_is_told_each_new_place_as_the_queue_moves(fake: FakeComfyUI, client: ComfyClient,
                                                                 txt2img: TabSpec) -> None:
    fake.step_delay = 0.1  # 4 steps: each job runs for longer than the hub waits between two reads
    jobs = [client.submit(txt2img, {"steps": 4, "seed": 4000 + i, "checkpoint": CHECKPOINT}) for i in range(3)]
    assert all(job.result(30).images for job in jobs)
    places = [[e.position for e in job.events() if isinstance(e, Queued)] for job in jobs]
    assert places[1:] == [[1], [2, 1]]  # the third: behind two, then behind the one running; each place once
    assert places[0] in ([], [0])  # the first may have started before its place was read
