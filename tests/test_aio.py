"""The asyncio API on the test double: the same events, results and errors as the sync one, cancelling
(also by cancelling the awaiting task), isolation of concurrent jobs, and no thread left behind.

Each test runs its own event loop with ``asyncio.run`` (no pytest plugin needed)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
from PIL import Image

from comfyui_gradio.comfy.aio import AsyncComfyClient, AsyncComfyPool, AsyncJob
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import NodeStarted, OutputReady, Progress, Started
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.errors import (ComfyGradioError, ExecutionFailed, InputError, JobCancelled, JobTimeout,
                                   ServerUnavailable)
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port, wait_for
from tests.paths import WORKFLOWS
from tests.replay import png_bytes

CKPT = "tiny-random-sd15.safetensors"
SLOW = {"steps": 40, "width": 64, "height": 64, "checkpoint": CKPT, "seed": 1}
FAST = {"steps": 1, "width": 64, "height": 64, "checkpoint": CKPT}


@pytest.fixture()
def invert(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json", catalog)


@pytest.fixture()
def txt2img(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


@pytest.fixture()
def threads(fake: FakeComfyUI) -> Iterator[None]:
    """The test leaves no thread of a job's behind: once its jobs have ended, the threads not there before
    are the servers' idle workers and the clock only (follow.py; they are shared, and few)."""
    before = set(threading.enumerate())
    yield
    wait_for(lambda: not [t for t in set(threading.enumerate()) - before if not _shared(t)], timeout=10)


def _shared(thread: threading.Thread) -> bool:
    return thread.name.endswith("-worker") or thread.name == "comfyui-gradio-clock"


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())


def pixels(path: Path) -> tuple[int, ...]:
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((0, 0))


def what(events: list[Any]) -> list[tuple[str, str]]:
    """The events as (kind, node), the part that does not depend on timing."""
    return [(type(e).__name__, getattr(e, "node_id", "")) for e in events
            if isinstance(e, (Started, NodeStarted, OutputReady))]


# ---- the same as sync ---------------------------------------------------------------------------


def test_events_in_order_then_the_result_with_its_pixels(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path,
                                                         threads: None) -> None:
    async def main() -> tuple[list[Any], Any]:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            job = await client.submit(invert, {"image": png_bytes((10, 20, 30))})
            assert isinstance(job, AsyncJob) and job.prompt_id and not job.done
            events = [e async for e in job.events()]
            assert [e async for e in job.events()] == []  # a second iteration ends at once, as in sync
            return events, await job.result()

    events, result = run(main)
    with ComfyClient(fake.url, output_dir=tmp_path) as sync:
        sync_job = sync.submit(invert, {"image": png_bytes((40, 50, 60))})  # another picture: nothing cached
        sync_events = list(sync_job.events())
        sync_job.result()
    assert what(events) == what(sync_events) == [("Started", ""), ("NodeStarted", "1"), ("NodeStarted", "2"),
                                                 ("NodeStarted", "3"), ("OutputReady", "3")]
    assert pixels(result.images[0].path) == (245, 235, 225)


def test_run_and_a_pool(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path, threads: None) -> None:
    async def main() -> list[Any]:
        async with AsyncComfyPool([fake.url], health_interval=3600) as pool:
            await pool.start()
            by_pool = await pool.run(invert, {"image": png_bytes((0, 0, 200))})
            with ComfyClient(fake.url, output_dir=tmp_path) as shared:  # a client holds its server's socket
                return [by_pool, await AsyncComfyClient(shared).run(invert, {"image": png_bytes((0, 200, 0))})]

    by_pool, by_client = run(main)
    assert pixels(by_pool.images[0].path) == (255, 255, 55) and by_pool.server == fake.url
    assert pixels(by_client.images[0].path) == (255, 55, 255)


