"""Batch runs (``map``) on the test double: input order, failures kept per item, the bound on jobs in flight."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from comfyui_gradio.comfy.batch import STOPPED, Batch, BatchItem
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.errors import (ComfyGradioError, ConfigError, ExecutionFailed, InputError, JobCancelled,
                                   ServerUnavailable)
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port, wait_for
from tests.paths import WORKFLOWS

CKPT = "tiny-random-sd15.safetensors"
FAST = {"steps": 1, "width": 64, "height": 64, "checkpoint": CKPT}
SLOW = {"steps": 40, "width": 64, "height": 64, "checkpoint": CKPT}
HUGE = {"width": 16384, "height": 16384}  # more than the double's max_pixels: EmptyImage fails as in c_runtime_error


@pytest.fixture()
def txt2img(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


@pytest.fixture()
def client(fake: FakeComfyUI, tmp_path: Path) -> Iterator[ComfyClient]:
    with ComfyClient(fake.url, output_dir=tmp_path / "out", poll_interval=0.05) as c:
        yield c


def test_items_come_back_in_input_order_when_later_ones_finish_first(txt2img: TabSpec, tmp_path: Path) -> None:
    with FakeComfyUI(step_delay=0.05) as a, FakeComfyUI() as b:
        pool = ComfyPool([ComfyClient(s.url, output_dir=tmp_path) for s in (a, b)], health_interval=3600).start()
        values = [{**SLOW, "seed": 10}, {**FAST, "seed": 11}, {**FAST, "seed": 12}]
        items = pool.map(txt2img, values, concurrency=2)
        pool.close()
    assert [(i.index, i.values["seed"], i.result.seeds["seed"]) for i in items] == [(0, 10, 10), (1, 11, 11),
                                                                                  (2, 12, 12)]
    assert items[0].result.server == a.url and items[1].result.server == b.url
    assert items[0].result.duration > items[1].result.duration + items[2].result.duration  # 0 ended last
    assert [i.prompt_id for i in items] == [i.result.prompt_id for i in items]


def test_a_failure_in_the_middle_keeps_the_others(client: ComfyClient, empty_image: TabSpec) -> None:
    values = [{"width": 8}, HUGE, {"width": 0}, {"width": 16, "height": 4}]
    items = client.map(empty_image, values)
    assert [i.ok for i in items] == [True, False, False, True]
    assert items[3].result.images[0].path.is_file() and items[0].result.images[0].path.is_file()
    with pytest.raises(ExecutionFailed) as ran:  # the same error as a run of its own
        client.run(empty_image, HUGE)
    assert type(items[1].error) is ExecutionFailed and str(items[1].error) == str(ran.value)
    assert items[1].prompt_id is not None and items[1].result is None
    with pytest.raises(InputError) as refused:
        client.run(empty_image, {"width": 0})
    assert type(items[2].error) is InputError and str(items[2].error) == str(refused.value)
    assert items[2].prompt_id is None  # refused before it was sent
    with pytest.raises(InputError):
        items[2].unwrap()
    assert items[3].unwrap() is items[3].result


def test_no_more_jobs_are_in_flight_than_asked(fake: FakeComfyUI, client: ComfyClient, empty_image: TabSpec) -> None:
    fake.node_delay = 0.05  # each job long enough for the next ones to queue behind it
    items = client.map(empty_image, [{"width": 8 + i} for i in range(6)], concurrency=3)
    assert fake.most_queued == 3 and all(i.ok for i in items) and len(fake.prompts) == 6
    fake.most_queued = 0
    client.map(empty_image, [{"width": 20 + i} for i in range(4)])  # the default: one running, one waiting
    assert fake.most_queued == 2


def test_a_broken_workflow_is_refused_before_anything_is_sent(fake: FakeComfyUI, client: ComfyClient,
                                                              tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError):
        client.map(broken, [{}, {}])
    assert fake.prompts == []


def test_an_unreachable_server_fails_each_item_and_says_why(empty_image: TabSpec, tmp_path: Path) -> None:
    with ComfyClient(f"http://127.0.0.1:{free_port()}", output_dir=tmp_path) as down:
        items = down.map(empty_image, [{"width": 8}, {"width": 9}])
    assert [type(i.error) for i in items] == [ServerUnavailable, ServerUnavailable]
    assert str(items[0].error) == str(items[1].error)


def test_stop_cancels_the_jobs_in_flight_and_sends_no_more(fake: FakeComfyUI, client: ComfyClient,
                                                           txt2img: TabSpec) -> None:
    fake.step_delay = 0.05
    batch = Batch(lambda values: client.submit(txt2img, values), [SLOW] * 5, concurrency=2)
    threading.Timer(0.5, batch.stop).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled, match=f"^{STOPPED}$"):
        batch.run()
    assert time.monotonic() - started < 3  # each job would take 2 s (40 steps x 0.05 s), one after the other
    assert len(fake.prompts) == 2
    wait_for(lambda: fake.queue_remaining == 0)


def test_a_bug_in_the_middle_stops_the_batch_and_cancels_its_jobs(fake: FakeComfyUI, client: ComfyClient,
                                                                  txt2img: TabSpec) -> None:
    fake.step_delay = 0.05
    jobs = []

    def submit(values):
        if jobs:
            raise RuntimeError("a bug")
        jobs.append(client.submit(txt2img, values))
        return jobs[-1]

    with pytest.raises(RuntimeError, match="a bug"):
        Batch(submit, [SLOW, SLOW], concurrency=2).run()
    with pytest.raises(JobCancelled):
        jobs[0].result(timeout=5)


def test_concurrency_must_be_at_least_one(client: ComfyClient, txt2img: TabSpec) -> None:
    with pytest.raises(ValueError, match="^concurrency must be at least 1$"):
        client.map(txt2img, [FAST], concurrency=0)


def test_an_empty_batch_is_an_empty_list(client: ComfyClient, txt2img: TabSpec) -> None:
    assert client.map(txt2img, []) == []


def test_a_batch_item_is_ok_or_has_its_error() -> None:
    failed = BatchItem(0, {}, error=ExecutionFailed("1", "Node", "boom"))
    assert not failed.ok
    with pytest.raises(ExecutionFailed, match="boom"):
        failed.unwrap()


class _EndedJob:
    """A job handle that has already ended, with a result or an error (the Batch needs no more)."""

    def __init__(self, number: int, error: ComfyGradioError | None = None) -> None:
        self.prompt_id, self._error = f"p{number}", error

    def add_done_callback(self, callback: Callable[[object], None]) -> None:
        callback(self)

    def result(self, timeout: float | None = None) -> str:
        if self._error is not None:
            raise self._error
        return f"result of {self.prompt_id}"

    def cancel(self) -> None:
        pass


def test_a_concurrency_of_one_runs_the_values_one_after_another() -> None:
    sent: list[dict] = []

    def submit(values: dict) -> _EndedJob:
        sent.append(values)
        return _EndedJob(len(sent))

    items = Batch(submit, [{"n": 1}, {"n": 2}, {"n": 3}], concurrency=1).run()
    assert [(i.index, i.values, i.result, i.prompt_id) for i in items] == [
        (0, {"n": 1}, "result of p1", "p1"), (1, {"n": 2}, "result of p2", "p2"), (2, {"n": 3}, "result of p3", "p3")]


def test_a_failed_item_keeps_its_place_and_its_values() -> None:
    refused, failed = InputError("seed", "not a number"), ExecutionFailed("3", "KSampler", "boom")

    def submit(values: dict) -> _EndedJob:
        if values["n"] == 1:
            raise refused
        return _EndedJob(values["n"], failed if values["n"] == 2 else None)

    items = Batch(submit, [{"n": 0}, {"n": 1}, {"n": 2}], concurrency=2).run()
    assert [(i.index, i.values, i.error, i.prompt_id) for i in items] == [
        (0, {"n": 0}, None, "p0"), (1, {"n": 1}, refused, None), (2, {"n": 2}, failed, "p2")]


def test_a_batch_stopped_while_it_sends_sends_no_more_and_says_so() -> None:
    sent: list[dict] = []

    def submit(values: dict) -> _EndedJob:
        sent.append(values)
        batch.stop()
        return _EndedJob(len(sent))

    batch = Batch(submit, [{"n": 1}, {"n": 2}], concurrency=4)
    with pytest.raises(JobCancelled) as caught:
        batch.run()
    assert str(caught.value) == STOPPED and sent == [{"n": 1}]
