"""Sockets and threads with many jobs in flight on one server (issue 11 §3).

``python -m benchmarks.inflight [--jobs 100]``: one ComfyUI test double in its own process (or the first
``COMFYUI_URL``), ``--jobs`` txt2img jobs submitted at once through one ``ComfyClient``; while they run, the
TCP connections from this process to the server (``ss -tnp``) and ``threading.active_count()`` are sampled
every 50 ms; the sample with the most jobs in flight is printed, with the jobs lost (an error or no picture)
or crossed (a picture other than the one the server saved for that prompt).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import httpx

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.job import Job
from comfyui_gradio.forms.loader import load_tab

from benchmarks.common import WORKFLOWS, job_values, real_urls, spawn, stop


def connections(port: int) -> int:
    """Established TCP connections of this process to ``port``."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{port} )"], capture_output=True,
                         text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if f"pid={os.getpid()}," in line)


@contextlib.contextmanager
def server() -> Iterator[str]:
    if real_urls():
        yield real_urls()[0]
        return
    proc, url = spawn("fake", "--step-delay", "0.01")
    try:
        yield url
    finally:
        stop(proc)


def measure(url: str, count: int, steps: int) -> dict[str, int]:
    port = urlparse(url).port or 80
    jobs: list[Job] = []
    samples: list[tuple[int, int, int]] = []  # (jobs in flight, connections, threads)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((sum(not job.done for job in list(jobs)), connections(port), threading.active_count()))
            time.sleep(0.05)

    with tempfile.TemporaryDirectory() as out, ComfyClient(url, output_dir=Path(out)) as client:
        tab = load_tab(WORKFLOWS / "txt2img.json", client.catalog())
        values = {k: v for k, v in job_values(url, 0, steps).items() if k != "seed_randomize"}
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for seed in range(count):
            jobs.append(client.submit(tab, {**values, "seed": seed}, timeout=600))
        lost = crossed = 0
        for job in jobs:
            try:
                result = job.result(600)
            except Exception:  # counted, whatever it was
                lost += 1
                continue
            outputs = httpx.get(f"{url}/history/{job.prompt_id}").json()[job.prompt_id]["outputs"]
            served = [httpx.get(f"{url}/view", params=image).content for node in outputs.values()
                      for image in node.get("images", [])]
            lost += not result.images
            crossed += [o.path.read_bytes() for o in result.images] != served
        done.set()
        sampler.join()
    in_flight, sockets, threads = max(samples)
    return {"in_flight": in_flight, "sockets": sockets, "threads": threads, "lost": lost, "crossed": crossed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with server() as url:
        result = measure(url, args.jobs, args.steps)
    print(f"{args.jobs} jobs on {url}; with the most in flight ({result['in_flight']}): {result['sockets']} TCP "
          f"connections to the server, {result['threads']} threads; {result['lost']} lost, {result['crossed']} "
          "crossed")


if __name__ == "__main__":
    main()