def test_errors_are_the_sync_ones_with_the_same_messages(fake: FakeComfyUI, empty_image: TabSpec,
                                                         tmp_path: Path, threads: None) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    cases = [(fake.url, {"width": 0}), (fake.url, {"width": 16384, "height": 16384}), (down, {"width": 8})]

    async def failure(url: str, values: dict) -> ComfyGradioError:
        async with AsyncComfyClient(url, output_dir=tmp_path) as client:
            with pytest.raises(ComfyGradioError) as caught:
                await client.run(empty_image, values)
            return caught.value

    for url, values in cases:
        with ComfyClient(url, output_dir=tmp_path) as sync, pytest.raises(ComfyGradioError) as expected:
            sync.run(empty_image, values)
        got = run(lambda: failure(url, values))
        assert (type(got), str(got)) == (type(expected.value), str(expected.value))
    assert [type(run(lambda: failure(u, v))) for u, v in cases] == [InputError, ExecutionFailed, ServerUnavailable]


def test_a_result_not_ready_in_time_says_so_and_the_job_goes_on(fake: FakeComfyUI, txt2img: TabSpec,
                                                                tmp_path: Path, threads: None) -> None:
    fake.step_delay = 0.01

    async def main() -> tuple[str, Any]:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            job = await client.submit(txt2img, SLOW)
            with pytest.raises(JobTimeout) as caught:
                await job.result(timeout=0.05)
            with pytest.raises(JobTimeout) as sync:
                job.job.result(timeout=0.05)
            assert str(caught.value) == str(sync.value)  # Job.result's own words
            return str(caught.value), await job.result()

    message, result = run(main)
    assert message == f"The run {result.prompt_id} is still going after 0.05 s"
    assert result.images


# ---- cancelling ---------------------------------------------------------------------------------


def test_cancel_stops_the_job_on_the_server(fake: FakeComfyUI, txt2img: TabSpec, tmp_path: Path,
                                            threads: None) -> None:
    fake.step_delay = 0.05

    async def main() -> str:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            job = await client.submit(txt2img, SLOW)
            async for event in job.events():
                if isinstance(event, Progress):
                    await job.cancel()
                    break
            with pytest.raises(JobCancelled) as caught:
                await job.result()
            return str(caught.value)

    assert run(main) == "Cancelled by you at KSampler; nothing was saved from this run."
    wait_for(lambda: fake.queue_remaining == 0)


@pytest.mark.parametrize("awaiting", ["result", "events", "timeout"])
def test_cancelling_the_awaiting_task_cancels_the_job(awaiting: str, fake: FakeComfyUI, txt2img: TabSpec,
                                                      tmp_path: Path, threads: None) -> None:
    fake.step_delay = 0.05
    jobs: list[AsyncJob] = []

    async def wait(job: AsyncJob) -> None:
        if awaiting == "result":
            await job.result()
        elif awaiting == "events":
            async for _ in job.events():
                pass
        else:
            await asyncio.wait_for(job.result(), 0.2)  # which cancels result(), then raises TimeoutError

    async def main() -> None:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            jobs.append(await client.submit(txt2img, SLOW))
            task = asyncio.create_task(wait(jobs[0]))
            await asyncio.sleep(0.3)
            if awaiting != "timeout":
                task.cancel()
            with pytest.raises(asyncio.TimeoutError if awaiting == "timeout" else asyncio.CancelledError):
                await task

    run(main)
    with pytest.raises(JobCancelled):  # not a result: it was stopped before its 40 steps of 0.05 s
        jobs[0].job.result(timeout=5)
    wait_for(lambda: fake.queue_remaining == 0)


def test_a_submit_cancelled_while_under_way_is_cancelled_once_queued(fake: FakeComfyUI, txt2img: TabSpec,
                                                                     tmp_path: Path, threads: None) -> None:
    fake.step_delay = 0.05
    queued: list[Job] = []

    class SlowToSubmit(ComfyClient):
        def submit(self, *args: Any, **kwargs: Any) -> Job:
            time.sleep(0.3)  # an upload that takes a while
            queued.append(super().submit(*args, **kwargs))
            return queued[-1]

    async def main() -> None:
        client = AsyncComfyClient(SlowToSubmit(fake.url, output_dir=tmp_path))
        task = asyncio.create_task(client.submit(txt2img, SLOW))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()  # lets the submit, then its cancel, finish first
        assert len(queued) == 1
        client.sync.close()

    run(main)
    with pytest.raises(JobCancelled):
        queued[0].result(timeout=5)


