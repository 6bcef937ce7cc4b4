"""Routing and moving jobs across replayed servers: estimated waits on a hand-moved clock, failover
of a waiting job with an upload. Fast and deterministic (no server, no sleeps)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Callable

import httpx
import pytest

from comfyui_gradio.comfy.events import Resubmitted, Started
from comfyui_gradio.comfy.hub import SocketHub
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.comfy.pool import ComfyPool, Durations, missing_requirements
from comfyui_gradio.errors import JobTimeout, ServerError, ServerUnavailable
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.harness import wait_for
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
                  durations: Durations | None = None, remote: tuple[object, ...] = (),
                  cloud_after: float | None = None) -> tuple[ComfyPool, list[Replay]]:
    """A pool of replayed b1 servers named ``http://<name>.test``, all healthy, then ``remote`` backends."""
    replays = [Replay(load_transcript("b1_load_invert_save")) for _ in names]
    for replay in replays:
        replay.routes[("GET", "/object_info")] = lambda request: httpx.Response(200, json=object_info)
    clients = [client_for(r, tmp_path, f"http://{n}.test", poll_interval=0.001) for r, n in zip(replays, names)]
    pool = ComfyPool([*clients, *remote], health_interval=3600, clock=clock, durations=durations,  # type: ignore[list-item]
                     cloud_after=cloud_after)
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
    posted_on_b = never_runs(b)
    b.routes[("POST", "/upload/image")] = lambda request: httpx.Response(
        200, json={"name": stored_as, "subfolder": "comfyui-gradio", "type": "input"})
    job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    assert job.prepared.values["image"] == "comfyui-gradio/x.png"  # a's name
    if error is None:
        assert posted_on_b.wait(5)  # waiting on b now
        assert [(s.healthy, s.error, s.in_flight) for s in pool.statuses()] == [
            (False, "stopped answering", 0), (True, "", 1)]
        job.cancel()
        list(job.events())
        posted = json.loads(next(r for r in b.requests if r.url.path == "/prompt").content)
        assert posted["prompt"]["1"]["inputs"]["image"] == "comfyui-gradio/x.png"
    else:
        with pytest.raises(ServerError) as caught:
            job.result(5)
        assert str(caught.value) == error
        assert not any(r.url.path == "/prompt" for r in b.requests)
    assert [r.url.path for r in b.requests].count("/upload/image") == 1
    assert [(s.healthy, s.in_flight) for s in pool.statuses()] == [(False, 0), (True, 0)]


def test_typical_durations_are_a_moving_average(tmp_path: Path) -> None:
    durations = Durations(weight=0.25)
    durations.record("w", 10.0)
    durations.record("w", 18.0)
    assert (durations.typical("w"), durations.typical("other")) == (12.0, None)
    assert (durations.remaining("w", 4.0), durations.remaining("w", 20.0), durations.remaining("x", 1.0)) == (
        8.0, 0.0, None)
    with pytest.raises(ValueError, match="^a pool needs at least one server$"):
        ComfyPool([])


def test_a_pool_run_records_its_duration_and_frees_its_place(tmp_path: Path, object_info: dict,
                                                            catalog: Catalog) -> None:
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b")
    result = pool.run(WORKFLOWS / "invert.json", {"image": png_bytes()})  # a path, read with a's catalogue
    assert result.server == "http://a.test" and result.images[0].path.parent == tmp_path / result.prompt_id
    posted = json.loads(next(r for r in a.requests if r.url.path == "/prompt").content)
    assert posted["prompt_id"] == result.prompt_id == str(uuid.UUID(result.prompt_id)) and b.prompt_id is None
    assert 0.0 <= pool.durations.typical("invert") < 5.0
    assert [(s.url, s.healthy, s.error, s.queue_remaining, s.in_flight) for s in pool.statuses()] == [
        ("http://a.test", True, "", 0, 0), ("http://b.test", True, "", 0, 0)]
    elsewhere = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()},
                            output_dir=tmp_path / "elsewhere")
    assert elsewhere.result(5).images[0].path.parent == tmp_path / "elsewhere" / elsewhere.prompt_id


