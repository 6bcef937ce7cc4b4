"""Routing and moving jobs across replayed servers: estimated waits on a hand-moved clock, failover
of a waiting job with an upload. Fast and deterministic (no server, no sleeps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import httpx
import pytest

from comfyui_gradio.comfy.pool import ComfyPool, Durations
from comfyui_gradio.errors import ServerError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.paths import WORKFLOWS
from tests.replay import Replay, client_for, load_transcript, png_bytes

CKPT = "tiny-random-sd15.safetensors"
FAST = {"steps": 1, "width": 64, "height": 64, "checkpoint": CKPT}


@pytest.fixture()
def txt2img(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def replayed_pool(tmp_path: Path, object_info: dict, *names: str, clock: Callable[[], float] = Clock(),
                  durations: Durations | None = None) -> tuple[ComfyPool, list[Replay]]:
    """A pool of replayed b1 servers named ``http://<name>.test``, all healthy."""
    replays = [Replay(load_transcript("b1_load_invert_save")) for _ in names]
    for replay in replays:
        replay.routes[("GET", "/object_info")] = lambda request: httpx.Response(200, json=object_info)
    clients = [client_for(r, tmp_path, f"http://{n}.test", poll_interval=0.001) for r, n in zip(replays, names)]
    pool = ComfyPool(clients, health_interval=3600, clock=clock, durations=durations)
    pool.check_all()
    return pool, replays


def test_routing_looks_past_queue_length(tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    clock, durations = Clock(), Durations()
    pool, _ = replayed_pool(tmp_path, object_info, "a", "b", clock=clock, durations=durations)
    durations.record("txt2img", 0.5)
    assert pool.pick(txt2img, FAST, reserve="long").url == "http://a.test"
    clock.now += 0.01
    assert pool.pick(txt2img, FAST, reserve="short").url == "http://b.test"  # a holds 0.5 s of work
    clock.now += 0.6  # both hold one job; a's has overrun its typical 0.5 s, b's has too
    durations.record("txt2img", 30.0)  # now a long workflow (typical 9.35 s): a's job is the older one
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    pool._release("short")  # b's job ended
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    assert [s.in_flight for s in pool.statuses()] == [1, 0]


def test_an_overrunning_job_still_counts_a_tenth_of_its_typical_time(tmp_path: Path, object_info: dict,
                                                                    txt2img: TabSpec) -> None:
    clock, durations = Clock(), Durations()
    pool, _ = replayed_pool(tmp_path, object_info, "a", "b", clock=clock, durations=durations)
    durations.record("txt2img", 10.0)
    durations.record("other", 0.5)
    pool.pick(txt2img, FAST, reserve="overrun")  # on a: typical 10 s
    clock.now += 50.0  # far past it: it still counts 1 s
    other = TabSpec(**{**vars(txt2img), "name": "other"})
    pool.pick(other, FAST, reserve="fresh")  # on b: 0.5 s left
    clock.now += 0.1  # a: 1 s, b: 0.4 s
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    clock.now += 0.35  # b: 0.05 s by the clock, but never less than a tenth of 0.5 s
    assert pool.pick(txt2img, FAST).url == "http://b.test"


def dying(replay: Replay) -> None:
    """Make ``replay``'s server stop answering once it has accepted a prompt (sockets refused)."""
    replay.refuse_sockets = True
    accept = replay.post_prompt

    def post(request: httpx.Request) -> httpx.Response:
        answer = accept(request)
        replay.routes.update({key: gone for key in [("GET", "/queue"), ("GET", "/history/{id}")]})
        return answer

    def gone(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    replay.routes[("POST", "/prompt")] = post


@pytest.mark.parametrize("stored_as, error", [
    ("x.png", None),
    ("x (1).png", "ComfyUI at http://b.test stored the uploaded images under other names; run it again."),
])
def test_a_moved_job_uploads_its_image_again(stored_as: str, error: str | None, tmp_path: Path,
                                             object_info: dict, catalog: Catalog) -> None:
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b")
    dying(a)
    b.routes[("POST", "/upload/image")] = lambda request: httpx.Response(
        200, json={"name": stored_as, "subfolder": "comfyui-gradio", "type": "input"})
    job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    assert job.prepared.values["image"] == "comfyui-gradio/x.png"  # a's name
    if error is None:
        assert job.result(5).server == "http://b.test"
        posted = json.loads(next(r for r in b.requests if r.url.path == "/prompt").content)
        assert posted["prompt"]["1"]["inputs"]["image"] == "comfyui-gradio/x.png"
    else:
        with pytest.raises(ServerError) as caught:
            job.result(5)
        assert str(caught.value) == error
        assert not any(r.url.path == "/prompt" for r in b.requests)
    assert [r.url.path for r in b.requests].count("/upload/image") == 1
    assert [s.healthy for s in pool.statuses()] == [False, True]
