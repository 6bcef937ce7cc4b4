"""Jobs across a ComfyUI restart, on the test double: a restarted double has an empty queue and
history, as ComfyUI does. (A socket that stays open but silent is in test_job.py, replayed.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import Resubmitted, Started
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.errors import ServerError
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow
from tests.fake_comfyui import FakeComfyUI
from tests.harness import wait_for
from tests.test_fake_comfyui import slow_chain

SENT_AGAIN = "ComfyUI restarted and lost your job; it was sent again"


@pytest.fixture()
def slow(fake: FakeComfyUI) -> TabSpec:
    fake.node_delay = 0.2  # EmptyImage, two blurs and a save: about 0.8 s a run
    return tab_from_schema(Workflow("slow", Path("slow.json"), slow_chain(7)), {}, None)


@pytest.fixture()
def client(fake: FakeComfyUI, tmp_path: Path) -> Iterator[ComfyClient]:
    with ComfyClient(fake.url, output_dir=tmp_path, poll_interval=0.05) as client:
        yield client


def one_running_one_waiting(fake: FakeComfyUI, client: ComfyClient, tab: TabSpec) -> tuple[Job, Job]:
    running, waiting = (client.submit(tab, timeout=15) for _ in range(2))
    wait_for(lambda: running.prompt_id in fake._running and fake.queue_remaining == 2)
    return running, waiting


def assert_lost_while_running(job: Job, how: str) -> None:
    with pytest.raises(ServerError) as caught:
        job.result(15)
    assert str(caught.value) == f"ComfyUI at {job.client.url} {how}; nothing was saved. Run it again."


def assert_sent_again_and_done(job: Job) -> None:
    events = [e for e in job.events() if isinstance(e, (Resubmitted, Started))]
    assert job.result(15).images and events == [Resubmitted(job.client.url, SENT_AGAIN), Started()]


def test_a_quick_restart_sends_the_waiting_job_again(fake: FakeComfyUI, client: ComfyClient, slow: TabSpec) -> None:
    running, waiting = one_running_one_waiting(fake, client, slow)
    fake.restart()  # the sockets reopen at once, on a server that knows neither prompt
    assert_sent_again_and_done(waiting)
    assert_lost_while_running(running, "lost this job while running it (it restarted, or the run was removed "
                                       "from its queue)")
    assert [p["prompt_id"] for p in fake.prompts] == [running.prompt_id, waiting.prompt_id, waiting.prompt_id]


def test_after_a_restart_that_refuses_sockets_jobs_are_polled(fake: FakeComfyUI, client: ComfyClient,
                                                              slow: TabSpec) -> None:
    running, waiting = one_running_one_waiting(fake, client, slow)
    fake.refuse_ws = True  # a proxy in front lets no WebSocket through any more; HTTP still works
    connections = fake.ws_connections
    fake.restart()
    started = time.monotonic()
    assert_sent_again_and_done(waiting)  # followed by polling from the first refusal on
    assert_lost_while_running(running, "lost this job while running it (it restarted, or the run was removed "
                                       "from its queue)")
    assert time.monotonic() - started < 8 and fake.ws_connections == connections


def test_a_restart_that_takes_a_while_is_waited_for(fake: FakeComfyUI, client: ComfyClient, slow: TabSpec) -> None:
    running, waiting = one_running_one_waiting(fake, client, slow)
    fake.restart(down_for=1.0)  # the socket cannot be reopened, and HTTP is refused for a second
    assert_sent_again_and_done(waiting)
    assert_lost_while_running(running, "stopped responding while running this job")


def test_the_page_says_the_job_was_sent_again() -> None:
    from comfyui_gradio.web.widgets import describe

    assert describe(Resubmitted("http://a.test", SENT_AGAIN)) == f"🔁 {SENT_AGAIN}"
