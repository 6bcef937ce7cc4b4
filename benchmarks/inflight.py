"""Sockets, threads and memory with many jobs in flight on one or more servers (issue 11 §3).

``python -m benchmarks inflight [--jobs 500] [--servers 2] [--tracemalloc]`` (also ``python -m benchmarks.inflight``):
``--servers`` ComfyUI test doubles, each in its own process (or the first URLs of ``COMFYUI_URL``), one
``ComfyPool`` over them, and ``--jobs`` trivial jobs (``benchmarks/trivial.json``: EmptyImage -> SaveImage,
model-free) submitted at once from one thread, job i with colour ``base + i``.

Every 50 ms while they run: the jobs in flight (submitted, not done), this process's established TCP
connections to each server's port (``ss -tnp``), ``threading.active_count()`` and this process's RSS
(``VmRSS`` in ``/proc/self/status``). Memory per job in flight is (peak - idle baseline) / the jobs in flight
at the peak sample; the baseline (and the thread baseline) is read after one warm-up job per server, before
the first submit. With ``--tracemalloc`` a second pass runs on the same servers with ``tracemalloc`` on,
which gives the traced KB per job (its RSS includes tracemalloc's own bookkeeping; its wall time is slower).

Every result is checked: lost = an error or no picture; crossed = a picture that is not of the job's colour,
or whose bytes differ from what the server that ran it serves for that prompt id (``/history`` -> ``/view``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import io
import os
import random
import subprocess
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import httpx
from PIL import Image

from comfyui_gradio.comfy.backend import JobHandle
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.forms.schema import TabSpec

from benchmarks.common import ROOT, comfy_servers, real_urls, table

TRIVIAL = ROOT / "benchmarks" / "trivial.json"  # EmptyImage 64x64 -> SaveImage
FAKE_NODE_DELAY = 0.1  # seconds per node on the double: a job ~0.2 s, slower than submitting one (~25 ms)
SAMPLE_EVERY = 0.05


@dataclass(frozen=True)
class Sample:
    in_flight: int
    connections: tuple[int, ...]  # per server, in the pool's order
    threads: int
    rss: int  # bytes
    traced: int  # bytes (0 without tracemalloc)


@dataclass
class Outcome:
    samples: list[Sample]
    baseline: Sample
    lost: int
    crossed: int
    wall: float


# ---- sampling ----------------------------------------------------------------------------------

def connections(ports: Sequence[int]) -> tuple[int, ...]:
    """Established TCP connections of this process to each of ``ports``."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True,
                         check=False).stdout
    peers = [line.split()[3].rsplit(":", 1)[1] for line in out.splitlines() if f"pid={os.getpid()}," in line]
    return tuple(peers.count(str(port)) for port in ports)


