"""Where a trivial job's milliseconds go: ``ComfyClient.run`` and the reference client, step by step.

    COMFYUI_URL=http://127.0.0.1:8191 python -m benchmarks.trivial_breakdown --runs 30

Each step's time is taken from the start of the call by wrapping the methods it goes through (nothing in
the package is changed; the wrappers cost a few microseconds). For every step the median over ``--runs``
runs (after two warm-up runs) is printed, ours and the reference's alternated. Steps:

- ours: ``prepare`` done, ``hub.join`` done, ``POST /prompt`` answered, first socket message routed by the
  hub's reader thread, ``executing`` null routed, the job thread handling it (the wake-up), each ``GET
  /queue`` the job made, ``GET /history`` answered, ``/view`` answered, the file written, ``result()``
  returned;
- the reference: ``POST /prompt`` answered, first message, ``executing`` null, ``GET /history``, ``/view``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import httpx

from comfyui_gradio.comfy import client as client_module
from comfyui_gradio.comfy import collect as collect_module
from comfyui_gradio.comfy import job as job_module
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import MessageType, WireMessage
from comfyui_gradio.comfy.hub import SocketHub

from .common import real_urls
from .trivial import TRIVIAL, _prompt, _values

_marks: list[tuple[str, float]] = []  # (step, perf_counter) of the run being measured
_ours_running = False


def _mark(step: str) -> None:
    _marks.append((step, time.perf_counter()))


def _after(owner: Any, name: str, step: str | Callable[..., str | None]) -> None:
    """Wrap ``owner.name`` so that a mark is made when it returns (``step`` may name it from the call)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        label = step(*args, **kwargs) if callable(step) else step
        if label:
            _mark(label)
        return result
    setattr(owner, name, wrapper)


def _routed(hub: SocketHub, item: Any) -> str | None:
    if not _ours_running:
        return None  # the hub hears the server's broadcasts while the reference runs too
    if not any(s == "first ws message" for s, _ in _marks):
        return "first ws message"
    if isinstance(item, WireMessage) and item.type is MessageType.EXECUTING and item.node is None:
        return "executing null routed"
    return None


def _handled(job: Any, item: Any) -> str | None:
    if isinstance(item, WireMessage) and item.type is MessageType.EXECUTING and item.node is None:
        return "job thread handled it"
    return None


def _instrument() -> None:
    _after(client_module, "prepare", "prepare")
    _after(SocketHub, "join", "hub.join")
    _after(ComfyClient, "post_prompt", "POST /prompt")
    _after(SocketHub, "_route", _routed)
    _after(job_module.Job, "_handle", _handled)
    _after(ComfyClient, "queue_state", "GET /queue (job thread)")
    _after(ComfyClient, "history", "GET /history")
    _after(ComfyClient, "download", "GET /view")
    _after(collect_module, "_image_suffix", "suffix sniffed")
    _after(job_module, "collect_outputs", "file written")
    _after(job_module.Job, "_collect", "RunResult made")


class _TimedReference:
    """``benchmarks.reference.ReferenceClient.run``, with a mark after each step."""

    def __init__(self, url: str) -> None:
        from .reference import ReferenceClient
        self.inner = ReferenceClient(url)

    def run(self, prompt: dict[str, Any]) -> None:
        ref = self.inner
        answer = ref.http.post("/prompt", json={"prompt": prompt, "client_id": ref.client_id}).json()
        _mark("POST /prompt")
        prompt_id, first = answer["prompt_id"], True
        while True:
            frame = ref.ws.recv()
            if first:
                _mark("first ws message")
                first = False
            if isinstance(frame, str):
                message = json.loads(frame)
                data = message.get("data", {})
                if message["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    _mark("executing null received")
                    break
        history = ref.http.get(f"/history/{prompt_id}").json()[prompt_id]
        _mark("GET /history")
        for output in history["outputs"].values():
            for image in output.get("images", []):
                ref.http.get("/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                              "type": image["type"]})
                _mark("GET /view")


def _timed(call: Callable[[], object]) -> list[tuple[str, float]]:
    _marks.clear()
    start = time.perf_counter()
    call()
    _mark("returned")
    counts: dict[str, int] = defaultdict(int)
    steps = []
    for step, at in _marks:
        counts[step] += 1
        steps.append((step if counts[step] == 1 else f"{step} #{counts[step]}", (at - start) * 1000))
    return steps


def _print(name: str, runs: list[list[tuple[str, float]]]) -> None:
    """Each step's median time from the call, and the median of its time after the step before it
    in the same run (steps in the order of their medians)."""
    at: dict[str, list[float]] = defaultdict(list)
    after: dict[str, list[float]] = defaultdict(list)
    for steps in runs:
        previous = 0.0
        for step, ms in sorted(steps, key=lambda s: s[1]):
            at[step].append(ms)
            after[step].append(ms - previous)
            previous = ms
    print(f"\n{name} ({len(runs)} runs; ms, medians; 'in n' when a step is not in every run)")
    print(f"  {'step':<28} {'from call':>9} {'after previous':>15}")
    for step in sorted(at, key=lambda s: statistics.median(at[s])):
        seen = "" if len(at[step]) == len(runs) else f"  (in {len(at[step])})"
        print(f"  {step:<28} {statistics.median(at[step]):9.2f} {statistics.median(after[step]):15.2f}{seen}")


def main() -> None:
    global _ours_running
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    urls = real_urls()
    if not urls:
        raise SystemExit("Set COMFYUI_URL to a real ComfyUI (this breakdown is about one)")
    _instrument()
    httpx.get(urls[0] + "/queue", timeout=10)
    reference = _TimedReference(urls[0])
    with tempfile.TemporaryDirectory() as tmp, ComfyClient(urls[0], output_dir=Path(tmp)) as ours:
        tab = ours.load(TRIVIAL)
        ours_runs, reference_runs = [], []
        for i in range(args.runs + 2):
            _ours_running = True
            a = _timed(lambda: ours.run(tab, _values()))
            _ours_running = False
            b = _timed(lambda: reference.run(_prompt()))
            if i >= 2:
                ours_runs.append(a)
                reference_runs.append(b)
    reference.inner.close()
    _print("ComfyClient.run", ours_runs)
    _print("reference", reference_runs)
    totals = [r[-1][1] - b[-1][1] for r, b in zip(ours_runs, reference_runs)]
    print(f"\nrun() minus reference, median of pairs: {statistics.median(totals):.2f} ms")


if __name__ == "__main__":
    main()