def test_a_pool_job_past_its_timeout_is_cancelled(tmp_path: Path, object_info: dict, catalog: Catalog) -> None:
    pool, (a, _) = replayed_pool(tmp_path, object_info, "a", "b")
    a.routes[("POST", "/prompt")] = lambda request: httpx.Response(200, json={
        "prompt_id": json.loads(request.content)["prompt_id"], "number": 1, "node_errors": {}})  # never runs
    job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()}, timeout=0.05)
    with pytest.raises(JobTimeout):
        job.result(5)
    with pytest.raises(JobTimeout):
        pool.run(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()}, timeout=0.05)
    assert [s.in_flight for s in pool.statuses()] == [0, 0]


def never_runs(replay: Replay) -> threading.Event:
    """Make ``replay``'s server accept prompts and keep them waiting; the event is set once one came."""
    posted = threading.Event()

    def post(request: httpx.Request) -> httpx.Response:
        posted.set()
        return httpx.Response(200, json={"prompt_id": json.loads(request.content)["prompt_id"], "number": 1,
                                         "node_errors": {}})

    replay.routes[("POST", "/prompt")] = post
    return posted


def test_jobs_submitted_one_after_another_spread_out(tmp_path: Path, object_info: dict, catalog: Catalog) -> None:
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b")
    never_runs(a)
    never_runs(b)
    jobs = [pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()}) for _ in range(2)]
    assert [j.client.url for j in jobs] == ["http://a.test", "http://b.test"]  # the first is counted on a
    assert [s.in_flight for s in pool.statuses()] == [1, 1]
    for job in jobs:
        job.cancel()
        list(job.events())  # they end once the pool has been told
    assert [s.in_flight for s in pool.statuses()] == [0, 0]


def test_servers_that_are_down_are_named(tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b")
    a.down = True
    pool.check_all()
    assert [(s.healthy, s.error) for s in pool.statuses()] == [
        (False, "Cannot reach ComfyUI at http://a.test (connection refused). Start ComfyUI (python main.py "
                "--listen) or set COMFYUI_URL / --comfyui-url to its address."), (True, "")]
    assert pool.catalog() is pool._servers[1].catalog and pool.pick(txt2img, FAST).url == "http://b.test"
    b.down = True
    pool.check_all()
    assert pool.catalog() is None
    with pytest.raises(ServerError) as caught:
        pool.submit(txt2img, FAST)
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://a.test, http://b.test (no server answers)")
    lone, (c,) = replayed_pool(tmp_path, object_info, "c")
    c.down = True
    lone.check_all()
    with pytest.raises(ServerError) as caught:
        lone.pick(txt2img, FAST)
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://c.test (connection refused)")
    with pytest.raises(ServerError) as caught:
        lone.submit(WORKFLOWS / "invert.json", {"image": png_bytes()})  # read without a catalogue, then refused
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://c.test (connection refused)")
    c.down = False
    c.routes[("GET", "/queue")] = lambda request: httpx.Response(500)
    with pytest.raises(ServerError) as caught:
        lone.pick(txt2img, FAST)
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://c.test (ComfyUI at http://c.test answered "
                                        "GET /queue with HTTP 500; see the ComfyUI server's log)")


def test_a_server_that_comes_back_is_used_again_with_a_fresh_catalogue(tmp_path: Path, object_info: dict,
                                                                     txt2img: TabSpec) -> None:
    pool, (a,) = replayed_pool(tmp_path, object_info, "a")
    pool.check_all()
    assert [r.url.path for r in a.requests].count("/object_info") == 1  # read once while it stays up
    a.down = True
    pool.check_all()
    a.down = False
    assert pool.pick(txt2img, FAST).url == "http://a.test"  # picking looks again when none is up
    assert [r.url.path for r in a.requests].count("/object_info") == 2


def test_the_health_check_keeps_running_in_the_background(tmp_path: Path, object_info: dict) -> None:
    pool, (a,) = replayed_pool(tmp_path, object_info, "a")
    checks = threading.Semaphore(0)

    def counted(request: httpx.Request) -> httpx.Response:
        if threading.current_thread().name == "comfyui-health":  # not start()'s check, nor the status socket's
            checks.release()
        return httpx.Response(200, json={"queue_running": [], "queue_pending": []})

    a.routes[("GET", "/queue")] = counted
    pool.health_interval = 0.001
    pool.start()
    assert all(checks.acquire(timeout=5) for _ in range(3))  # the background thread checks, again and again
    pool.close()


