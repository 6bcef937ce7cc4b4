"""5. Each client's overhead on a trivial job (EmptyImage -> SaveImage, a new colour each run), interleaved.

Compared on the same server, in the same rounds (each round in a rotated order; differences to the
reference are taken within a round, then their median is reported):

- ``reference``: ``benchmarks/reference.py`` (ComfyUI's ``websockets_api_example.py`` pattern, one socket for
  all jobs), which downloads the output's bytes;
- ``ComfyClient.run``: this project's client (a socket per job, outputs downloaded into a folder);
- ``ComfyKit 0.1.12 websocket``: the seed SDK's ``ComfyKit(executor_type="websocket").execute_json``, on one
  asyncio loop kept for all its runs; it returns output URLs without downloading them (its own behaviour);
- ``ComfyKit 0.1.12 websocket + GET its URLs``: the same, then the bytes of every URL it returned (one
  ``httpx.Client`` for all runs), which is what the reference and ``ComfyClient.run`` do: the fair comparison;
- ``comfy-sdk via comfy-api-proxy``: Comfy's own API v2 client, ``Comfy().run(workflow)`` then the output's
  bytes, through a ``comfy-api-proxy`` started here in front of the same server.

ComfyKit and comfy-sdk/comfy-api-proxy are not the project's dependencies: a variant whose package is missing is
left out with the ``pip install`` that adds it (``pip install comfykit==0.1.12 comfy-api-proxy==0.1.6``).

``TRIVIAL_BASELINE=<git revision>`` adds ``ComfyClient.run @<revision>``: the package as it was at that revision
(``git archive``, imported under another name), to compare a change with what it changes in the same rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from comfyui_gradio.comfy.client import ComfyClient

from .common import ROOT, Target, comfy_servers, median, ms, p90, table
from .overhead import rounds_of
from .reference import ReferenceClient

TRIVIAL = ROOT / "benchmarks" / "trivial.json"  # EmptyImage 64x64 -> SaveImage
_colours = itertools.count(random.randrange(2**23))
KIT_FETCHING = "ComfyKit 0.1.12 websocket + GET its URLs"
PROXY_RACES: list[str] = []  # jobs comfy-api-proxy called "expired" although ComfyUI had just finished them


def _prompt() -> dict[str, Any]:
    """The trivial prompt with a colour never used before (ComfyUI would serve a repeated prompt from cache)."""
    prompt = json.loads(TRIVIAL.read_text())
    prompt["1"]["inputs"]["color"] = next(_colours) % 2**24
    return prompt


def run(rounds: int | None = None) -> list[Target]:
    rounds = rounds or 15
    with comfy_servers(1) as [server], tempfile.TemporaryDirectory() as tmp:
        variants, closers = _variants(server.url, Path(tmp))
        try:
            timings = rounds_of(variants, rounds, {}, warmup=2)
        finally:
            for close in closers:
                close()
    base = timings.seconds["reference"]
    rows = []
    for name, seconds in timings.seconds.items():
        extra = [a - b for a, b in zip(seconds, base)]
        rows.append([name, ms(median(seconds)), ms(p90(seconds)), ms(median(extra))])
    table(f"5. Trivial job (EmptyImage -> SaveImage), {rounds} rounds, server {server.url}",
          ["client", "median ms", "p90 ms", "median ms over reference"], rows)
    if PROXY_RACES:
        print(f"comfy-api-proxy answered 'expired' for {len(PROXY_RACES)} finished job(s) (its /history-then-/queue "
              "race); each was read again")
    over = {name: median([a - b for a, b in zip(s, base)]) for name, s in timings.seconds.items()}
    ours = over["ComfyClient.run"]
    targets = [Target("5 trivial", "ComfyClient.run within 3 ms of the reference", f"{ms(ours)} ms", ours <= 0.003)]
    if "ComfyKit 0.1.12 websocket" in over:
        kit = over["ComfyKit 0.1.12 websocket"]
        targets.append(Target("5 trivial", "ComfyClient.run ahead of ComfyKit 0.1.12", f"{ms(ours)} vs {ms(kit)} ms",
                              ours < kit))
        fetched = over[KIT_FETCHING]
        targets.append(Target("5 trivial", "ComfyClient.run ahead of ComfyKit 0.1.12 + GET its URLs",
                              f"{ms(ours)} vs {ms(fetched)} ms", ours < fetched))
    return targets


def _variants(url: str, tmp: Path) -> tuple[dict[str, Callable[[], object]], list[Callable[[], None]]]:
    reference = ReferenceClient(url)
    ours = ComfyClient(url, output_dir=tmp / "ours")
    tab = ours.load(TRIVIAL)

    def ours_run() -> object:
        return ours.run(tab, _values())

    variants: dict[str, Callable[[], object]] = {"reference": lambda: reference.run(_prompt()),
                                                 "ComfyClient.run": ours_run}
    closers: list[Callable[[], None]] = [reference.close, ours.close]
    baseline = os.environ.get("TRIVIAL_BASELINE")
    if baseline:
        then = _client_at(baseline, tmp)(url, output_dir=tmp / "baseline-outputs")
        then_tab = then.load(TRIVIAL)
        variants[f"ComfyClient.run @{baseline}"] = lambda: then.run(then_tab, _values())
        closers.append(then.close)
    kit = _comfykit(url)
    if kit is not None:
        execute, close = kit
        variants["ComfyKit 0.1.12 websocket"] = execute
        fetching = httpx.Client(timeout=120)
        variants[KIT_FETCHING] = lambda: [fetching.get(u).content for u in _urls(execute())]
        closers += [close, fetching.close]
    sdk = _comfy_sdk(url)
    if sdk is not None:
        variants["comfy-sdk via comfy-api-proxy"], close = sdk
        closers.append(close)
    return variants, closers


def _values() -> dict[str, Any]:
    return {"1-inputs-color": next(_colours) % 2**24}  # a flat "<node>-inputs-<name>" key


def _comfykit(url: str) -> tuple[Callable[[], object], Callable[[], None]] | None:
    try:
        from comfykit import ComfyKit  # type: ignore[import-not-found]
    except ImportError:
        print("(ComfyKit left out: pip install comfykit==0.1.12)")
        return None
    loop = asyncio.new_event_loop()
    kit = ComfyKit(comfyui_url=url, executor_type="websocket")

    def execute() -> object:
        result = loop.run_until_complete(kit.execute_json(_prompt(), {}))
        assert result.status == "completed", result.msg
        return result

    def close() -> None:
        with contextlib.suppress(AttributeError):  # 0.1.12's close() calls a close() its WebSocketExecutor lacks
            loop.run_until_complete(kit.close())
        loop.close()
    return execute, close


def _urls(result: Any) -> list[str]:
    """Every output URL of a ComfyKit ``ExecuteResult``."""
    return [*result.images, *result.videos, *result.audios]


def _client_at(revision: str, tmp: Path) -> type:
    """``ComfyClient`` of the package at git ``revision``, unpacked into ``tmp`` as ``comfyui_gradio_then``
    (the package imports itself relatively, so it runs under that name beside this one)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "comfyui_gradio"], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp / "then", filter="data")
    (tmp / "then" / "comfyui_gradio").rename(tmp / "then" / "comfyui_gradio_then")
    sys.path.insert(0, str(tmp / "then"))
    return importlib.import_module("comfyui_gradio_then.comfy.client").ComfyClient


def _comfy_sdk(url: str) -> tuple[Callable[[], object], Callable[[], None]] | None:
    proxy_program = shutil.which("comfy-api-proxy")
    try:
        from comfy_sdk import Comfy
    except ImportError:
        proxy_program = None
    if proxy_program is None:
        print("(comfy-sdk left out: pip install comfy-api-proxy==0.1.6 comfy-sdk==0.5.0)")
        return None
    port = _free_port()
    proxy = subprocess.Popen([proxy_program, "run", "--comfyui", url, "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    _wait_until_up(base)
    os.environ["COMFY_BASE_URL"] = base
    client = Comfy(api_key="unused-by-the-proxy")

    def execute() -> object:
        job = client.submit(client.workflows.from_json(_prompt())).wait()
        if job.status == "expired":  # comfy-api-proxy 0.1.6 races: finished between its /history and /queue looks
            PROXY_RACES.append(job.id)
            job.refresh()
        assert job.status == "succeeded", job.status
        return [output.to_bytes() for output in job.outputs]

    def close() -> None:
        client.close()
        proxy.terminate()
        proxy.wait(10)
    return execute, close


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/api/v2/jobs", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"comfy-api-proxy did not answer at {base}")


