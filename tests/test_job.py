"""Following one prompt: other prompts on the same socket, queue positions, fallbacks, cancelling.

Every server here is a replayed ComfyUI 0.3.64 transcript (``tests/replay.py``); nothing sleeps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfyui_gradio.comfy.events import (Cached, NodeStarted, OutputReady, Preview, Progress, Queued, Resubmitted,
                                         Started, parse_binary)
from comfyui_gradio.comfy.hub import SocketHub
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.errors import ExecutionFailed, JobCancelled, ServerError, ServerUnavailable
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow
from tests.paths import TRANSCRIPTS, WORKFLOWS
from tests.replay import Replay, binary_frame, client_for, load_transcript, png_bytes


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SocketHub, "reconnect_delay", 0.0)
    monkeypatch.setattr(Job, "history_delays", (0.0, 0.0, 0.0))
    monkeypatch.setattr(Job, "server_wait", 0.0)


@pytest.fixture()
def invert(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json", catalog)


def invert_events() -> list[Any]:
    """The job events of the recorded b1 run (Load Image -> Invert Image -> Save Image), in order."""
    return [Started(), NodeStarted("1", "Load Image"), NodeStarted("2", "Invert Image"),
            NodeStarted("3", "Save Image"),
            OutputReady("3", "Save Image", {"images": [{"filename": "invert_00001_.png", "subfolder": "probe",
                                                        "type": "output"}]})]


def foreign_frames() -> list[str | bytes]:
    """Another client's prompts on our socket: a whole run (h2), an interrupt (d) and type-4 previews (g2)."""
    h2 = load_transcript("h2_submitter_with_client_id")
    other = h2["ids"]["with_client_id"]
    frames: list[str | bytes] = [json.dumps(e["message"]) for e in h2["events"] if e["kind"] == "ws_text"
                                 and e["message"]["data"].get("prompt_id") == other]
    interrupted = next(e["message"] for e in load_transcript("d_interrupt_and_queue")["events"]
                       if e["kind"] == "ws_text" and e["message"]["type"] == "execution_interrupted")
    frames.insert(3, json.dumps(interrupted))
    frames.insert(5, json.dumps({"type": "executing", "data": {"node": None}}))  # whose? nobody can tell
    g2 = load_transcript("g2_txt2img_tiny_sd15_metadata_previews")
    previews = [binary_frame(e) for e in g2["events"] if e["kind"] == "ws_binary"]
    return [frame for pair in zip(frames, previews + [None] * len(frames)) for frame in pair if frame is not None]


def queue_body(seq: int, mine: str, prompt_id: str) -> dict[str, Any]:
    """The /queue answer recorded at ``seq`` in d_interrupt_and_queue, with prompt ``mine`` made ours."""
    event = next(e for e in load_transcript("d_interrupt_and_queue")["events"] if e["seq"] == seq)
    return json.loads(json.dumps(event["response_json"]).replace(mine, prompt_id))


D = "3b68d6dc-253a-4597-85ac-e5e0823bc158"  # the last of three pending prompts in d_interrupt_and_queue


# ---- other prompts on the same socket --------------------------------------------------------------

def test_the_frames_of_other_prompts_are_ignored(tmp_path: Path, invert: TabSpec) -> None:
    foreign = foreign_frames()
    assert sum(isinstance(f, bytes) for f in foreign) == 4 and sum('"node": null' in f for f in foreign
                                                                     if isinstance(f, str)) == 2
    replay = Replay(load_transcript("b1_load_invert_save"), foreign=foreign)
    job = client_for(replay, tmp_path).submit(invert, {"image": png_bytes()})
    events = list(job.events())
    assert events == invert_events()  # no foreign Preview, NodeStarted, Progress; not ended by its null
    assert job.result(5).images[0].path.read_bytes() == replay.view_bytes


def test_previews_of_this_prompt_and_legacy_previews_are_shown(tmp_path: Path, catalog: Catalog) -> None:
    g2 = load_transcript("g2_txt2img_tiny_sd15_metadata_previews")
    legacy = (TRANSCRIPTS / "blobs/g1_txt2img_tiny_sd15_legacy_previews_bin0.bin").read_bytes()
    replay = Replay(g2, foreign=[legacy])  # a type-1 preview carries no prompt id: it is this socket's
    job = client_for(replay, tmp_path).submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    previews = [e for e in job.events() if isinstance(e, Preview)]
    assert [p.node_id for p in previews] == [None, "3", "3", "3", "3"]  # g2 recorded four


