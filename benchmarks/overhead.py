"""1. Overhead of the backend and of the app over a minimal client, on a ~0.4 s txt2img job.

a) ``ComfyClient.run`` vs ``ReferenceClient.run`` on the same server, same prompt but the seed.
b) the app through ``gradio_client.predict`` vs (reference time + the floor of a bare Gradio app that
   returns a ready image through ``gradio_client``); all measured in the same rounds.

Variants are interleaved, each round in a rotated order; ratios and differences are taken within a
round, then their median is reported. CPU columns are the mean CPU time per call of each process
(from /proc, 10 ms ticks, so only meaningful summed over many calls).
"""

from __future__ import annotations

import itertools
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from gradio_client import Client

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.forms.prepare import prepare
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec

from .common import (WORKFLOWS, Server, Target, comfy_servers, cpu_seconds, job_values, median, ms, p90, spawn,
                     stop, table)
from .reference import ReferenceClient

_seeds = itertools.count(random.randrange(2**30))


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(default_factory=dict)  # per variant, one per round
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # per variant, per process: total s

    def paired(self, name: str, base: str) -> tuple[float, float]:
        """(median ratio, median difference in s) of ``name`` over ``base``, round by round."""
        pairs = list(zip(self.seconds[name], self.seconds[base]))
        return median([a / b for a, b in pairs]), median([a - b for a, b in pairs])

    def cpu_ms(self, name: str, process: str) -> float:
        return ms(self.cpu[name][process] / len(self.seconds[name]))


def rounds_of(variants: dict[str, Callable[[], object]], rounds: int, pids: dict[str, int],
              warmup: int = 2) -> Timings:
    """Time each variant once per round, in an order rotated every round."""
    names = list(variants)
    for name in names * warmup:
        variants[name]()
    timings = Timings({n: [] for n in names}, {n: dict.fromkeys(pids, 0.0) for n in names})
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            cpu_before = {p: cpu_seconds(pid) for p, pid in pids.items()}
            start = time.perf_counter()
            variants[name]()
            timings.seconds[name].append(time.perf_counter() - start)
            for p, pid in pids.items():
                timings.cpu[name][p] += cpu_seconds(pid) - cpu_before[p]
    return timings


def _values(url: str) -> dict:
    values = job_values(url, next(_seeds))
    values.pop("seed_randomize")
    return values


def _prompt(tab: TabSpec, url: str) -> dict:
    return prepare(tab, _values(url)).prompt


def _pids(server: Server, **others: int) -> dict[str, int]:
    return {"bench": os.getpid(), **others, **({"fake": server.pid} if server.pid else {})}


def client_overhead(server: Server, rounds: int) -> Target:
    url = server.url
    with ComfyClient(url, output_dir=tempfile.mkdtemp(prefix="bench_out_")) as client:
        tab = load_tab(WORKFLOWS / "txt2img.json", client.catalog())
        ref, ref_fresh = ReferenceClient(url), ReferenceClient(url, ws_per_job=True)
        variants: dict[str, Callable[[], object]] = {
            "reference (one socket, as the example)": lambda: ref.run(_prompt(tab, url)),
            "reference, one socket per job": lambda: ref_fresh.run(_prompt(tab, url)),
            "ComfyClient.run(TabSpec) (the app's call)": lambda: client.run(tab, _values(url)),
            "ComfyClient.run('txt2img.json') (README's call)":
                lambda: client.run(WORKFLOWS / "txt2img.json", _values(url)),
        }
        pids = _pids(server)
        timings = rounds_of(variants, rounds, pids)
        ref.close()
        ref_fresh.close()
    base = next(iter(variants))
    rows = []
    for name, xs in timings.seconds.items():
        ratio, diff = timings.paired(name, base)
        rows.append([name, ms(median(xs)), ms(p90(xs)), round(ratio, 3), ms(diff),
                     *(timings.cpu_ms(name, p) for p in pids)])
    table(f"1a. client overhead: txt2img ~0.4 s job, {rounds} interleaved rounds",
          ["variant", "median ms", "p90 ms", "ratio to reference", "extra ms",
           *(f"CPU ms/run: {p}" for p in pids)], rows)
    ratio, diff = timings.paired("ComfyClient.run(TabSpec) (the app's call)", base)
    return Target("1a ComfyClient.run vs reference client", "ratio <= 1.10", f"{ratio:.3f} ({ms(diff):+} ms)",
                  ratio <= 1.10)


def app_overhead(server: Server, rounds: int) -> Target:
    url = server.url
    app_proc, app_url = spawn("app", "--comfyui-url", url, "--workflows", str(WORKFLOWS))
    floor_proc, floor_url = spawn("floor")
    try:
        app, floor = Client(app_url, verbose=False), Client(floor_url, verbose=False)
        tab = load_tab(WORKFLOWS / "txt2img.json", ComfyClient(url).catalog())
        ref = ReferenceClient(url)
        job = app.submit(**job_values(url, next(_seeds)), api_name="/txt2img")
        job.result()
        updates = len(job.outputs())  # how many updates the app streams for one run
        shaped = {k: v for k, v in job_values(url, 0).items() if k != "checkpoint"}
        variants: dict[str, Callable[[], object]] = {
            "reference client": lambda: ref.run(_prompt(tab, url)),
            "floor: bare Gradio app returning a ready image": lambda: floor.predict("x", api_name="/floor"),
            f"bare Gradio app shaped like the tab, {updates} streamed updates, no work":
                lambda: floor.predict(**shaped, negative_prompt="", cfg=8, sampler="euler", checkpoint="c",
                                      updates=updates - 2, api_name="/shaped"),
            "the app: gradio_client.predict('/txt2img')":
                lambda: app.predict(**job_values(url, next(_seeds)), api_name="/txt2img"),
        }
        pids = _pids(server, app=app_proc.pid, floor=floor_proc.pid)
        timings = rounds_of(variants, rounds, pids)
        ref.close()
    finally:
        stop(app_proc)
        stop(floor_proc)
    ref_name, floor_name, shaped_name, app_name = variants
    s = timings.seconds
    added = [a - (r + f) for a, r, f in zip(s[app_name], s[ref_name], s[floor_name])]
    shaped_added = [x - f for x, f in zip(s[shaped_name], s[floor_name])]
    rows = [[name, ms(median(xs)), ms(p90(xs)), *(timings.cpu_ms(name, p) for p in pids)]
            for name, xs in s.items()]
    blank = [""] * len(pids)
    rows.append(["**app − (reference + floor)**, per round", ms(median(added)), ms(p90(added)), *blank])
    rows.append(["shaped − floor: Gradio's cost of streaming that many updates", ms(median(shaped_added)),
                 ms(p90(shaped_added)), *blank])
    table(f"1b. end to end through gradio_client: txt2img ~0.4 s job, {rounds} interleaved rounds",
          ["variant", "median ms", "p90 ms", *(f"CPU ms/call: {p}" for p in pids)], rows)
    return Target("1b app adds over reference + floor", "<= 30 ms",
                  f"{ms(median(added))} ms (p90 {ms(p90(added))})", median(added) <= 0.030)


def run(rounds: int | None = None) -> list[Target]:
    with comfy_servers(1) as servers:
        return [client_overhead(servers[0], rounds or 15), app_overhead(servers[0], rounds or 15)]
