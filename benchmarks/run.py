"""``python -m benchmarks [NAME ...] [--rounds N] [--save FILE]``: run benchmarks, print tables and a summary.

NAME is any of overhead, throughput, startup, uploads, trivial (default: all). Against the ComfyUI test double
started in separate processes, or against real servers with ``COMFYUI_URL=url[,url]``.
``python -m benchmarks inflight [--jobs N] [--servers N] [--tracemalloc]`` runs ``benchmarks/inflight.py`` alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from typing import Callable

from . import inflight, overhead, startup, throughput, trivial, uploads
from .common import Target, real_urls, table

BENCHMARKS: dict[str, Callable[[int | None], list[Target]]] = {
    "overhead": overhead.run, "throughput": throughput.run, "startup": startup.run, "uploads": uploads.run,
    "trivial": trivial.run,
}


class _Tee(io.TextIOBase):
    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["inflight"]:  # its own options
        inflight.main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--rounds", type=int, help="repetitions (default per benchmark: 15, 3, 3, -, 15)")
    parser.add_argument("--save", help="also write everything printed to this file")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    logging.basicConfig(level=logging.ERROR)
    captured = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)) if args.save else contextlib.nullcontext():
        print(f"Servers: {', '.join(real_urls()) or 'FakeComfyUI test doubles, one process each'}\n")
        targets = [t for name in args.names or BENCHMARKS for t in BENCHMARKS[name](args.rounds)]
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}
        table("Summary", ["benchmark", "target", "measured", "result"],
              [[t.benchmark, t.target, t.measured, verdict[t.ok]] for t in targets])
    if args.save:
        with open(args.save, "w", encoding="utf-8") as file:
            file.write(captured.getvalue())