def rss() -> int:
    """This process's resident set size in bytes (Linux)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def sample(in_flight: int, ports: Sequence[int]) -> Sample:
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return Sample(in_flight, connections(ports), threading.active_count(), rss(), traced)


def per_job(samples: Sequence[Sample], baseline: Sample, field: str) -> float:
    """(peak - baseline) of ``field`` over the samples with jobs in flight, per job in flight at that peak."""
    busy = [s for s in samples if s.in_flight]
    if not busy:
        return 0.0
    peak = max(busy, key=lambda s: getattr(s, field))
    return (getattr(peak, field) - getattr(baseline, field)) / peak.in_flight


# ---- checking ----------------------------------------------------------------------------------

def rgb(colour: int) -> tuple[int, int, int]:
    return (colour >> 16) & 0xFF, (colour >> 8) & 0xFF, colour & 0xFF


def is_crossed(colour: int, picture: bytes, served: bytes) -> bool:
    """True unless ``picture`` is of ``colour`` (EmptyImage's 0xRRGGBB) and is the bytes the server serves."""
    with Image.open(io.BytesIO(picture)) as image:
        return picture != served or image.convert("RGB").getpixel((0, 0)) != rgb(colour)


def served_pictures(http: httpx.Client, url: str, prompt_id: str) -> list[bytes]:
    """The images the server at ``url`` saved for ``prompt_id``, as ``/view`` serves them."""
    outputs = http.get(f"{url}/history/{prompt_id}").json()[prompt_id]["outputs"]
    return [http.get(f"{url}/view", params=image).content for node in outputs.values()
            for image in node.get("images", [])]


# ---- the run -----------------------------------------------------------------------------------

def values(colour: int, size: int) -> dict[str, int]:
    return {"color": colour, "width": size, "height": size}


def measure(urls: list[str], count: int, size: int) -> Outcome:
    ports = [urlparse(url).port or 80 for url in urls]
    base = random.randrange(2**24 - count - len(urls))  # new colours: ComfyUI's cache must not answer
    with tempfile.TemporaryDirectory() as out:
        pool = ComfyPool([ComfyClient(url, output_dir=Path(out)) for url in urls], health_interval=3600).start()
        try:
            tab = pool.load(TRIVIAL)
            for i in range(len(urls)):  # warm-up: sockets, imports, first-use caches
                pool.submit(tab, values(base + count + i, size)).result(120)
            gc.collect()
            baseline = sample(0, ports)
            return _burst(pool, tab, [values(base + i, size) for i in range(count)], ports, baseline)
        finally:
            pool.close()


@dataclass(frozen=True)
class Finished:
    """What the check needs of a finished job (the job itself is let go, so memory is that of jobs in flight)."""

    colour: int
    prompt_id: str
    server: str
    pictures: tuple[Path, ...] | None  # None: the job failed


def _burst(pool: ComfyPool, tab: TabSpec, runs: list[dict[str, int]], ports: list[int], baseline: Sample) -> Outcome:
    submitted = 0
    finished: list[Finished] = []  # appended by the jobs' done callbacks
    all_done, sampled = threading.Event(), threading.Event()

    def watch() -> None:
        while not all_done.is_set():
            samples.append(sample(submitted - len(finished), ports))
            time.sleep(SAMPLE_EVERY)
        sampled.set()

    def record(job: JobHandle, colour: int) -> None:
        result = None if job.error else job.result()
        pictures = tuple(o.path for o in result.images) if result else None
        finished.append(Finished(colour, job.prompt_id, result.server if result else "", pictures))
        if len(finished) == len(runs):
            all_done.set()

    samples: list[Sample] = []
    start = time.perf_counter()
    threading.Thread(target=watch, daemon=True).start()
    for run in runs:
        pool.submit(tab, run, timeout=900).add_done_callback(functools.partial(record, colour=run["color"]))
        submitted += 1
    if not all_done.wait(960):
        raise SystemExit(f"only {len(finished)} of {len(runs)} jobs ended within 16 minutes")
    wall = time.perf_counter() - start
    sampled.wait()
    lost, crossed = check(finished)
    return Outcome(samples, baseline, lost, crossed, wall)


def check(finished: list[Finished]) -> tuple[int, int]:
    """(lost, crossed) over the finished jobs (see the module docstring)."""
    lost = crossed = 0
    with httpx.Client(timeout=30) as http:
        for job in finished:
            if not job.pictures:
                lost += 1
                continue
            served = served_pictures(http, job.server, job.prompt_id)
            pictures = [path.read_bytes() for path in job.pictures]
            crossed += len(pictures) != len(served) or any(
                is_crossed(job.colour, p, s) for p, s in zip(pictures, served))
    return lost, crossed


def commit() -> str:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "unknown"


def row(name: str, urls: list[str], count: int, outcome: Outcome) -> list[object]:
    samples, baseline = outcome.samples, outcome.baseline
    per_server = "/".join(str(max(s.connections[k] for s in samples)) for k in range(len(urls)))
    traced = round(per_job(samples, baseline, "traced") / 1024) if baseline.traced else "-"
    return [name, len(urls), count, max(s.in_flight for s in samples), per_server,
            f"{max(s.threads for s in samples)} ({baseline.threads})",
            round(per_job(samples, baseline, "rss") / 1024), traced, outcome.lost, outcome.crossed,
            f"{outcome.wall:.1f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks inflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="EmptyImage width and height (a real server's job "
                        "time grows with it; it must be slower than submitting to keep jobs in flight)")
    parser.add_argument("--tracemalloc", action="store_true", help="add a pass with tracemalloc on")
    parser.add_argument("--node-delay", type=float, default=FAKE_NODE_DELAY,
                        help="seconds per node on the doubles (slower: more of the jobs in flight at once)")
    args = parser.parse_args(argv)
    if real_urls() and len(real_urls()) < args.servers:
        parser.error(f"--servers {args.servers} needs that many URLs in COMFYUI_URL (it has {len(real_urls())})")
    rows = []
    with comfy_servers(args.servers, node_delay=args.node_delay) as servers:
        urls = [s.url for s in servers]
        rows.append(row("plain", urls, args.jobs, measure(urls, args.jobs, args.size)))
        if args.tracemalloc:
            tracemalloc.start()
            try:
                rows.append(row("tracemalloc", urls, args.jobs, measure(urls, args.jobs, args.size)))
            finally:
                tracemalloc.stop()
    where = ", ".join(real_urls()[:args.servers]) or f"test doubles, one process each, {args.node_delay} s per node"
    print(f"commit {commit()}; servers: {where}")
    table(f"In flight: {args.jobs} EmptyImage {args.size}x{args.size} jobs submitted at once through one ComfyPool "
          f"over {args.servers} server(s)",
          ["pass", "servers", "jobs", "max in flight", "TCP connections per server (max)",
           "threads max (baseline)", "RSS KB/job in flight", "traced KB/job in flight", "lost", "crossed",
           "wall s"], rows)


if __name__ == "__main__":
    main()
