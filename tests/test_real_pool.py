"""The pool on two real ComfyUI servers (opt in, model-free):
``COMFYUI_URL=http://127.0.0.1:8200,http://127.0.0.1:8201 python -m pytest -m real -s tests/test_real_pool.py``.

The issue's case: while server A runs someone else's long job, a burst of small jobs sent through the
pool must all go to the idle server B. The long job is a chain of big ``ImageBlur`` s on an
``EmptyImage`` (about 25 s on the idle 2-core CPU this was written on; more under load), posted
straight to A as another client would, and interrupted once the burst is done.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.pool import ComfyPool
from tests.harness import wait_for
from tests.paths import WORKFLOWS
from tests.replay import png_bytes

pytestmark = pytest.mark.real
URLS = [u.strip().rstrip("/") for u in os.environ.get("COMFYUI_URL", "").split(",") if u.strip()]
LONG_SIZE, LONG_RADIUS, LONG_BLURS = 1280, 31, 9  # each blur about 2.8 s on 2 idle CPU cores


@pytest.fixture()
def two_urls() -> list[str]:
    if len(URLS) < 2:
        pytest.skip("set COMFYUI_URL to two real servers, e.g. COMFYUI_URL=http://127.0.0.1:8200,"
                    "http://127.0.0.1:8201")
    return URLS[:2]


@pytest.fixture()
def pool(two_urls: list[str], tmp_path: Path) -> Iterator[ComfyPool]:
    pool = ComfyPool([ComfyClient(u, output_dir=tmp_path) for u in two_urls]).start()  # as the app makes it
    yield pool
    pool.close()


def post_long_job(url: str) -> str:
    """Queue a long model-free prompt on ``url`` the way another client would; its prompt id."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": LONG_SIZE, "height": LONG_SIZE, "batch_size": 1,
                                                     "color": random.randrange(2**24)}},  # never cached
        **{str(n): {"class_type": "ImageBlur", "inputs": {"image": [str(n - 1), 0], "blur_radius": LONG_RADIUS,
                                                          "sigma": 5.0}} for n in range(2, LONG_BLURS + 2)},
        "99": {"class_type": "PreviewImage", "inputs": {"images": [str(LONG_BLURS + 1), 0]}},
    }
    prompt_id = str(uuid.uuid4())
    response = httpx.post(f"{url}/prompt", json={"prompt": prompt, "prompt_id": prompt_id,
                                                 "client_id": "someone-else"}, timeout=10)
    assert response.status_code == 200, response.text
    return prompt_id


def running(url: str) -> list[str]:
    return [item[1] for item in httpx.get(f"{url}/queue", timeout=10).json()["queue_running"]]


def test_a_burst_goes_to_the_idle_server_while_the_other_runs_someone_elses_long_job(
        pool: ComfyPool, two_urls: list[str]) -> None:
    a, b = two_urls
    wait_for(lambda: running(a) == [] and running(b) == [], timeout=120)
    pool.run(WORKFLOWS / "invert.json", {"image": png_bytes((1, 2, 3))})  # the app knows this one is quick
    foreign = post_long_job(a)
    try:
        wait_for(lambda: running(a) == [foreign], timeout=30)
        began = time.monotonic()
        jobs = [pool.submit(WORKFLOWS / "invert.json", {"image": png_bytes((i * 40, 90, 200), (64, 64))})
                for i in range(4)]  # four people at once
        sent_to = [job.client.url for job in jobs]
        results = [job.result(120) for job in jobs]
        burst = time.monotonic() - began
        still_running = running(a) == [foreign]
    finally:
        httpx.post(f"{a}/interrupt", json={"prompt_id": foreign}, timeout=10)
    print(f"\nburst of 4 (typical {pool.durations.typical('invert'):.2f} s each) sent to "
          f"{[u.rsplit(':', 1)[-1] for u in sent_to]}, done in {burst:.2f} s; someone else's job on {a} still "
          f"running then: {still_running}")
    assert sent_to == [b] * 4 and [r.server for r in results] == [b] * 4
    assert still_running  # the burst was over before the long job: it was worth avoiding
