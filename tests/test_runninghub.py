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


# ---- the wire client's promises, one by one ---------------------------------------------------

def answering(*answers: "httpx.Response | Exception", calls: list | None = None) -> httpx.Client:
    """A client whose requests get ``answers`` in turn (an exception is raised), recorded in ``calls``."""
    queue = list(answers)
    seen = calls if calls is not None else []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.read()))
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(base_url=URL, transport=httpx.MockTransport(handle))


def ok(data: object, msg: str = "success") -> httpx.Response:
    return httpx.Response(200, json={"code": 0, "msg": msg, "data": data})


def test_submit_tab_uploads_the_local_files_then_sends_only_the_changes(hub: FakeRunningHub, tmp_path: Path) -> None:
    hub.workflows["1"] = json.loads((WORKFLOWS / "invert.json").read_text())
    rh = RunningHubClient(KEY, URL, http=hub.client(), sleep=lambda s: None)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "cat.png")
    task, prepared = rh.submit_tab("1", load_tab(WORKFLOWS / "invert.json", None), {"image": str(tmp_path / "cat.png")})
    assert [p for p, _ in hub.requests] == ["/task/openapi/upload", "/task/openapi/create"]
    assert b'name="file"; filename="cat.png"' in hub.uploads["api/0001.png"]
    assert hub.requests[-1][1] == {"apiKey": KEY, "workflowId": "1",
                                   "nodeInfoList": [{"nodeId": "1", "fieldName": "image", "fieldValue": "api/0001.png"}]}
    assert task == next(iter(hub.tasks)) and prepared.prompt["1"]["inputs"]["image"] == "api/0001.png"


def test_submit_tab_refuses_a_missing_required_file_before_sending_anything(rh: RunningHubClient,
                                                                            hub: FakeRunningHub) -> None:
    with pytest.raises(InputError) as raised:
        rh.submit_tab("1987654321", load_tab(WORKFLOWS / "invert.json", None))
    assert str(raised.value) == "Picture: is required; upload an image"
    assert hub.requests == []