def test_a_job_that_was_running_fails_clearly_or_is_retried_when_asked(tmp_path: Path, object_info: dict,
                                                                       catalog: Catalog,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SocketHub, "reconnect_delay", 0.0)
    for retry in (False, True):
        pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b")
        a.drop_after = 4  # the socket dies after execution_start, and the server with it
        dying(a)
        a.refuse_sockets = False
        a.refuse_reconnect = True
        job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()}, retry=retry)
        if retry:
            assert job.result(5).server == "http://b.test"
            assert pool.durations.typical("invert") is not None
        else:
            with pytest.raises(ServerError) as caught:
                job.result(5)
            assert str(caught.value) == ("ComfyUI at http://a.test stopped responding while running this job; "
                                         "nothing was saved. Run it again.")
            assert b.prompt_id is None and pool.durations.typical("invert") is None
        assert [s.in_flight for s in pool.statuses()] == [0, 0]


def test_a_running_job_is_retried_only_once(tmp_path: Path, object_info: dict, catalog: Catalog,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SocketHub, "reconnect_delay", 0.0)
    pool, (a, b, c) = replayed_pool(tmp_path, object_info, "a", "b", "c")
    for replay in (a, b):  # each dies after execution_start
        replay.drop_after = 4
        dying(replay)
        replay.refuse_sockets, replay.refuse_reconnect = False, True
    job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()}, retry=True)
    events = list(job.events())
    with pytest.raises(ServerError) as caught:
        job.result(5)
    assert str(caught.value) == ("ComfyUI at http://b.test stopped responding while running this job; "
                                 "nothing was saved. Run it again.")
    moved = Resubmitted("http://b.test", "ComfyUI at http://a.test stopped answering; your job was sent to "
                                         "http://b.test")
    assert events == [Started(), moved, Started()] and c.prompt_id is None  # started on a, then on b


def test_missing_requirements_name_absent_nodes_and_model_files(catalog: Catalog) -> None:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "absent.safetensors"}},
        "2": {"class_type": "NoSuchNode", "inputs": {"x": "absent.safetensors"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "not-on-the-server.png"}},  # uploads are not listed
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "5": {"class_type": "ImageBlur", "inputs": {"blur_radius": 3, "image": ["3", 0]}},
        "6": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "absent.safetensors"}},
        "7": {"class_type": "CheckpointLoaderSimple"},
    }
    assert missing_requirements(prompt, catalog) == ["absent.safetensors", "node NoSuchNode"]
    assert missing_requirements({"4": prompt["4"]}, catalog) == []


