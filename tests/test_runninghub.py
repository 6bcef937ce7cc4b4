"""The RunningHub wire client against its double (tests/fake_runninghub.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from comfyui_gradio.comfy.runninghub import NO_KEY, RunningHubClient, TaskOutput, node_info_list
from comfyui_gradio.errors import (ConfigError, ExecutionFailed, InputError, JobTimeout, PromptRejected,
                                   ServerError, ServiceRefused)
from tests.fake_runninghub import KEY, URL, FakeRunningHub

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


def test_without_a_key_the_error_says_where_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    with pytest.raises(ConfigError) as raised:
        RunningHubClient()
    assert str(raised.value) == f"settings: RUNNINGHUB_API_KEY: {NO_KEY}"