def test_submit_tab_without_values_sends_the_forms_own_changes(rh: RunningHubClient, hub: FakeRunningHub,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "runninghub-1987654321.json"
    path.write_text(json.dumps(PROMPT))
    task, prepared = rh.submit_tab("1987654321", load_tab(path, None))
    seed = prepared.prompt["3"]["inputs"]["seed"]
    assert hub.requests == [("/task/openapi/create", {"apiKey": KEY, "workflowId": "1987654321", "nodeInfoList": [
        {"nodeId": "3", "fieldName": "seed", "fieldValue": seed}]})]
    assert hub.tasks[task]["body"]["workflowId"] == "1987654321"


def test_the_instance_type_is_sent_with_every_task_and_an_empty_list_is_not(hub: FakeRunningHub) -> None:
    rh = RunningHubClient(KEY, URL, http=hub.client(), instance_type="plus", sleep=lambda s: None)
    rh.submit("1987654321", [])
    assert hub.requests[-1] == ("/task/openapi/create", {"apiKey": KEY, "workflowId": "1987654321",
                                                         "instanceType": "plus"})


def test_the_address_comes_from_the_argument_then_the_environment_and_the_key_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNINGHUB_API_KEY", KEY)
    monkeypatch.delenv("RUNNINGHUB_BASE_URL", raising=False)
    with RunningHubClient() as rh:
        assert repr(rh) == "RunningHubClient('https://www.runninghub.ai')"
        assert rh.http.base_url == httpx.URL("https://www.runninghub.ai")
        assert rh.http.timeout == httpx.Timeout(300.0)
    assert rh.http.is_closed  # its own client is closed with it
    monkeypatch.setenv("RUNNINGHUB_BASE_URL", "https://rh-mirror.test/")
    with RunningHubClient(timeout=7) as rh:
        assert rh.url == "https://rh-mirror.test" and rh.http.timeout == httpx.Timeout(7)
    assert RunningHubClient(base_url="https://other.test/").url == "https://other.test"


def test_an_injected_client_is_left_open_and_the_key_goes_in_every_body(hub: FakeRunningHub) -> None:
    http = hub.client()
    with RunningHubClient(KEY, URL, http=http, sleep=lambda s: None) as rh:
        rh.status(rh.submit("1987654321"))
    assert not http.is_closed
    assert [body["apiKey"] for _, body in hub.requests] == [KEY, KEY]


def test_by_default_a_failing_read_is_tried_four_times_backing_off_1_2_4_s() -> None:
    calls, waits = [], []
    rh = RunningHubClient(KEY, URL, sleep=waits.append, http=answering(*[httpx.Response(500)] * 4, calls=calls))
    with pytest.raises(ServerError) as raised:
        rh.status("5")
    assert str(raised.value) == "RunningHub answered POST /task/openapi/status with HTTP 500; try again later"
    assert waits == [1, 2, 4] and len(calls) == 4


def test_a_lost_connection_is_retried_even_for_a_task_but_a_lost_answer_is_not() -> None:
    calls, waits = [], []
    rh = RunningHubClient(KEY, URL, sleep=waits.append, http=answering(
        httpx.ConnectError("refused"), ok({"taskId": "77"}), httpx.ReadTimeout("no answer"), calls=calls))
    assert rh.submit("1") == "77" and waits == [1]
    with pytest.raises(ServerError) as raised:
        rh.submit("1")
    assert str(raised.value) == f"POST /task/openapi/create to RunningHub at {URL} failed: no answer"
    assert [p for p, _ in calls] == ["/task/openapi/create"] * 3 and waits == [1]


def test_a_read_whose_answer_is_lost_is_asked_again() -> None:
    waits: list[float] = []
    rh = RunningHubClient(KEY, URL, sleep=waits.append, http=answering(httpx.ReadTimeout("no answer"), ok("RUNNING")))
    assert rh.status("5") == "RUNNING" and waits == [1]


def test_a_connection_never_made_says_where_after_the_last_try() -> None:
    waits: list[float] = []
    rh = RunningHubClient(KEY, URL, retry_count=2, sleep=waits.append,
                          http=answering(*[httpx.ConnectTimeout("")] * 3))
    with pytest.raises(ServerError) as raised:
        rh.upload(b"png", "cat.png")
    assert str(raised.value) == (f"Cannot reach RunningHub at {URL} (ConnectTimeout). Check its address in "
                                 "COMFYUI_URL and that this machine can reach it, then try again.")
    assert waits == [1, 2]
    rh = RunningHubClient(KEY, URL, retry_count=0, sleep=waits.append, http=answering(httpx.ConnectError("refused")))
    with pytest.raises(ServerError, match=r"\(refused\)"):
        rh.status("5")
    assert waits == [1, 2]  # no retry at all


@pytest.mark.parametrize("answer, message", [
    (httpx.Response(200, json=[0]), "RunningHub answered POST /task/openapi/status without a code"),
    (httpx.Response(200, json={"msg": "ok", "data": "RUNNING"}),
     "RunningHub answered POST /task/openapi/status without a code"),
    (httpx.Response(200, text="<html>"), "RunningHub answered POST /task/openapi/status with something that is not JSON"),
    (httpx.Response(404), "RunningHub answered POST /task/openapi/status with HTTP 404"),
    (httpx.Response(499), "RunningHub answered POST /task/openapi/status with HTTP 499"),
])
def test_an_answer_outside_the_protocol_is_a_protocol_error_naming_the_call(answer: httpx.Response,
                                                                           message: str) -> None:
    calls: list = []
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(answer, calls=calls))
    with pytest.raises(ProtocolError) as raised:
        rh.status("5")
    assert str(raised.value) == message and len(calls) == 1


@pytest.mark.parametrize("answer, message", [
    ({"code": "0", "msg": "", "data": "RUNNING"},
     "RunningHub refused the call (RunningHub: -1). See RunningHub's API docs for this code."),
    ({"code": 415, "msg": "NO_INSTANCE"},
     "this key has no dedicated instance on RunningHub. Use a shared instance, or rent a dedicated one. "
     "(RunningHub: 415 NO_INSTANCE)"),
    ({"code": 801, "msg": "FREE"},
     "free RunningHub accounts cannot use the API. Upgrade the account to a paid plan. (RunningHub: 801 FREE)"),
    ({"code": 806, "msg": "NO_USER"},
     "RunningHub does not know the user of this API key. Check RUNNINGHUB_API_KEY. (RunningHub: 806 NO_USER)"),
    ({"code": 811, "msg": "ENT"},
     "RunningHub refused the enterprise API key. Check RUNNINGHUB_API_KEY. (RunningHub: 811 ENT)"),
    ({"code": 814, "msg": "PERSONAL_QUEUE"},
     "your RunningHub personal queue is at its limit. Wait for a task to finish, then try again. "
     "(RunningHub: 814 PERSONAL_QUEUE)"),
    ({"code": 805, "msg": None},
     "RunningHub reports an abnormal task status. Look at the task on runninghub.ai, then try again. "
     "(RunningHub: 805)"),
])
def test_refusals_say_what_to_do_and_keep_runninghubs_words(answer: dict, message: str) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(httpx.Response(200, json=answer)))
    with pytest.raises(ServiceRefused) as raised:
        rh.status("5")
    assert str(raised.value) == message and raised.value.service == "RunningHub"
    assert raised.value.code == (answer["code"] if isinstance(answer["code"], int) else -1)


