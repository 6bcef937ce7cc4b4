"""3. Start-up time and memory with 50 workflows in the folder.

50 workflow files (copies of the shipped ones, with their YAML where they have one) are written to a
temporary folder; a fresh ``python -m benchmarks.startup DIR URL`` process imports the app, runs
``create_app()`` against a ComfyUI (a fake one by default) and reports times and RSS. The shipped 4
workflows are measured the same way, alternately, for comparison.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, WORKFLOWS, Target, comfy_servers, median, p90, table

COUNT = 50


def make_folder(count: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench_workflows_"))
    shipped = sorted(WORKFLOWS.glob("*.json"))
    for i in range(count):
        source = shipped[i % len(shipped)]
        shutil.copy(source, folder / f"{source.stem}_{i:02d}.json")
        if source.with_suffix(".yaml").exists():
            shutil.copy(source.with_suffix(".yaml"), folder / f"{source.stem}_{i:02d}.yaml")
    return folder


def measure(folder: Path, url: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.startup", str(folder), url], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(folder: Path, url: str) -> None:
    """In a fresh process: import, create_app, report (seconds, MB) as one JSON line."""
    start = time.perf_counter()
    from comfyui_gradio.web.app import create_app
    from comfyui_gradio.web.config import Settings

    imported = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    rss_before = _rss_mb()
    app, pool = create_app(Settings(comfyui_url=url, workflows_dir=folder, output_dir=tmp / "out",
                                    cache_dir=tmp / "cache"))
    created = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "create_app_s": created - imported,
                      "rss_mb": _rss_mb(), "rss_create_mb": _rss_mb() - rss_before,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "tabs": len(app.blocks)}))
    pool.close()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(rounds: int | None = None) -> list[Target]:
    rounds = rounds or 3
    folders = {f"{COUNT} workflows": make_folder(COUNT), "4 shipped workflows": WORKFLOWS}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in folders}
    with comfy_servers(1) as servers:
        for r in range(rounds):
            for name in (list(folders) if r % 2 == 0 else list(folders)[::-1]):
                results[name].append(measure(folders[name], servers[0].url))
    shutil.rmtree(folders[f"{COUNT} workflows"], ignore_errors=True)
    rows = []
    for name, runs in results.items():
        col = {key: [run[key] for run in runs] for key in runs[0]}
        total = [i + c for i, c in zip(col["import_s"], col["create_app_s"])]
        rows.append([name, round(median(col["import_s"]), 2), round(median(col["create_app_s"]), 2),
                     round(p90(col["create_app_s"]), 2), round(median(col["rss_mb"])),
                     round(median(col["rss_create_mb"])), round(median(col["peak_rss_mb"])),
                     round(median(total), 2)])
    table(f"3. start-up in a fresh process, {rounds} runs each, alternating",
          ["folder", "import s", "create_app() s median", "create_app() s p90", "RSS after MB",
           "RSS added by create_app MB", "peak RSS MB",
           "import + create_app s"], rows)
    create = median([run["create_app_s"] for run in results[f"{COUNT} workflows"]])
    return [Target(f"3 create_app() with {COUNT} workflows", "< 5 s", f"{create:.2f} s", create < 5)]


if __name__ == "__main__":
    child(Path(sys.argv[1]), sys.argv[2])