def test_leaving_the_events_early_does_not_cancel(fake: FakeComfyUI, invert: TabSpec, tmp_path: Path,
                                                  threads: None) -> None:
    fake.node_delay = 0.05

    async def main() -> Any:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            job = await client.submit(invert, {"image": png_bytes((1, 1, 1))})
            async for _ in job.events():
                break
            return await job.result()

    assert run(main).images


# ---- isolation ----------------------------------------------------------------------------------


def test_two_concurrent_jobs_see_only_their_own_events_and_outputs(fake: FakeComfyUI, invert: TabSpec,
                                                                   tmp_path: Path, threads: None) -> None:
    fake.node_delay = 0.02

    async def one(client: AsyncComfyClient, colour: tuple[int, int, int]) -> tuple[AsyncJob, list[Any], Any]:
        job = await client.submit(invert, {"image": png_bytes(colour)})
        events = [e async for e in job.events()]
        return job, events, await job.result()

    async def main() -> list[tuple[AsyncJob, list[Any], Any]]:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            return await asyncio.gather(one(client, (0, 0, 0)), one(client, (100, 100, 100)))

    (job_a, events_a, result_a), (job_b, events_b, result_b) = run(main)
    assert job_a.prompt_id != job_b.prompt_id and result_a.prompt_id == job_a.prompt_id
    assert pixels(result_a.images[0].path) == (255, 255, 255) and pixels(result_b.images[0].path) == (155, 155, 155)
    outputs_a = [e.output for e in events_a if isinstance(e, OutputReady)]
    outputs_b = [e.output for e in events_b if isinstance(e, OutputReady)]
    assert len(outputs_a) == len(outputs_b) == 1 and outputs_a != outputs_b
    assert what(events_a) == what(events_b)


# ---- map ------------------------------------------------------------------------------------------


def test_map_awaited_keeps_order_and_failures(fake: FakeComfyUI, empty_image: TabSpec, tmp_path: Path,
                                              threads: None) -> None:
    async def main() -> list[Any]:
        async with AsyncComfyClient(fake.url, output_dir=tmp_path) as client:
            return await client.map(empty_image, [{"width": 8}, {"width": 16384, "height": 16384}, {"width": 9}])

    items = run(main)
    assert [i.index for i in items] == [0, 1, 2] and [i.ok for i in items] == [True, False, True]
    assert isinstance(items[1].error, ExecutionFailed)
    assert Image.open(items[2].result.images[0].path).size == (9, 8)


def test_cancelling_an_awaited_map_cancels_its_jobs_and_sends_no_more(fake: FakeComfyUI, txt2img: TabSpec,
                                                                      tmp_path: Path, threads: None) -> None:
    fake.step_delay = 0.05

    async def main() -> None:
        pool = AsyncComfyPool(ComfyPool([ComfyClient(fake.url, output_dir=tmp_path)], health_interval=3600))
        task = asyncio.create_task(pool.map(txt2img, [SLOW] * 5, concurrency=2))
        while len(fake.prompts) < 2:  # two in flight: one running, one waiting
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        pool.sync.close()

    run(main)
    wait_for(lambda: fake.queue_remaining == 0, timeout=3)
    assert len(fake.prompts) == 2


def test_options_go_with_a_url_not_with_a_client_already_made(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="options are for a new ComfyClient; this one was made already"):
        AsyncComfyClient(ComfyClient("http://127.0.0.1:1"), timeout=3)
    assert AsyncComfyClient("http://127.0.0.1:1", timeout=3).sync.timeout == 3