def test_the_other_codes_name_the_workflow_the_task_or_the_field() -> None:
    def refused(code: int, msg: str) -> RunningHubClient:
        return RunningHubClient(KEY, URL, sleep=lambda s: None,
                                http=answering(httpx.Response(200, json={"code": code, "msg": msg})))

    with pytest.raises(PromptRejected) as rejected:
        refused(301, "PARAMS_INVALID").submit("55")
    assert str(rejected.value) == ("RunningHub refused workflow 55: the parameters were refused (RunningHub: 301 "
                                   "PARAMS_INVALID). Check the values against the workflow's nodes.")
    assert rejected.value.error_type == "runninghub_301"
    with pytest.raises(ConfigError) as missing:
        refused(901, "WEBAPP_NOT_EXISTS").workflow_json("56")
    assert str(missing.value) == ("RunningHub workflow 56: RunningHub has no web app with this id (RunningHub: 901 "
                                  "WEBAPP_NOT_EXISTS); check the id (the number in the workflow's address on "
                                  "runninghub.ai)")
    with pytest.raises(ServerError) as unknown:
        refused(423, "TASK_NOT_FOUND").outputs("57")
    assert str(unknown.value) == "RunningHub does not know task 57 (RunningHub: 423 TASK_NOT_FOUND); run it again."
    with pytest.raises(InputError) as upload:
        refused(808, "UPLOAD_FAILED").upload(b"x", "a.png")
    assert str(upload.value) == "file: RunningHub could not store the file; try again (RunningHub: 808 UPLOAD_FAILED)"


@pytest.mark.parametrize("data, message", [
    ({"prompt": "{not json"}, "RunningHub sent workflow 7 as something that is not JSON"),
    ({"prompt": "{}"}, "RunningHub sent no API-format workflow for id 7"),
    ({"prompt": "[1]"}, "RunningHub sent no API-format workflow for id 7"),
    ({}, "RunningHub sent no API-format workflow for id 7"),
    ("prompt", "RunningHub sent no API-format workflow for id 7"),
])
def test_a_workflow_answer_without_a_workflow_is_refused(data: object, message: str) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok(data)))
    with pytest.raises(ProtocolError) as raised:
        rh.workflow_json("7")
    assert str(raised.value) == message


def test_a_workflow_may_also_come_as_an_object() -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok({"prompt": PROMPT})))
    assert rh.workflow_json("7") == PROMPT


@pytest.mark.parametrize("data", [None, {}, {"fileName": ""}, ["api/1.png"]])
def test_an_upload_answer_without_a_file_name_names_the_field(data: object) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok(data)))
    with pytest.raises(ProtocolError) as raised:
        rh.upload(b"x", "a.png", field="Photo")
    assert str(raised.value) == "RunningHub accepted the upload of 'Photo' but sent no fileName"


def test_an_upload_sends_the_key_and_the_file_as_a_form() -> None:
    calls: list = []
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok({"fileName": 12}), calls=calls))
    assert rh.upload(b"png bytes", "cat.png") == "12"
    [(path, content)] = calls
    assert path == "/task/openapi/upload"
    assert f'name="apiKey"\r\n\r\n{KEY}\r\n'.encode() in content
    assert b'name="file"; filename="cat.png"' in content and b"png bytes" in content


@pytest.mark.parametrize("data", [None, {}, {"taskId": ""}, "1990"])
def test_a_create_answer_without_a_task_is_refused(data: object) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok(data)))
    with pytest.raises(ProtocolError) as raised:
        rh.submit("8")
    assert str(raised.value) == "RunningHub created no task for workflow 8 (no taskId in its answer)"


def test_a_numeric_task_id_is_kept_as_text() -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok({"taskId": 1990})))
    assert rh.submit("8") == "1990"


