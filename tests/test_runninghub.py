"""The RunningHub wire client against its double (tests/fake_runninghub.py)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfyui_gradio.comfy.runninghub import NO_KEY, RunningHubClient, TaskOutput, node_info_list
from comfyui_gradio.errors import (ConfigError, ExecutionFailed, InputError, JobCancelled, JobTimeout, PromptRejected,
                                   ProtocolError, ServerError, ServiceRefused)
from comfyui_gradio.comfy.runninghub_backend import NO_WORKFLOW_ID, RunningHubBackend
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.web.app import make_backend
from comfyui_gradio.web.config import load_settings
from tests.fake_runninghub import KEY, URL, FakeRunningHub
from tests.paths import WORKFLOWS

PROMPT = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
          "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "model": ["4", 0]}},
          "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "rh", "images": ["8", 0]}}}


@pytest.fixture()
def hub() -> FakeRunningHub:
    return FakeRunningHub(workflows={"1987654321": PROMPT})


@pytest.fixture()
def rh(hub: FakeRunningHub) -> RunningHubClient:
    return RunningHubClient(KEY, URL, http=hub.client(), sleep=lambda s: None)


def test_the_workflow_of_an_id_is_read_from_its_json_string(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    assert rh.workflow_json("1987654321") == PROMPT
    assert hub.requests == [("/api/openapi/getJsonApiFormat", {"apiKey": KEY, "workflowId": "1987654321"})]


def test_a_task_is_created_with_its_node_info_list_then_polled_to_its_outputs(rh: RunningHubClient,
                                                                              hub: FakeRunningHub) -> None:
    changed = json.loads(json.dumps(PROMPT))
    changed["6"]["inputs"]["text"] = "a dog"
    changed["3"]["inputs"]["seed"] = 7
    infos = node_info_list(PROMPT, changed)
    assert infos == [{"nodeId": "6", "fieldName": "text", "fieldValue": "a dog"},
                     {"nodeId": "3", "fieldName": "seed", "fieldValue": 7}]
    task = rh.submit("1987654321", infos)
    assert hub.requests[-1] == ("/task/openapi/create", {"apiKey": KEY, "workflowId": "1987654321",
                                                        "nodeInfoList": infos})
    assert rh.outputs(task) is None  # 804: still queued
    outputs = rh.wait(task, timeout=5)
    assert outputs == [TaskOutput(f"{URL}/files/{task}_0.png", "png", "9")]
    assert [p for p, _ in hub.requests].count("/task/openapi/status") == 3  # QUEUED, RUNNING, SUCCESS
    assert rh.download(outputs[0].file_url).startswith(b"\x89PNG")


def test_an_upload_gives_the_file_name_for_the_loader_node(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    assert rh.upload(b"png bytes", "cat.png") == "api/0001.png"
    assert b'name="apiKey"' in hub.uploads["api/0001.png"] and b"png bytes" in hub.uploads["api/0001.png"]


def test_an_own_workflow_is_sent_as_a_json_string(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    rh.submit("1987654321", workflow=PROMPT)
    assert json.loads(hub.requests[-1][1]["workflow"]) == PROMPT


@pytest.mark.parametrize("code, msg, error, message", [
    (421, "TASK_QUEUE_MAXED", ServiceRefused,
     "RunningHub's queue is full. Wait a little and try again, or use a personal queue. "
     "(RunningHub: 421 TASK_QUEUE_MAXED)"),
    (812, "INSUFFICIENT_FUNDS", ServiceRefused,
     "the RunningHub enterprise account has run out of funds. Top it up, then try again. "
     "(RunningHub: 812 INSUFFICIENT_FUNDS)"),
    (433, "VALIDATE_PROMPT_FAILED", PromptRejected,
     "RunningHub refused workflow 1987654321: the workflow did not pass validation "
     "(RunningHub: 433 VALIDATE_PROMPT_FAILED). Check the values against the workflow's nodes."),
    (803, "NODE_INFO_MISMATCH", PromptRejected,
     "RunningHub refused workflow 1987654321: nodeInfoList does not match the workflow's nodes and inputs "
     "(RunningHub: 803 NODE_INFO_MISMATCH). Check the values against the workflow's nodes."),
    (999, "SOMETHING_NEW", ServiceRefused,
     "RunningHub refused the call (RunningHub: 999 SOMETHING_NEW). See RunningHub's API docs for this code."),
])
def test_error_codes_of_create_become_errors_that_say_what_to_do(rh: RunningHubClient, hub: FakeRunningHub,
                                                                 code: int, msg: str, error: type,
                                                                 message: str) -> None:
    hub.fail_next["/task/openapi/create"] = (code, msg)
    with pytest.raises(error) as raised:
        rh.submit("1987654321")
    assert str(raised.value) == message
    assert [p for p, _ in hub.requests] == ["/task/openapi/create"]  # refused calls are not retried


def test_a_wrong_key_says_which_setting_to_check(hub: FakeRunningHub) -> None:
    rh = RunningHubClient("wrong", URL, http=hub.client(), sleep=lambda s: None)
    with pytest.raises(ServiceRefused) as raised:
        rh.workflow_json("1987654321")
    assert raised.value.code == 802
    assert str(raised.value) == ("RunningHub refused the API key. Check RUNNINGHUB_API_KEY (copy it again from "
                                 "your account page). (RunningHub: 802 APIKEY_UNAUTHORIZED)")
    assert "wrong" not in repr(rh)


def test_an_unknown_workflow_id_is_a_config_error_naming_it(rh: RunningHubClient) -> None:
    with pytest.raises(ConfigError) as raised:
        rh.workflow_json("42")
    assert str(raised.value) == ("RunningHub workflow 42: RunningHub has no workflow with this id (RunningHub: 380 "
                                 "WORKFLOW_NOT_EXISTS); check the id (the number in the workflow's address on "
                                 "runninghub.ai)")


def test_a_file_too_big_names_the_field(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    hub.fail_next["/task/openapi/upload"] = (809, "FILE_SIZE_EXCEEDED")
    with pytest.raises(InputError) as raised:
        rh.upload(b"x", "big.png", field="Photo")
    assert str(raised.value) == "Photo: the file is too big for RunningHub (RunningHub: 809 FILE_SIZE_EXCEEDED)"


def test_a_failed_task_carries_runninghubs_reason(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    hub.task_fails = "CUDA out of memory"
    task = rh.submit("1987654321")
    with pytest.raises(ExecutionFailed) as raised:
        rh.wait(task, timeout=5)
    assert str(raised.value) == f"RunningHub task {task} failed: CUDA out of memory"


def test_waiting_is_bounded(rh: RunningHubClient, hub: FakeRunningHub) -> None:
    hub.polls = ("QUEUED",) * 1000
    task = rh.submit("1987654321")
    with pytest.raises(JobTimeout, match=f"RunningHub task {task} did not finish within 0 s"):
        rh.wait(task, timeout=0)


def test_an_unknown_task_says_to_run_again(rh: RunningHubClient) -> None:
    with pytest.raises(ServerError, match=r"^RunningHub does not know task 5 \(RunningHub: 807 APIKEY_TASK_NOT_"
                                          r"FOUND\); run it again.$"):
        rh.status("5")


def test_server_errors_are_retried_with_backoff_then_reported(hub: FakeRunningHub) -> None:
    calls, waits = [], []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(502) if len(calls) < 3 else hub.handle(request)

    rh = RunningHubClient(KEY, URL, http=httpx.Client(base_url=URL, transport=httpx.MockTransport(flaky)),
                          sleep=waits.append)
    assert rh.workflow_json("1987654321") == PROMPT
    assert waits == [1, 2]
    rh = RunningHubClient(KEY, URL, retry_count=1, sleep=waits.append,
                          http=httpx.Client(base_url=URL, transport=httpx.MockTransport(lambda r: httpx.Response(503))))
    with pytest.raises(ServerError, match="RunningHub answered POST /api/openapi/getJsonApiFormat with HTTP 503; try"):
        rh.workflow_json("1")


@pytest.mark.parametrize("answer", [httpx.Response(403), httpx.Response(429), httpx.Response(200, text="<html>")])
def test_a_refusal_or_an_unreadable_answer_is_not_sent_again(answer: httpx.Response) -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answer

    rh = RunningHubClient(KEY, URL, http=httpx.Client(base_url=URL, transport=httpx.MockTransport(refuse)),
                          sleep=lambda s: None)
    with pytest.raises(ProtocolError):
        rh.workflow_json("1987654321")
    assert calls == ["/api/openapi/getJsonApiFormat"]


def test_a_task_is_never_created_twice(hub: FakeRunningHub) -> None:
    """RunningHub may have created (and will bill) the task even when its answer is a 502 or is lost."""
    calls: list[str] = []

    def broken_answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(502)

    rh = RunningHubClient(KEY, URL, http=httpx.Client(base_url=URL, transport=httpx.MockTransport(broken_answer)),
                          sleep=lambda s: None)
    with pytest.raises(ServerError, match="RunningHub answered POST /task/openapi/create with HTTP 502"):
        rh.submit("1987654321")
    with pytest.raises(ServerError):
        rh.upload(b"png", "cat.png")
    assert calls == ["/task/openapi/create", "/task/openapi/upload"]


def test_without_a_key_the_error_says_where_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    with pytest.raises(ConfigError) as raised:
        RunningHubClient()
    assert str(raised.value) == f"settings: RUNNINGHUB_API_KEY: {NO_KEY}"


# ---- RunningHub as a backend of the pool (comfy/runninghub_backend.py) --------------------------

def backend(hub: FakeRunningHub, tmp_path: Path, workflow_id: str | None = None) -> RunningHubBackend:
    return RunningHubBackend(URL, api_key=KEY, workflow_id=workflow_id, http=hub.client(), sleep=lambda s: None,
                             output_dir=tmp_path)


def test_a_shipped_tab_runs_on_runninghub_in_place_of_the_configured_workflow(hub: FakeRunningHub,
                                                                              tmp_path: Path) -> None:
    rh = backend(hub, tmp_path, workflow_id="1987654321")
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "cat.png")
    job = rh.submit(WORKFLOWS / "invert.json", {"image": str(tmp_path / "cat.png")})
    events = [type(e).__name__ for e in job.events() if e is not None]
    [image] = job.result(5).images
    create = next(body for path, body in hub.requests if path == "/task/openapi/create")
    sent = json.loads(create["workflow"])
    assert create["workflowId"] == "1987654321" and "nodeInfoList" not in create
    assert sent["1"]["inputs"]["image"] == "api/0001.png"  # the name RunningHub gave the upload
    assert b"\x89PNG" in hub.uploads["api/0001.png"]
    assert events == ["Started"]
    assert image.path.parent == tmp_path / job.prompt_id and image.output_name == "inverted"  # the schema's name
    assert Image.open(image.path).getpixel((2, 2)) == (200, 30, 30)


def test_a_tab_made_from_a_runninghub_id_sends_only_the_changed_values(hub: FakeRunningHub, tmp_path: Path) -> None:
    path = tmp_path / "runninghub-1987654321.json"
    path.write_text(json.dumps(PROMPT))
    job = backend(hub, tmp_path).submit(path, {"6-inputs-text": "a dog"})
    job.result(5)
    create = next(body for p, body in hub.requests if p == "/task/openapi/create")
    seed = job.prepared.prompt["3"]["inputs"]["seed"]  # the inferred form draws a new seed
    assert create == {"apiKey": KEY, "workflowId": "1987654321",
                      "nodeInfoList": [{"nodeId": "6", "fieldName": "text", "fieldValue": "a dog"},
                                       {"nodeId": "3", "fieldName": "seed", "fieldValue": seed}]}


def stored_naming_inverted(hub: FakeRunningHub, tmp_path: Path, prompt: dict) -> Path:
    """``prompt`` as RunningHub stores it under an id, and our file of it with a schema naming one output
    (node 3, "inverted"); a picture to upload beside it, ``cat.png``."""
    hub.workflows["1987654322"] = prompt
    path = tmp_path / "runninghub-1987654322.json"
    path.write_text(json.dumps(prompt))
    path.with_suffix(".yaml").write_text("inputs:\n  image: {node: '1', input: image}\n"
                                         "outputs:\n  inverted: {node: '3'}\n")
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "cat.png")
    return path


def test_only_the_outputs_the_tab_names_are_downloaded(hub: FakeRunningHub, tmp_path: Path) -> None:
    prompt = {**json.loads((WORKFLOWS / "invert.json").read_text()),
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}, "_meta": {"title": "Peek"}}}
    path = stored_naming_inverted(hub, tmp_path, prompt)
    job = backend(hub, tmp_path).submit(path, {"image": str(tmp_path / "cat.png")})
    assert [(f.node_id, f.output_name) for f in job.result(5).outputs] == [("3", "inverted")]
    path.with_suffix(".yaml").write_text("inputs:\n  image: {node: '1', input: image}\n")  # names none: all
    job = backend(hub, tmp_path).submit(path, {"image": str(tmp_path / "cat.png")})
    assert sorted((f.node_id, f.output_name) for f in job.result(5).outputs) == [("3", "Save Image"), ("9", "Peek")]


def test_without_a_workflow_id_the_error_says_what_to_set(hub: FakeRunningHub, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        backend(hub, tmp_path).submit(WORKFLOWS / "blur.json", {})
    assert str(caught.value) == f"settings: RUNNINGHUB_WORKFLOW_ID: {NO_WORKFLOW_ID}"
    assert [p for p, _ in hub.requests] == []  # nothing was sent


def test_a_failed_task_fails_the_job_with_runninghubs_reason(hub: FakeRunningHub, tmp_path: Path) -> None:
    hub.task_fails = "node 9 ran out of memory"
    job = backend(hub, tmp_path, workflow_id="1987654321").submit(WORKFLOWS / "blur.json", {})
    with pytest.raises(ExecutionFailed) as caught:
        job.result(5)
    assert "node 9 ran out of memory" in str(caught.value)


def test_a_runninghub_entry_of_comfyui_url_builds_the_backend(tmp_path: Path) -> None:
    settings = load_settings(["--outputs", str(tmp_path)], env={
        "COMFYUI_URL": "http://127.0.0.1:9,runninghub+https://www.runninghub.ai", "RUNNINGHUB_API_KEY_2": KEY,
        "RUNNINGHUB_WORKFLOW_ID_2": "1987654321"})
    [(number, kind, url)] = [b for b in settings.backends if b[1] == "runninghub"]
    made = make_backend(settings, number, kind, url)
    assert isinstance(made, RunningHubBackend) and made.workflow_id == "1987654321" and KEY not in repr(made)
    made.close()


def test_a_tab_built_in_memory_runs_as_the_configured_workflow(hub: FakeRunningHub, tmp_path: Path) -> None:
    tab = load_tab(WORKFLOWS / "blur.json", None)
    tab = replace(tab, workflow=replace(tab.workflow, path=None))  # no file, so no RunningHub id in its name
    job = backend(hub, tmp_path, workflow_id="1987654321").submit(tab, {})
    job.result(5)
    create = next(body for p, body in hub.requests if p == "/task/openapi/create")
    assert create["workflowId"] == "1987654321" and json.loads(create["workflow"]) == job.prepared.prompt


def test_the_workflow_id_may_come_from_the_environment(hub: FakeRunningHub, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNINGHUB_WORKFLOW_ID", "1987654321")
    assert backend(hub, tmp_path).workflow_id == "1987654321"
    assert backend(hub, tmp_path, workflow_id="5").workflow_id == "5"  # the argument first
    monkeypatch.setenv("RUNNINGHUB_WORKFLOW_ID", "")  # set but empty: as unset
    with pytest.raises(ConfigError) as caught:
        backend(hub, tmp_path).submit(WORKFLOWS / "blur.json", {})
    assert str(caught.value) == f"settings: RUNNINGHUB_WORKFLOW_ID: {NO_WORKFLOW_ID}"


def test_the_backend_polls_every_two_seconds_and_emits_started_once_when_running(hub: FakeRunningHub,
                                                                                 tmp_path: Path) -> None:
    waits: list[float] = []
    hub.polls = ("QUEUED", "RUNNING", "RUNNING")
    rh = RunningHubBackend(URL, api_key=KEY, workflow_id="1987654321", http=hub.client(), sleep=waits.append,
                           output_dir=tmp_path)
    job = rh.submit(WORKFLOWS / "blur.json", {})
    events = [type(e).__name__ for e in job.events() if e is not None]
    job.result(5)
    assert events == ["Started"] and waits == [2.0, 2.0, 2.0]
    hub.polls = ("QUEUED",)  # never seen running: no Started
    job = rh.submit(WORKFLOWS / "blur.json", {})
    assert [type(e).__name__ for e in job.events() if e is not None] == []
    assert job.result(5).images


def test_the_backend_reaches_runninghub_at_its_own_address(tmp_path: Path) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    rh = RunningHubBackend("https://rh-mirror.test/", api_key=KEY, workflow_id="1", sleep=lambda s: None,
                           output_dir=tmp_path,
                           http=httpx.Client(base_url="https://rh-mirror.test",
                                             transport=httpx.MockTransport(unreachable)))
    with pytest.raises(ServerError) as caught:
        rh.submit(WORKFLOWS / "blur.json", {})
    assert str(caught.value) == ("Cannot reach RunningHub at https://rh-mirror.test (connection refused). Check its "
                                 "address in COMFYUI_URL and that this machine can reach it, then try again.")


def test_an_upload_keeps_its_file_name_and_a_refused_one_names_the_field(hub: FakeRunningHub,
                                                                         tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "cat.png")
    rh = backend(hub, tmp_path, workflow_id="1987654321")
    rh.submit(WORKFLOWS / "invert.json", {"image": str(tmp_path / "cat.png")}).result(5)
    assert b'name="file"; filename="cat.png"' in hub.uploads["api/0001.png"]
    hub.fail_next["/task/openapi/upload"] = (809, "FILE_SIZE_EXCEEDED")
    with pytest.raises(InputError) as caught:
        rh.submit(WORKFLOWS / "invert.json", {"image": str(tmp_path / "cat.png")})
    assert str(caught.value) == "Picture: the file is too big for RunningHub (RunningHub: 809 FILE_SIZE_EXCEEDED)"


def test_a_failed_task_without_a_reason_says_so(hub: FakeRunningHub, tmp_path: Path) -> None:
    hub.task_fails = ""
    job = backend(hub, tmp_path, workflow_id="1987654321").submit(WORKFLOWS / "blur.json", {})
    with pytest.raises(ExecutionFailed) as caught:
        job.result(5)
    task = next(iter(hub.tasks))
    assert str(caught.value) == f"RunningHub task {task} failed: RunningHub gave no reason"
    assert caught.value.node_id == ""


def test_an_output_the_tab_does_not_name_is_skipped_wherever_it_comes(hub: FakeRunningHub, tmp_path: Path) -> None:
    prompt = {"9": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}, "_meta": {"title": "Peek"}},
              **json.loads((WORKFLOWS / "invert.json").read_text())}  # its output comes first
    path = stored_naming_inverted(hub, tmp_path, prompt)
    job = backend(hub, tmp_path).submit(path, {"image": str(tmp_path / "cat.png")})
    assert [(f.node_id, f.output_name) for f in job.result(5).outputs] == [("3", "inverted")]


def test_a_file_runninghub_gives_no_node_is_kept_as_output(hub: FakeRunningHub, tmp_path: Path) -> None:
    def without_nodes(request: httpx.Request) -> httpx.Response:
        answer = hub.handle(request)
        if request.url.path != "/task/openapi/outputs":
            return answer
        body = json.loads(answer.read())
        for item in body["data"] or []:
            del item["nodeId"]
        return httpx.Response(200, json=body)

    rh = RunningHubBackend(URL, api_key=KEY, workflow_id="1987654321", sleep=lambda s: None, output_dir=tmp_path,
                           http=httpx.Client(base_url=URL, transport=httpx.MockTransport(without_nodes)))
    job = rh.submit(WORKFLOWS / "blur.json", {})
    [image] = job.result(5).outputs
    task = next(iter(hub.tasks))
    assert (image.node_id, image.output_name) == ("", "output")
    assert image.path == tmp_path / job.prompt_id / f"output_{task}_0.png"


def test_a_cancelled_job_stops_polling_runninghub(hub: FakeRunningHub, tmp_path: Path) -> None:
    hub.polls = ("QUEUED",) * 5
    jobs: list = []
    submitted = threading.Event()

    def cancel_at_the_first_wait(seconds: float) -> None:
        submitted.wait(5)
        jobs[0].cancel()

    rh = RunningHubBackend(URL, api_key=KEY, workflow_id="1987654321", http=hub.client(), output_dir=tmp_path,
                           sleep=cancel_at_the_first_wait)
    jobs.append(rh.submit(WORKFLOWS / "blur.json", {}))
    submitted.set()
    with pytest.raises(JobCancelled):
        jobs[0].result(5)
    follower = next((t for t in threading.enumerate() if t.name == f"job-{jobs[0].prompt_id[:8]}"), None)
    if follower is not None:
        follower.join(5)
    assert [p for p, _ in hub.requests] == ["/task/openapi/create", "/task/openapi/status"]