def test_a_job_is_not_sent_where_its_model_is_missing(tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    lacking = json.loads(json.dumps(object_info))
    lacking["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["other.safetensors"]
    pool, (a, _) = replayed_pool(tmp_path, object_info, "a", "b")
    a.routes[("GET", "/object_info")] = lambda request: httpx.Response(200, json=lacking)
    pool._servers[0].catalog = None
    pool.check_all()
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    assert pool.pick(txt2img, {**FAST, "checkpoint": "other.safetensors"}).url == "http://a.test"
    pool._servers[1].healthy = False
    assert pool.pick(txt2img, FAST).url == "http://a.test"  # no able server: ComfyUI's own check will say why


def queue_of(replay: Replay, running: list[str], pending: list[str] = ()) -> None:
    """Make ``replay``'s ``GET /queue`` list these prompt ids."""
    replay.routes[("GET", "/queue")] = lambda request: httpx.Response(200, json={
        "queue_running": [[1, p, {}, {}, []] for p in running],
        "queue_pending": [[2 + n, p, {}, {}, []] for n, p in enumerate(pending)]})


def test_the_estimated_wait_adds_what_is_left_of_every_prompt_on_the_queue(
        tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    clock, durations = Clock(), Durations()
    pool, (a,) = replayed_pool(tmp_path, object_info, "a", clock=clock, durations=durations)
    queue_of(a, running=["x"], pending=["y", "z"])
    pool.check_all()  # x has been running since now
    server = pool._servers[0]
    assert pool.statuses()[0].queue_remaining == 3 and pool._estimated_wait(server) == 3 * 5.0
    durations.record("txt2img", 10.0)
    pool.pick(txt2img, FAST, reserve="y")  # y is ours, waiting: all of its typical 10 s
    assert pool._estimated_wait(server) == 5.0 + 10.0 + 5.0
    clock.now += 3.0  # someone else's prompt that has run 3 s counts the default 5 s ...
    assert pool._estimated_wait(server) == 5.0 + 10.0 + 5.0
    clock.now += 27.0  # ... and once it has run 30 s, as long again
    assert pool._estimated_wait(server) == 30.0 + 10.0 + 5.0


def test_one_of_our_jobs_counts_from_when_it_was_seen_running(tmp_path: Path, object_info: dict,
                                                              txt2img: TabSpec) -> None:
    clock, durations = Clock(), Durations()
    pool, (a,) = replayed_pool(tmp_path, object_info, "a", clock=clock, durations=durations)
    durations.record("txt2img", 10.0)
    pool.pick(txt2img, FAST, reserve="ours")
    server = pool._servers[0]
    clock.now += 4.0  # sent 4 s ago, not on the last read: counted from when it was sent
    assert pool._estimated_wait(server) == 6.0
    queue_of(a, running=["ours"])
    pool.check_all()  # it waited 4 s, and runs from now
    clock.now += 3.0
    assert pool._estimated_wait(server) == 7.0
    clock.now += 50.0  # far past its typical time: still a tenth of it
    assert pool._estimated_wait(server) == 1.0


def test_without_a_status_socket_a_pick_reads_the_queue_once_the_last_read_is_old(
        tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    clock = Clock()
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b", clock=clock)
    queue_of(a, running=["someone else's"])  # it started just after the last health check
    assert pool.pick(txt2img, FAST).url == "http://a.test"  # read 0 s ago: trusted
    clock.now += 0.6  # older than queue_max_age (0.5 s)
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    reads = [r.url.path for r in a.requests].count("/queue")
    assert pool.pick(txt2img, FAST).url == "http://b.test" and [r.url.path for r in a.requests].count(
        "/queue") == reads  # read again only once that read is old
    a.routes[("GET", "/queue")] = lambda request: httpx.Response(500)
    clock.now += 0.6  # one bad answer: a is still used, on what was last read of it (it is busy)
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    queue_of(b, running=["another"], pending=["and another"])
    clock.now += 0.6
    assert pool.pick(txt2img, FAST).url == "http://a.test" and pool.statuses()[0].healthy
    a.down = True
    clock.now += 0.6  # a cannot be reached: it is down
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    assert [(s.healthy, s.error[:30]) for s in pool.statuses()] == [
        (False, "Cannot reach ComfyUI at http:/"), (True, "")]


def test_a_pool_of_one_server_does_not_read_its_queue_to_pick(tmp_path: Path, object_info: dict,
                                                              txt2img: TabSpec) -> None:
    clock = Clock()
    pool, (a,) = replayed_pool(tmp_path, object_info, "a", clock=clock)
    reads = [r.url.path for r in a.requests].count("/queue")
    clock.now += 60.0
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    assert [r.url.path for r in a.requests].count("/queue") == reads  # nothing to compare it with


STATUS = json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}})


def test_with_a_status_socket_the_queue_is_read_on_each_change_and_only_then(
        tmp_path: Path, object_info: dict, txt2img: TabSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b", clock=clock)
    pool.start()  # opens a status socket to each server; it says "status" on connect
    watch = pool._servers[0].watch
    wait_for(lambda: watch.view.changes == 2)  # read after the socket opened and after that status
    reads = [r.url.path for r in a.requests].count("/queue")
    queue_of(a, running=["x"])
    clock.now += 60.0
    assert pool.pick(txt2img, FAST).url == "http://a.test"  # no status since: nothing changed, nothing read
    assert [r.url.path for r in a.requests].count("/queue") == reads
    a.sockets[0].frames.put(STATUS)  # the server says its queue changed
    wait_for(lambda: watch.view.changes == 3)
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    assert [r.url.path for r in a.requests].count("/queue") == reads + 1
    a.refuse_reconnect = True
    a.sockets[0].frames.put(None)  # the socket drops and cannot be reopened: picks read by age again ...
    wait_for(lambda: not watch.listening)
    queue_of(a, running=[])
    clock.now += 0.6
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    a.refuse_reconnect = False
    monkeypatch.setattr(SocketHub, "reopen_interval", 0.0)
    pool.check_all()  # ... until the next health check opens it again
    assert len(a.sockets) == 2 and watch.listening
    a.sockets[1].frames.put(STATUS)  # the reopened socket tells the watch of changes too
    wait_for(lambda: watch.view.changes == 6)  # the drop, the reopening and its status, this status
    pool.close()
    assert all(s.closed for s in a.sockets + b.sockets)


def test_a_job_no_other_server_could_take_still_counts_where_it_waits(tmp_path: Path, object_info: dict,
                                                                      catalog: Catalog) -> None:
    pool, (a,) = replayed_pool(tmp_path, object_info, "a")
    dying(a)
    failed_over = threading.Event()
    failover = pool._failover

    def observed(job: Job) -> object:
        try:
            return failover(job)
        finally:
            failed_over.set()

    pool._failover = observed  # type: ignore[method-assign]
    job = pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    assert failed_over.wait(5)  # a stopped answering and the pool had no other server: the job waits for a
    a.routes[("GET", "/queue")] = lambda request: httpx.Response(200, json={
        "queue_running": [], "queue_pending": [[1, job.prompt_id, {}, {}, []]]})
    a.routes[("GET", "/history/{id}")] = lambda request: httpx.Response(200, json={})
    pool.check_all()  # a answers again, with the job still waiting in its queue
    assert [(s.healthy, s.in_flight) for s in pool.statuses()] == [(True, 1)]
    job.cancel()
    list(job.events())
    assert [s.in_flight for s in pool.statuses()] == [0]


class Remote:
    """A stand-in for a remote backend of another helper's kinds: the pool reads its ``kind`` and
    ``url`` and checks it as it checks a ComfyUI server (``queue_state``, ``catalog``)."""

    def __init__(self, kind: str) -> None:
        self.kind, self.url = kind, f"https://{kind}.test"
        self.down = False

    def queue_state(self) -> dict[str, list]:
        if self.down:
            raise ServerUnavailable(self.url, "connection refused")
        return {"queue_running": [], "queue_pending": []}

    def catalog(self) -> Catalog:
        return Catalog({})  # it lists nothing, and is still taken to have every node

    def close(self) -> None:
        pass


@pytest.mark.parametrize("kind", ["v2", "runninghub", "viewcomfy"])
def test_a_remote_backend_is_used_only_when_no_local_server_can_take_the_job(
        kind: str, tmp_path: Path, object_info: dict, txt2img: TabSpec) -> None:
    clock, cloud = Clock(), Remote(kind)
    pool, (a,) = replayed_pool(tmp_path, object_info, "a", clock=clock, remote=(cloud,))
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    queue_of(a, running=["someone else's"])
    pool.check_all()
    clock.now += 1000.0  # a long wait on a, and no cloud_after: a still
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    assert pool.pick(txt2img, {**FAST, "checkpoint": "only-in-the-cloud.safetensors"}).url == cloud.url
    a.down = True
    clock.now += 0.6  # the pick reads a's queue again, and finds it down
    assert pool.pick(txt2img, FAST).url == cloud.url
    cloud.down = True
    pool.check_all()
    with pytest.raises(ServerError) as caught:
        pool.pick(txt2img, FAST)
    assert str(caught.value).startswith(f"Cannot reach ComfyUI at http://a.test, {cloud.url} (no server answers)")


def test_with_cloud_after_a_long_local_wait_sends_jobs_to_the_cloud(tmp_path: Path, object_info: dict,
                                                                   txt2img: TabSpec) -> None:
    clock, cloud = Clock(), Remote("v2")
    pool, (a, b) = replayed_pool(tmp_path, object_info, "a", "b", clock=clock, remote=(cloud,), cloud_after=30.0)
    for replay in (a, b):
        queue_of(replay, running=[f"someone else's on {replay}"])
    pool.check_all()
    clock.now += 20.0  # both local servers have 20 s to go: under the limit
    assert pool.pick(txt2img, FAST).url == "http://a.test"
    queue_of(b, running=[])
    clock.now += 20.0  # a: 40 s, b idle
    assert pool.pick(txt2img, FAST).url == "http://b.test"
    queue_of(b, running=["another"])
    pool.check_all()
    clock.now += 31.0  # a: 71 s, b: 31 s: every local wait is over the limit
    assert pool.pick(txt2img, FAST, reserve="burst").url == cloud.url
    assert [s.in_flight for s in pool.statuses()] == [0, 0, 1]