@pytest.mark.parametrize("data", ["DONE", None, "success"])
def test_an_unknown_status_names_it_and_the_task(data: object) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok(data)))
    with pytest.raises(ProtocolError) as raised:
        rh.status("5")
    assert str(raised.value) == f"RunningHub answered an unknown status {data!r} for task 5"


def test_outputs_keep_files_with_a_url_and_default_the_rest() -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok([
        {"fileUrl": "https://cdn.test/a.png", "fileType": "png", "nodeId": 9},
        {"fileUrl": "https://cdn.test/b.mp4"},
        {"fileUrl": "", "fileType": "png"}, "junk", {"nodeId": "3"}]), ok(None)))
    assert rh.outputs("5") == [TaskOutput("https://cdn.test/a.png", "png", "9"),
                               TaskOutput("https://cdn.test/b.mp4", "", None)]
    assert rh.outputs("5") == []


@pytest.mark.parametrize("code", [804, 813])
def test_outputs_asked_for_too_early_are_none_and_other_refusals_raise(code: int) -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(
        httpx.Response(200, json={"code": code, "msg": "WAIT"}), httpx.Response(200, json={"code": 805, "msg": "X"})))
    assert rh.outputs("5") is None
    with pytest.raises(ServiceRefused) as raised:
        rh.outputs("5")
    assert raised.value.code == 805


def test_wait_polls_at_the_interval_and_a_success_without_outputs_is_empty() -> None:
    waits: list[float] = []
    calls: list = []
    rh = RunningHubClient(KEY, URL, poll_interval=0.5, sleep=waits.append, http=answering(
        ok("QUEUED"), ok("RUNNING"), ok("SUCCESS"), httpx.Response(200, json={"code": 804, "msg": "RUNNING"}),
        calls=calls))
    assert rh.wait("5", timeout=None) == []
    assert waits == [0.5, 0.5]
    assert [(p, json.loads(c)) for p, c in calls] == [("/task/openapi/status", {"apiKey": KEY, "taskId": "5"})] * 3 + [
        ("/task/openapi/outputs", {"apiKey": KEY, "taskId": "5"})]


def test_by_default_wait_polls_every_two_seconds_and_gives_up_after_ten_minutes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += 100.0

    monkeypatch.setattr("comfyui_gradio.comfy.runninghub.time.monotonic", lambda: clock[0])
    rh = RunningHubClient(KEY, URL, sleep=sleep, http=answering(*[ok("RUNNING")] * 20))
    with pytest.raises(JobTimeout) as raised:
        rh.wait("5")
    assert str(raised.value) == ("RunningHub task 5 did not finish within 600 s; it may still be running on "
                                 "RunningHub. Raise the timeout, or look at the task there.")
    assert waits == [2.0] * 6  # polled at 1000, 1100, ... 1600: the seventh poll is at the deadline


def test_a_failed_task_is_reported_at_once_even_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("comfyui_gradio.comfy.runninghub.time.monotonic", lambda: 5.0)
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(ok("FAILED", msg="")))
    with pytest.raises(ExecutionFailed) as raised:
        rh.wait("5", timeout=0)
    assert str(raised.value) == "RunningHub task 5 failed: RunningHub gave no reason"


def test_a_download_names_the_output_when_it_fails() -> None:
    rh = RunningHubClient(KEY, URL, sleep=lambda s: None, http=answering(
        httpx.Response(403), httpx.ConnectError("refused"), httpx.Response(200, content=b"png")))
    with pytest.raises(ServerError) as raised:
        rh.download("https://cdn.test/a.png")
    assert str(raised.value) == "RunningHub's output https://cdn.test/a.png answered HTTP 403"
    with pytest.raises(ServerError) as raised:
        rh.download("https://cdn.test/a.png")
    assert str(raised.value) == "Could not download the RunningHub output https://cdn.test/a.png: refused"
    assert rh.download("https://cdn.test/a.png") == b"png"


def test_submit_tab_names_the_forms_field_when_runninghub_refuses_its_file(rh: RunningHubClient, hub: FakeRunningHub,
                                                                          tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "cat.png")
    hub.fail_next["/task/openapi/upload"] = (809, "FILE_SIZE_EXCEEDED")
    with pytest.raises(InputError) as raised:
        rh.submit_tab("1987654321", load_tab(WORKFLOWS / "invert.json", None), {"image": str(tmp_path / "cat.png")})
    assert str(raised.value) == "Picture: the file is too big for RunningHub (RunningHub: 809 FILE_SIZE_EXCEEDED)"
    assert [p for p, _ in hub.requests] == ["/task/openapi/upload"]  # no task without its file
