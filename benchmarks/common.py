"""Shared pieces: servers to run against, the benchmark job, statistics and tables.

By default every ComfyUI server is a ``tests.fake_comfyui.FakeComfyUI`` started in its own process
(``python -m benchmarks.serve fake``): an in-process fake would share the GIL with the client being
measured, so its asyncio loop and worker thread would slow the client down and the client would slow
the fake down. A separate process is what a real ComfyUI is. ``COMFYUI_URL=url[,url...]`` replaces the
fakes with real servers.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
STEP_DELAY = 0.013  # fake KSampler seconds per step: with the fake's own per-step work (a preview JPEG) 20 steps take ~0.4 s
FAKE_CHECKPOINT = "tiny-random-sd15.safetensors"


def real_urls() -> list[str]:
    return [u.strip().rstrip("/") for u in os.environ.get("COMFYUI_URL", "").split(",") if u.strip()]


@dataclass
class Target:
    """One line of the final summary."""

    benchmark: str
    target: str
    measured: str
    ok: bool | None  # None: not measured (e.g. too few real servers)


# ---- processes ---------------------------------------------------------------------------------

def spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m benchmarks.serve ARGS``; return it and the URL it prints.

    The child lives until its stdin is closed (``stop``), so it also ends if this process dies.
    """
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve", *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http"):
        proc.kill()
        raise RuntimeError(f"benchmarks.serve {' '.join(args)} did not start (said {line!r})")
    return proc, line


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Server:
    url: str
    pid: int | None = None  # the fake's process (for CPU accounting); None for a real server


@contextmanager
def comfy_servers(count: int, node_delay: float = 0.0) -> Iterator[list[Server]]:
    """``count`` servers: the real ones from COMFYUI_URL (maybe fewer), else fresh fakes (``node_delay``:
    the fake's seconds per node)."""
    urls = real_urls()
    if urls:
        yield [Server(url) for url in urls[:count]]
        return
    procs = [spawn("fake", "--step-delay", str(STEP_DELAY), "--node-delay", str(node_delay)) for _ in range(count)]
    try:
        yield [Server(url, proc.pid) for proc, url in procs]
    finally:
        for proc, _ in procs:
            stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the job -----------------------------------------------------------------------------------

def job_values(url: str, seed: int, steps: int | None = None) -> dict[str, Any]:
    """txt2img values for one run: a new seed each time so ComfyUI's cache cannot skip the sampler.

    Fake: 20 steps x 20 ms = a 0.4 s job. Real server: the first checkpoint, BENCH_STEPS (default 20)
    steps at BENCH_SIZE (default 512) pixels.
    """
    real = bool(real_urls())
    size = int(os.environ.get("BENCH_SIZE", 512))
    return {"prompt": "a lighthouse at dusk", "seed": seed, "seed_randomize": False,
            "steps": steps or int(os.environ.get("BENCH_STEPS", 20)), "width": size, "height": size,
            "checkpoint": first_checkpoint(url) if real else FAKE_CHECKPOINT}


_checkpoints: dict[str, str] = {}


def first_checkpoint(url: str) -> str:
    if url not in _checkpoints:
        info = httpx.get(f"{url}/object_info/CheckpointLoaderSimple", timeout=30).json()
        names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        if not names:
            raise SystemExit(f"{url} has no checkpoint; the benchmarks run txt2img")
        _checkpoints[url] = names[0]
    return _checkpoints[url]


# ---- statistics and tables ---------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p90(xs: Sequence[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal and pasteable into README.md)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