# ---- queue positions ------------------------------------------------------------------------------

def test_a_waiting_job_reports_how_many_prompts_are_ahead(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    polls: list[int] = []

    def queue(request: httpx.Request) -> httpx.Response:  # three polls see it waiting, then it has run
        polls.append(1)
        if len(polls) > 3:
            replay.finished.set()
            return httpx.Response(200, json={"queue_running": [], "queue_pending": []})
        return httpx.Response(200, json=queue_body(19, D, replay.prompt_id))

    replay.routes[("GET", "/queue")] = queue
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    assert list(job.events()) == [Queued(3)]  # A running, B and C waiting with lower numbers; told once
    assert job.result(5).images


def test_polling_reports_the_queue_then_the_start(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    polls: list[int] = []

    def queue(request: httpx.Request) -> httpx.Response:
        polls.append(1)
        if len(polls) <= 2:
            return httpx.Response(200, json=queue_body(24, D, replay.prompt_id))  # C deleted: A, B ahead
        replay.finished.set()
        return httpx.Response(200, json=queue_body(31, "9c2a6ea6-d7d2-4c65-b05c-1d2f10ffe714", replay.prompt_id))

    replay.routes[("GET", "/queue")] = queue
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    assert list(job.events()) == [Queued(2), Started()]  # the same place is told once
    result = job.result(5)
    assert [o.path.name for o in result.outputs] == ["3_invert_00001_.png"] and result.queued_for > 0
    assert (result.seeds, result.values, result.prompt) == (job.prepared.seeds, job.prepared.values,
                                                            job.prepared.prompt)
    assert 0 < result.queued_for < result.duration < 60 and result.server == "http://comfy.test"


# ---- falling back to polling ----------------------------------------------------------------------

def test_a_socket_refused_from_the_start_falls_back_to_polling(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=2)
    replay.refuse_sockets = True
    job = client_for(replay, tmp_path, poll_interval=0.001).submit(invert, {"image": png_bytes()})
    result = job.result(5)
    assert replay.sockets == [] and result.images[0].path.read_bytes() == replay.view_bytes
    assert [r.url.path for r in replay.requests if r.method == "GET"][-3:] == [
        f"/history/{job.prompt_id}", f"/history/{job.prompt_id}", "/view"]
    assert sum(r.url.path == "/queue" for r in replay.requests) == 2  # the run ended on the second poll


def test_history_is_read_only_after_the_run_has_finished(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    job = client_for(replay, tmp_path).submit(invert, {"image": png_bytes()})
    result = job.result(5)
    asked = [r for r in replay.requests if r.url.path == f"/history/{job.prompt_id}"]
    assert len(asked) == 1 and result.images[0].output_name == "inverted"  # one read, after executing(null)


@pytest.mark.parametrize("failed_looks", [0, 2])
def test_a_socket_that_goes_silent_is_not_waited_on_forever(failed_looks: int, tmp_path: Path, invert: TabSpec,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Job, "socket_check_interval", 0.01, raising=False)  # (absent before the watchdog)
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=3)
    history = replay._history
    failures = iter(range(failed_looks))

    def flaky(request: httpx.Request) -> httpx.Response:  # the first looks fail: the socket is still open
        if next(failures, None) is not None:
            raise httpx.ConnectError("connection refused", request=request)
        return history(request.url.path.rsplit("/", 1)[-1])

    replay.routes[("GET", "/history/{id}")] = flaky

    def post(request: httpx.Request) -> httpx.Response:  # accepted, but nothing ever comes on the socket
        replay.prompt_id = json.loads(request.content)["prompt_id"]
        replay._undelivered = replay.run_frames()
        return httpx.Response(200, json={"prompt_id": replay.prompt_id, "number": 1, "node_errors": {}})

    replay.routes[("POST", "/prompt")] = post
    client = client_for(replay, tmp_path)
    job = client.submit(invert, {"image": png_bytes()}, timeout=5)
    assert job.result(5).images[0].path.read_bytes() == replay.view_bytes
    assert len(replay.sockets) == 1 and client.socket_hub().prompt_ids == frozenset()  # the job left it
    assert not replay.sockets[0].closed  # the server's socket outlives its jobs ...
    client.close()
    assert replay.sockets[0].closed  # ... and ends with the client


# ---- cancelling -----------------------------------------------------------------------------------

def test_cancelling_one_of_two_jobs_on_a_server_stops_only_that_one(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    pending: list[str] = []

    def post(request: httpx.Request) -> httpx.Response:
        pending.append(json.loads(request.content)["prompt_id"])
        replay.prompt_id = pending[-1]
        return httpx.Response(200, json={"prompt_id": pending[-1], "number": len(pending), "node_errors": {}})

    def delete(request: httpx.Request) -> httpx.Response:
        for prompt_id in json.loads(request.content)["delete"]:
            pending.remove(prompt_id)
        replay.finished.set()  # with the first one gone, the second runs and finishes
        return httpx.Response(200)

    def queue(request: httpx.Request) -> httpx.Response:  # the second one is off the queue once it finished
        return httpx.Response(200, json={"queue_running": [], "queue_pending": [
            [n, p, {}, {"client_id": "x"}, ["3"]] for n, p in enumerate(pending) if not replay.finished.is_set()]})

    replay.routes |= {("POST", "/prompt"): post, ("POST", "/queue"): delete, ("GET", "/queue"): queue}
    client = client_for(replay, tmp_path, tracker="http", poll_interval=0.001)
    first, second = (client.submit(invert, {"image": png_bytes()}) for _ in range(2))
    assert next(e for e in first.events() if e is not None) == Queued(0)
    first.cancel()
    with pytest.raises(JobCancelled) as caught:
        first.result(5)
    assert str(caught.value) == "Cancelled before it started."
    assert second.result(5).images[0].path.read_bytes() == replay.view_bytes
    sent = [(r.url.path, json.loads(r.content)) for r in replay.requests
            if r.method == "POST" and r.url.path in ("/queue", "/interrupt")]
    assert sent == [("/queue", {"delete": [first.prompt_id]}), ("/interrupt", {"prompt_id": first.prompt_id})]


def test_an_interrupt_from_elsewhere_says_it_came_from_the_server(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("g3_txt2img_interrupt_mid_sampling"))
    job = client_for(replay, tmp_path).submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled on the server at KSampler; nothing was saved from this run."


def test_cancelling_a_running_job_interrupts_it_and_says_it_was_you(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("g3_txt2img_interrupt_mid_sampling"), running_polls=10**6)

    def interrupt(request: httpx.Request) -> httpx.Response:
        replay.finished.set()  # the recorded history entry ends with execution_interrupted
        return httpx.Response(200)

    replay.routes[("POST", "/interrupt")] = interrupt
    client = client_for(replay, tmp_path, tracker="http", poll_interval=0.001)
    job = client.submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    assert next(e for e in job.events() if e is not None) == Started()
    job.cancel()
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled by you at KSampler; nothing was saved from this run."
    job.cancel()  # a finished job: nothing more is sent
    assert [r.url.path for r in replay.requests if r.method == "POST"].count("/interrupt") == 1


def forgetful(replay: Replay, forget: int) -> list[str]:
    """Make ``replay``'s server lose each of the first ``forget`` prompts it accepts (a restart right
    after the POST: /queue shows only other prompts); later ones run. Returns the posted prompt ids."""
    posted: list[str] = []
    accept, queue = replay.post_prompt, replay._queue
    others = queue_body(24, "no prompt of ours", "")  # A running, B and D waiting: none of them is ours

    def post(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content)["prompt_id"])
        return accept(request)

    replay.routes[("POST", "/prompt")] = post
    replay.routes[("GET", "/queue")] = lambda request: (httpx.Response(200, json=others) if len(posted) <= forget
                                                        else queue())
    return posted


def test_a_waiting_prompt_the_server_lost_is_sent_again(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    posted = forgetful(replay, 1)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    events = list(job.events())
    assert job.result(5).images[0].path.read_bytes() == replay.view_bytes
    assert posted == [job.prompt_id, job.prompt_id]  # the same id: the restarted server has no trace of it
    reason = "ComfyUI restarted and lost your job; it was sent again"
    assert events == [Resubmitted("http://comfy.test", reason), Started()]
    assert [r.url.path for r in replay.requests].count("/upload/image") == 1  # the upload is known: not sent twice


def restarting(replay: Replay, down_for: int) -> list[str]:
    """Make ``replay``'s server restart right after it accepts the first prompt: ``down_for`` HTTP
    requests are refused, then it answers without a trace of that prompt. Returns the posted ids."""
    posted = forgetful(replay, 1)
    post = replay.routes[("POST", "/prompt")]

    def post_then_restart(request: httpx.Request) -> httpx.Response:
        answer = post(request)
        if len(posted) == 1:
            replay.down_requests = down_for
        return answer

    replay.routes[("POST", "/prompt")] = post_then_restart
    return posted


def test_a_waiting_prompt_waits_for_its_server_to_come_back(tmp_path: Path, invert: TabSpec,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Job, "server_wait", 10.0)
    replay = Replay(load_transcript("b1_load_invert_save"))
    posted = restarting(replay, 4)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    events = list(job.events())
    assert job.result(5).images and posted == [job.prompt_id] * 2 and replay.refused == 4
    assert events == [Resubmitted("http://comfy.test", "ComfyUI restarted and lost your job; it was sent again"),
                      Started()]


def test_a_server_that_does_not_come_back_in_time_is_given_up(tmp_path: Path, invert: TabSpec,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Job, "server_wait", 0.05)
    replay = Replay(load_transcript("b1_load_invert_save"))
    posted = restarting(replay, 10**9)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    with pytest.raises(ServerUnavailable) as caught:
        job.result(5)
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://comfy.test (connection refused).")
    assert posted == [job.prompt_id] and replay.refused > 3  # it kept asking while it waited


def test_a_job_cancelled_while_its_server_is_down_is_not_sent_again(tmp_path: Path, invert: TabSpec,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Job, "server_wait", 10.0)
    replay = Replay(load_transcript("b1_load_invert_save"))
    posted = restarting(replay, 10**9)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    while replay.refused < 4:  # the first look at its place, the look that failed, then two while waiting
        time.sleep(0.001)
    job.cancel()  # the server cannot be told; the job still ends at once
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled before it started." and posted == [job.prompt_id]  # sent once only


def test_a_prompt_lost_again_and_again_is_given_up(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    posted = forgetful(replay, 10)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    with pytest.raises(ServerError) as caught:
        job.result(5)
    assert str(caught.value) == "ComfyUI lost this job 3 times; it was not sent again. Run it again later."
    assert len(posted) == 1 + 3  # each time: a look at its place, then three looks that miss it
    reads = sum(r.url.path == "/queue" for r in replay.requests)  # the place may be the first look's read too
    assert len(posted) * 3 <= reads <= len(posted) * (1 + 3)


def test_a_running_prompt_the_server_lost_fails_with_the_reason(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=10**6)
    answers = iter(["first look", "running", "gone", "gone", "gone"])

    def queue(request: httpx.Request) -> httpx.Response:
        running = [[1, replay.prompt_id, {}, {}, []]] if next(answers) == "running" else []
        return httpx.Response(200, json={"queue_running": running, "queue_pending": []})

    replay.routes[("GET", "/queue")] = queue
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    with pytest.raises(ServerError) as caught:
        job.result(5)
    assert str(caught.value) == ("ComfyUI at http://comfy.test lost this job while running it (it restarted, or "
                                 "the run was removed from its queue); nothing was saved. Run it again.")
    assert sum(r.url.path == "/prompt" for r in replay.requests) == 1


def test_a_cancelled_prompt_is_never_sent_again(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=10**6)
    posted = forgetful(replay, 0)
    replay.routes[("POST", "/interrupt")] = lambda request: (replay.routes.update(
        {("GET", "/queue"): lambda r: httpx.Response(200, json={"queue_running": [], "queue_pending": []})})
        or httpx.Response(200))  # interrupted, and then the server restarts: no history of it either
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    assert next(e for e in job.events() if e is not None) == Started()
    job.cancel()
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled by you; nothing was saved from this run."
    assert posted == [job.prompt_id]


def test_a_prompt_missing_twice_in_a_row_is_still_followed(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    answers = ["first look", "gone", "gone", "running", "gone", "gone", "running"]

    def queue(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if not answers:
            replay.finished.set()
        running = [[1, replay.prompt_id, {}, {}, []]] if answer == "running" else []
        return httpx.Response(200, json={"queue_running": running, "queue_pending": []})

    replay.routes[("GET", "/queue")] = queue
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    assert job.result(5).images and answers == []  # seen running again: the count of misses starts over


def test_an_error_report_without_details_still_fails_clearly(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    entry = replay.recorded_http("GET", f"/history/{replay.recorded_id}")["response_json"][replay.recorded_id]
    entry["status"] = {"status_str": "error", "completed": False, "messages": [["execution_error", {}]]}
    with pytest.raises(ExecutionFailed) as caught:
        client_for(replay, tmp_path).run(invert, {"image": png_bytes()})
    assert (caught.value.node_id, str(caught.value)) == ("?", "node ? (node ?) failed: ")
    entry["status"]["messages"] = [["execution_interrupted", {}]]
    with pytest.raises(JobCancelled) as caught:
        client_for(replay, tmp_path).run(invert, {"image": png_bytes()})
    assert str(caught.value) == "Cancelled on the server; nothing was saved from this run."


def test_done_callbacks_run_once_each_even_if_one_fails(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=10**6)  # runs until told
    client = client_for(replay, tmp_path, tracker="http", poll_interval=0.001)
    job = client.submit(invert, {"image": png_bytes()})
    seen: list[str] = []

    def broken(job: Job) -> None:
        raise RuntimeError("a listener's bug")

    job.add_done_callback(broken)
    job.add_done_callback(lambda j: seen.append(f"first {j.done}"))
    replay.finished.set()
    list(job.events())  # they end after the callbacks have run
    job.add_done_callback(lambda j: seen.append(f"late {j.error}"))
    assert seen == ["first True", "late None"]


def test_an_unknown_final_status_is_a_failure_of_the_workflow(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    entry = replay.recorded_http("GET", f"/history/{replay.recorded_id}")["response_json"][replay.recorded_id]
    entry["status"] = {"status_str": "weird", "completed": False, "messages": [["execution_start", {}]]}
    with pytest.raises(ExecutionFailed) as caught:
        client_for(replay, tmp_path).run(invert, {"image": png_bytes()})
    assert str(caught.value) == "the workflow (node ?) failed: ComfyUI reported status 'weird'"
    entry["status"] = {"completed": True}  # an older server without status_str
    assert client_for(replay, tmp_path).run(invert, {"image": png_bytes()}).status == "success"


def test_a_waiting_consumer_is_woken_while_nothing_happens(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"), running_polls=10**6)
    job = client_for(replay, tmp_path, tracker="http", poll_interval=0.001).submit(invert, {"image": png_bytes()})
    events = job.events(idle=0.001)
    assert next(e for e in events if e is not None) == Started()
    assert next(events) is None  # running, with nothing to report
    replay.finished.set()
    assert [e for e in events if e is not None] == [] and job.result(5).images
    assert list(job.events()) == []  # a second look ends at once


def test_a_lost_server_without_a_pool_says_it_cannot_be_reached(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    replay.refuse_sockets = True
    accept = replay.post_prompt

    def post(request: httpx.Request) -> httpx.Response:
        answer = accept(request)
        replay.down = True
        return answer

    replay.routes[("POST", "/prompt")] = post
    job = client_for(replay, tmp_path, poll_interval=0.001).submit(invert, {"image": png_bytes()})
    with pytest.raises(ServerUnavailable) as caught:
        job.result(5)
    assert str(caught.value).startswith("Cannot reach ComfyUI at http://comfy.test (connection refused).")


def test_text_frames_cached_nodes_and_progress_become_events(tmp_path: Path) -> None:
    transcript = load_transcript("b5_getimagesize_progress_text")
    workflow = Workflow("b5", tmp_path / "b5.json", transcript["workflow"])
    mine = "0b7f6c1e-3a52-4c1d-9e0f-5d2b8a7c6e41"
    cached = json.dumps({"type": "execution_cached", "data": {"nodes": ["1", 2], "prompt_id": mine}})
    progress = json.dumps({"type": "progress", "data": {"value": 2, "max": 5, "prompt_id": mine, "node": "3"}})
    replay = Replay(transcript, foreign=[cached, progress])
    job = client_for(replay, tmp_path).submit(tab_from_schema(workflow, {}, None), prompt_id=mine)
    events = list(job.events())
    assert events[:3] == [Cached(("1", "2")), Progress("3", "EmptyImage", 2, 5), Started()]  # as they came
    assert OutputReady("2", "GetImageSize", {"text": ["width: 40, height: 24\n batch size: 3"]}) in events
    assert Cached(()) not in events  # the recorded execution_cached lists no nodes


def test_previews_carry_the_image_and_its_node(tmp_path: Path, catalog: Catalog) -> None:
    g2 = load_transcript("g2_txt2img_tiny_sd15_metadata_previews")
    frames = [parse_binary(binary_frame(e)) for e in g2["events"] if e["kind"] == "ws_binary"]
    job = client_for(Replay(g2), tmp_path).submit(load_tab(WORKFLOWS / "txt2img.json", catalog), {"steps": 4})
    previews = [e for e in job.events() if isinstance(e, Preview)]
    assert previews == [Preview(f.image, "image/jpeg", "3") for f in frames]


def test_cancelling_a_job_that_waits_on_the_socket(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    replay.routes[("POST", "/prompt")] = lambda request: httpx.Response(200, json={
        "prompt_id": json.loads(request.content)["prompt_id"], "number": 1, "node_errors": {}})  # never runs
    client = client_for(replay, tmp_path)
    job = client.submit(invert, {"image": png_bytes()})
    job.cancel()
    with pytest.raises(JobCancelled) as caught:
        job.result(5)
    assert str(caught.value) == "Cancelled before it started."
    assert client.socket_hub().prompt_ids == frozenset()  # the job left the server's socket


def test_the_socket_url_follows_the_server_url(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    client = client_for(replay, tmp_path, "https://comfy.test", timeout=7.0)
    job = client.submit(invert, {"image": png_bytes()})
    job.result(5)
    assert (replay.sockets[0].url, replay.sockets[0].timeout) == (
        f"wss://comfy.test/ws?clientId={job.client_id}", 7.0)


# ---- odd answers ------------------------------------------------------------------------------------

def history_outputs(replay: Replay, outputs: dict[str, Any]) -> None:
    entry = replay.recorded_http("GET", f"/history/{replay.recorded_id}")["response_json"][replay.recorded_id]
    entry["outputs"] = outputs


def test_outputs_are_saved_under_safe_names_whatever_the_server_calls_them(tmp_path: Path, invert: TabSpec) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    names = ["", "..", "x" * 300 + ".png", "../../" + "y" * 300]
    history_outputs(replay, {"3": {"images": [{"filename": n, "subfolder": "", "type": "output"} for n in names]}})
    result = client_for(replay, tmp_path).run(invert, {"image": png_bytes()})
    assert [o.path.name for o in result.images] == ["3_output.png", "3_1_output.png", f"3_{'x' * 100}.png",
                                                    f"3_{'y' * 100}.png"]
    assert all(o.path.parent == tmp_path / result.prompt_id and o.path.read_bytes() == replay.view_bytes
               for o in result.images) and result.warnings == []
    asked = [r.url.params["filename"] for r in replay.requests if r.url.path == "/view"]
    assert asked == names  # the server's own names are what it is asked for


def test_a_run_that_produced_nothing_says_so(tmp_path: Path, invert: TabSpec) -> None:
    import gradio as gr

    from comfyui_gradio.comfy.results import NO_OUTPUT
    from comfyui_gradio.web.stream import Outputs, RunStream

    replay = Replay(load_transcript("b1_load_invert_save"))
    history_outputs(replay, {})
    result = client_for(replay, tmp_path).run(invert, {"image": png_bytes()})
    assert result.outputs == [] and result.warnings == [NO_OUTPUT]
    assert NO_OUTPUT == ("The workflow finished but produced no output. Check that it has an output node (Save "
                         "Image, Preview Image, ...) connected to the rest, and that the outputs its schema names "
                         "exist.")
    outputs = Outputs(gr.Markdown(), gr.Gallery(), gr.JSON())
    status = RunStream(outputs, lambda job: None, previews=False).final([result])[outputs.status]
    assert status.startswith(f"⚠️ {NO_OUTPUT} (") and "Done" not in status
