"""Followers run in steps on a few worker threads (comfy/follow.py), and the hub's shared queue read."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from comfyui_gradio.comfy.follow import Clock, Follower, Sleep, Steps, Wait, Workers
from comfyui_gradio.comfy.hub import SocketHub
from comfyui_gradio.errors import ServerUnavailable
from tests.harness import wait_for


def recorder(log: list[Any], waits: list[Wait | Sleep]) -> Steps:
    """Yields each of ``waits`` in turn and notes what came back: an item, "empty" (timed out) or "slept"."""
    for request in waits:
        try:
            got = yield request
            log.append("slept" if isinstance(request, Sleep) else got)
        except queue.Empty:
            log.append("empty")
    log.append("end")


def test_items_resume_a_waiting_follower_in_order_and_a_timeout_raises_empty() -> None:
    log: list[Any] = []
    follower = Follower(recorder(log, [Wait(None), Wait(None), Wait(0.05), Wait(None)]), lambda: workers)
    workers = Workers("t")
    follower.start()
    follower.put("a")
    follower.put("b")
    wait_for(lambda: log == ["a", "b", "empty"])  # nothing for 0.05 s: queue.Empty, as queue.get would raise
    follower.put("c")
    wait_for(lambda: follower.ended)
    assert log == ["a", "b", "empty", "c", "end"]


def test_a_sleeping_follower_keeps_its_items_until_the_time_has_passed() -> None:
    log: list[Any] = []
    follower = Follower(recorder(log, [Sleep(0.2), Wait(None)]), lambda: Workers("t"))
    follower.start()
    follower.put("early")
    time.sleep(0.1)
    assert log == []  # still asleep: the item did not wake it
    wait_for(lambda: follower.ended)
    assert log == ["slept", "early", "end"]


def test_a_zero_wait_with_nothing_in_the_inbox_times_out_at_once() -> None:
    log: list[Any] = []
    follower = Follower(recorder(log, [Wait(0.0), Wait(0)]), lambda: Workers("t"))
    follower.start()
    wait_for(lambda: follower.ended)
    assert log == ["empty", "empty", "end"]


def test_a_followers_steps_never_overlap_though_items_come_from_many_threads() -> None:
    inside, overlaps, seen = [0], [0], []

    def steps() -> Steps:
        while len(seen) < 400:
            item = yield Wait(None)
            inside[0] += 1
            overlaps[0] += inside[0] > 1
            time.sleep(0.0001)
            seen.append(item)
            inside[0] -= 1

    workers = Workers("t", size=8)
    follower = Follower(steps(), lambda: workers)
    follower.start()
    putters = [threading.Thread(target=lambda n=n: [follower.put((n, i)) for i in range(100)]) for n in range(4)]
    for thread in putters:
        thread.start()
    wait_for(lambda: follower.ended)
    assert overlaps == [0] and sorted(seen) == sorted((n, i) for n in range(4) for i in range(100))
    assert [i for n, i in seen if n == 0] == list(range(100))  # one putter's items in its order


def test_a_follower_that_ended_drops_what_is_put_later() -> None:
    follower = Follower(recorder([], []), lambda: Workers("t"))
    follower.start()
    wait_for(lambda: follower.ended)
    follower.put("late")
    with pytest.raises(queue.Empty):
        follower.get_nowait()


def test_hundreds_of_waiting_followers_hold_no_thread() -> None:
    workers = Workers("many", size=4)
    logs: list[list[Any]] = [[] for _ in range(300)]
    followers = [Follower(recorder(log, [Wait(30.0)]), lambda: workers) for log in logs]
    before = threading.active_count()
    for follower in followers:
        follower.start()
    time.sleep(0.2)
    assert threading.active_count() - before <= 4 + 1  # the workers and the clock, not one per follower
    for index, follower in enumerate(followers):
        follower.put(index)
    wait_for(lambda: all(f.ended for f in followers))
    assert [log for log in logs] == [[index, "end"] for index in range(300)]
    assert workers.threads <= 4


def test_workers_run_at_most_size_calls_at_once_and_their_idle_threads_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Workers, "idle_exit", 0.1)
    workers = Workers("bounded", size=3)
    running, most, done = [0], [0], []
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
            done.append(n)

    for n in range(30):
        workers.submit(lambda n=n: call(n))
    wait_for(lambda: len(done) == 30)
    assert most[0] == 3 and sorted(done) == list(range(30))
    wait_for(lambda: workers.threads == 0)
    workers.submit(lambda: done.append("after"))  # a new thread for the next call
    wait_for(lambda: done[-1] == "after")


def test_a_failing_call_does_not_take_a_worker_away() -> None:
    workers = Workers("failing", size=1)
    done: list[str] = []
    workers.submit(lambda: 1 / 0)
    workers.submit(lambda: done.append("next"))
    wait_for(lambda: done == ["next"])


def test_the_clock_calls_in_time_order_whatever_the_order_of_asking() -> None:
    clock, called = Clock(), []
    now = time.monotonic()
    for delay in (0.15, 0.05, 0.1):
        clock.call_at(now + delay, lambda d=delay: called.append(d))
    wait_for(lambda: len(called) == 3)
    assert called == [0.05, 0.1, 0.15]


# ---- the hub's one queue read for all its jobs -------------------------------------------------------

class CountingServer:
    url = "http://comfy.test"

    def __init__(self) -> None:
        self.reads = 0
        self.down = False
        self.release = threading.Event()
        self.release.set()

    def queue_state(self) -> dict[str, list[Any]]:
        self.reads += 1
        self.release.wait(5)
        if self.down:
            raise ServerUnavailable(self.url, "refused")
        return {"queue_running": [], "queue_pending": [[self.reads, "p", {}, {}, []]]}


def test_jobs_asking_at_once_share_one_read_and_a_later_question_gets_a_new_one() -> None:
    server = CountingServer()
    hub = SocketHub(server)  # type: ignore[arg-type]
    since = time.monotonic()
    server.release.clear()
    answers: list[dict[str, Any]] = []
    askers = [threading.Thread(target=lambda: answers.append(hub.queue_state(since))) for _ in range(20)]
    for thread in askers:
        thread.start()
    wait_for(lambda: server.reads == 1)
    server.release.set()
    for thread in askers:
        thread.join(5)
    assert server.reads == 1 and len(answers) == 20 and all(a["queue_pending"][0][0] == 1 for a in answers)
    assert hub.queue_state(since)["queue_pending"][0][0] == 1  # that read began after `since`: still good
    assert hub.queue_state(time.monotonic())["queue_pending"][0][0] == 2 and server.reads == 2


def test_a_server_that_does_not_answer_is_asked_once_for_all_the_jobs_asking() -> None:
    server = CountingServer()
    server.down = True
    hub = SocketHub(server)  # type: ignore[arg-type]
    since = time.monotonic()
    errors = []
    for _ in range(5):
        with pytest.raises(ServerUnavailable) as caught:
            hub.queue_state(since)
        errors.append(str(caught.value))
    assert server.reads == 1 and len(set(errors)) == 1 and "refused" in errors[0]
    server.down = False
    assert hub.queue_state(time.monotonic())["queue_pending"][0][0] == 2  # asked again once it is later
