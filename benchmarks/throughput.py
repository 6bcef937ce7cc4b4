"""2. Throughput: jobs per second through ``ComfyPool`` with 1 and 2 servers and 8 concurrent callers.

Each fake server runs one prompt at a time, as ComfyUI does; a job is txt2img with 10 steps (~0.2 s
on the fake). The 1-server and 2-server pools are measured alternately, ``rounds`` times each; the
speed-up is the ratio of the two medians and, per round, of adjacent measurements.
"""

from __future__ import annotations

import itertools
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec

from .common import WORKFLOWS, Target, comfy_servers, job_values, median, table

CALLERS = 8
STEPS = 10

_seeds = itertools.count(random.randrange(2**30))


def make_pool(urls: list[str]) -> ComfyPool:
    out = tempfile.mkdtemp(prefix="bench_out_")
    return ComfyPool([ComfyClient(url, output_dir=out) for url in urls], health_interval=3600).start()


def burst(pool: ComfyPool, tab: TabSpec, jobs: int) -> tuple[float, list[str]]:
    """Run ``jobs`` jobs from CALLERS threads; (jobs per second, the server of each job in start order)."""
    url = pool.clients[0].url

    def one(_: int) -> tuple[float, str]:
        values = job_values(url, next(_seeds), steps=STEPS)
        values.pop("seed_randomize")
        started = time.perf_counter()
        return started, pool.run(tab, values).server

    start = time.perf_counter()
    with ThreadPoolExecutor(CALLERS) as callers:
        runs = sorted(callers.map(one, range(jobs)))
    return jobs / (time.perf_counter() - start), [server for _, server in runs]


def _split(order: list[str], urls: list[str]) -> str:
    """'17/15': how many of ``order`` went to each server."""
    return "/".join(str(order.count(url)) for url in urls)


def run(rounds: int | None = None) -> list[Target]:
    rounds, jobs = rounds or 3, 32
    with comfy_servers(2) as servers:
        urls = [s.url for s in servers]
        if len(urls) < 2:
            print("throughput: needs 2 servers (COMFYUI_URL has one); skipped\n")
            return [Target("2 throughput 2 servers vs 1", ">= 1.8x", "skipped: one server", None)]
        pools = {"1 server": make_pool(urls[:1]), "2 servers": make_pool(urls)}
        tab = load_tab(WORKFLOWS / "txt2img.json", pools["1 server"].clients[0].catalog())
        for pool in pools.values():
            burst(pool, tab, CALLERS)  # warm-up: connections, typical durations
        rates: dict[str, list[float]] = {name: [] for name in pools}
        spread: dict[str, list[str]] = {name: [] for name in pools}
        first_wave: list[str] = []  # how the first CALLERS concurrent submits of each burst were split
        for r in range(rounds):
            for name in (list(pools) if r % 2 == 0 else list(pools)[::-1]):
                rate, order = burst(pools[name], tab, jobs)
                rates[name].append(rate)
                spread[name].append(_split(order, [c.url for c in pools[name].clients]))
                if name == "2 servers":
                    first_wave.append(_split(order[:CALLERS], urls))
        for pool in pools.values():
            pool.close()
    speedups = [b / a for a, b in zip(rates["1 server"], rates["2 servers"])]
    speedup = median(rates["2 servers"]) / median(rates["1 server"])
    rows = [[name, round(median(xs), 2), round(min(xs), 2), round(max(xs), 2),
             ", ".join(spread[name])] for name, xs in rates.items()]
    rows.append(["speed-up (ratio of medians; per round)", round(speedup, 2),
                 round(min(speedups), 2), round(max(speedups), 2), ""])
    table(f"2. throughput: {CALLERS} callers, {jobs} txt2img jobs of {STEPS} steps per measurement, {rounds} rounds",
          ["servers", "jobs/s median", "min", "max", "jobs per server, each round"], rows)
    print(f"First {CALLERS} submits of each 2-server burst, per server: {', '.join(first_wave)}\n")
    return [Target("2 throughput 2 servers vs 1", ">= 1.8x", f"{speedup:.2f}x", speedup >= 1.8)]
