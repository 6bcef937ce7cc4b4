"""A pool of ComfyUI test doubles: routing by estimated wait, models, failover and retry, end to end.

The same rules on replayed servers, fast and on a hand-moved clock, are in ``test_job_routing.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import Started
from comfyui_gradio.errors import ServerError
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.paths import WORKFLOWS
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port, wait_for

CKPT = "tiny-random-sd15.safetensors"
FAST = {"steps": 1, "width": 64, "height": 64, "checkpoint": CKPT}
SLOW = {"steps": 40, "width": 64, "height": 64, "checkpoint": CKPT}


@pytest.fixture()
def txt2img(catalog: Catalog) -> TabSpec:
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


@pytest.fixture()
def two() -> Iterator[tuple[FakeComfyUI, FakeComfyUI]]:
    with FakeComfyUI() as a, FakeComfyUI() as b:
        yield a, b


def pool_of(*servers: FakeComfyUI, tmp_path: Path, urls: list[str] | None = None) -> ComfyPool:
    clients = [ComfyClient(url, output_dir=tmp_path, poll_interval=0.05)
               for url in urls or [s.url for s in servers]]
    return ComfyPool(clients, health_interval=3600).start()


def test_a_busy_server_gets_no_new_work_while_another_is_idle(two, txt2img: TabSpec, tmp_path: Path) -> None:
    a, b = two
    a.step_delay = b.step_delay = 0.1
    pool = pool_of(a, b, tmp_path=tmp_path)
    slow = pool.submit(txt2img, SLOW)
    wait_for(lambda: len(a.prompts) == 1)
    for _ in range(3):
        pool.run(txt2img, FAST)  # each goes to b: a is still busy with the slow job
    assert (len(a.prompts), len(b.prompts)) == (1, 3)
    slow.cancel()
    pool.close()


def test_a_job_whose_result_has_come_no_longer_counts_on_its_server(two, txt2img: TabSpec, tmp_path: Path) -> None:
    pool = pool_of(*two, tmp_path=tmp_path)
    finished = pool._finished

    def slowly(job: object, ok: bool) -> None:  # a pool's bookkeeping that takes its time
        time.sleep(0.05)
        finished(job, ok)  # type: ignore[arg-type]

    pool._finished = slowly  # type: ignore[method-assign]
    try:
        seen = []
        for _ in range(5):  # the pool's count is updated before the result wakes its caller
            pool.run(txt2img, FAST)
            seen.append([s.in_flight for s in pool.statuses()])
        assert seen == [[0, 0]] * 5
    finally:
        pool.close()


def test_jobs_from_other_clients_count_as_load(two, txt2img: TabSpec, tmp_path: Path) -> None:
    a, b = two
    a.step_delay = 0.2
    outsider = ComfyClient(a.url, output_dir=tmp_path)
    foreign = outsider.submit(txt2img, SLOW)  # someone else's job, sent straight to a
    wait_for(lambda: len(a.prompts) == 1)
    pool = pool_of(a, b, tmp_path=tmp_path)
    assert pool.submit(txt2img, FAST).client.url == b.url
    foreign.cancel()
    pool.close()


def running_ids(server: FakeComfyUI) -> list[str]:
    return [item[1] for item in httpx.get(f"{server.url}/queue").json()["queue_running"]]


def test_a_burst_avoids_the_server_busy_with_someone_elses_job(two, txt2img: TabSpec, tmp_path: Path) -> None:
    a, b = two
    pool = pool_of(a, b, tmp_path=tmp_path)
    pool.run(txt2img, FAST)  # the app has run this workflow before: it knows it is quick
    a.step_delay = 0.5
    foreign = ComfyClient(a.url, output_dir=tmp_path).submit(txt2img, SLOW)  # someone else's, straight to a
    wait_for(lambda: running_ids(a) == [foreign.prompt_id])
    jobs = [pool.submit(txt2img, FAST) for _ in range(4)]  # all in flight at once
    assert [job.client.url for job in jobs] == [b.url] * 4
    assert all(job.result(30).server == b.url for job in jobs)
    foreign.cancel()
    pool.close()


def test_a_job_goes_where_its_model_is(txt2img: TabSpec, tmp_path: Path) -> None:
    with FakeComfyUI(checkpoints=["other.safetensors"]) as a, FakeComfyUI() as b:
        pool = pool_of(a, b, tmp_path=tmp_path)
        for _ in range(3):
            assert pool.run(txt2img, FAST).server == b.url
        assert a.prompts == []
        pool.close()


def test_waiting_jobs_move_when_their_server_dies(txt2img: TabSpec, tmp_path: Path) -> None:
    port_b = free_port()
    a = FakeComfyUI().start()
    pool = pool_of(a, tmp_path=tmp_path, urls=[a.url, f"http://127.0.0.1:{port_b}"])  # b is down at first
    a.step_delay = 0.2
    running = pool.submit(txt2img, SLOW)
    waiting = pool.submit(txt2img, FAST)
    wait_for(lambda: len(a.prompts) == 2)
    with FakeComfyUI(port=port_b) as b:
        a.crash()
        result = waiting.result(30)
        assert result.server == b.url and result.images
        with pytest.raises(ServerError) as caught:
            running.result(30)
        assert str(caught.value) == (f"ComfyUI at {a.url} stopped responding while running this job; nothing "
                                     "was saved. Run it again.")
        assert [s.healthy for s in pool.statuses()] == [False, True]
    pool.close()


def test_a_running_job_is_retried_once_when_asked(txt2img: TabSpec, tmp_path: Path) -> None:
    port_b = free_port()
    a = FakeComfyUI().start()
    pool = pool_of(a, tmp_path=tmp_path, urls=[a.url, f"http://127.0.0.1:{port_b}"])
    a.step_delay = 0.2
    job = pool.submit(txt2img, SLOW | {"steps": 10}, retry=True)
    assert next(e for e in job.events() if isinstance(e, Started)) == Started()  # running on a now
    with FakeComfyUI(port=port_b) as b:
        b.step_delay = 0.01
        a.crash()
        assert job.result(30).server == b.url
    pool.close()


def test_all_servers_down_says_so(tmp_path: Path, txt2img: TabSpec) -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    pool = ComfyPool([ComfyClient(u, output_dir=tmp_path) for u in urls], health_interval=3600).start()
    with pytest.raises(ServerError) as caught:
        pool.submit(txt2img, FAST)
    assert str(caught.value).startswith(f"Cannot reach ComfyUI at {urls[0]}, {urls[1]} (no server answers)")
    pool.close()


def test_simultaneous_submits_spread_over_the_servers(two, txt2img: TabSpec, tmp_path: Path) -> None:
    import concurrent.futures

    a, b = two
    a.step_delay = b.step_delay = 0.05
    pool = pool_of(a, b, tmp_path=tmp_path)
    with concurrent.futures.ThreadPoolExecutor(8) as executor:
        jobs = list(executor.map(lambda _: pool.submit(txt2img, {**FAST, "steps": 4}), range(8)))
    assert sorted([len(a.prompts), len(b.prompts)]) == [4, 4]
    for job in jobs:
        job.result(30)
    pool.close()


def test_the_pool_runs_a_workflow_file_like_a_client(two, tmp_path: Path) -> None:
    from comfyui_gradio import ComfyPool as Exported

    pool = pool_of(*two, tmp_path=tmp_path)
    result = pool.run(WORKFLOWS / "txt2img.json", {**FAST, "prompt": "from a path"})
    assert Exported is ComfyPool and result.server in (two[0].url, two[1].url)
    assert [o.output_name for o in result.outputs] == ["image"] and result.images[0].path.is_file()
    assert set(result.seeds) == {"seed"}
    pool.close()
