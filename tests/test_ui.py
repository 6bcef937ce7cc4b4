"""Pieces of the UI that need no server: status lines, time left, the servers panel, limits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import NodeStarted, Progress, Queued
from comfyui_gradio.comfy.pool import ComfyPool, Durations
from comfyui_gradio.forms.loader import Limits, load_tab
from comfyui_gradio.web.apidocs import endpoint_values
from comfyui_gradio.web.endpoint import endpoint_fields, split_values, tool_docstring
from comfyui_gradio.web.history import record_text
from comfyui_gradio.web.page import servers_panel
from comfyui_gradio.web.runs import RunBook, RecordStatus
from comfyui_gradio.web.widgets import describe
from tests.paths import WORKFLOWS
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port


def test_status_lines_name_the_node_the_step_and_the_time_left() -> None:
    assert describe(Queued(0)) == "⏳ Next in line…"
    assert describe(Queued(3)) == "⏳ Waiting in the queue: 3 ahead"
    assert describe(NodeStarted("3", "KSampler")) == "▶️ KSampler"
    assert describe(Progress("3", "KSampler", 4, 20), eta=12.4) == "▶️ KSampler: step 4 of 20 · about 12 s left"
    assert describe(Progress("3", "KSampler", 4, 20), eta=0.4) == "▶️ KSampler: step 4 of 20"


def test_time_left_comes_from_past_runs_of_the_workflow() -> None:
    durations = Durations(weight=0.5)
    assert durations.remaining("txt2img", 1.0) is None  # never run: no estimate
    durations.record("txt2img", 10.0)
    durations.record("txt2img", 20.0)
    assert durations.typical("txt2img") == 15.0
    assert durations.remaining("txt2img", 4.0) == 11.0 and durations.remaining("txt2img", 30.0) == 0.0


def test_the_servers_panel_shows_each_server_and_says_when_one_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with FakeComfyUI() as up:
        pool = ComfyPool([ComfyClient(up.url, output_dir=tmp_path), ComfyClient(down, output_dir=tmp_path)],
                         health_interval=3600).start()
        panel = servers_panel(pool)
        pool.close()
        single = ComfyPool([ComfyClient(up.url, output_dir=tmp_path)], health_interval=3600).start()
        assert servers_panel(single) == ""  # one healthy server: nothing to say
        single.close()
    assert panel.startswith("⚠️ **Some ComfyUI servers are down**; jobs go to the others.")
    assert f"| {up.url} | 🟢 up | 0 | 0 |" in panel and f"| {down} | 🔴 down | 0 | 0 |" in panel


def test_batch_size_inputs_are_capped(tmp_path: Path, catalog: Catalog) -> None:
    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / "plain.json")  # no schema: batch_size is inferred
    assert load_tab(tmp_path / "plain.json", catalog).param("batch_size").maximum == 4096  # the server's
    spec = load_tab(tmp_path / "plain.json", catalog, limits=Limits(max_batch_size=2))
    assert spec.param("batch_size").maximum == 2 and spec.param("steps").maximum == 10000
    (tmp_path / "plain.yaml").write_text("inputs:\n  batch: {node: '5', input: batch_size, maximum: 1}\n")
    assert load_tab(tmp_path / "plain.json", catalog, limits=Limits(3)).param("batch").maximum == 1  # lower kept


def test_ticking_randomize_draws_a_seed_even_when_the_schema_does_not_randomize(tmp_path: Path) -> None:
    from comfyui_gradio.web.widgets import form_values

    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / "t.json")
    (tmp_path / "t.yaml").write_text("inputs:\n  seed: {node: '3', input: seed}\n")  # randomize: false
    spec = load_tab(tmp_path / "t.json")
    assert spec.param("seed").is_seed and not spec.param("seed").randomize
    drawn = {form_values(spec, {"seed": 7, "seed_randomize": True})["seed"] for _ in range(5)}
    assert 7 not in drawn and len(drawn) > 1
    assert form_values(spec, {"seed": 7, "seed_randomize": False})["seed"] == 7


def _write_record(root: Path, owner: str, run_id: str, status: str, mtime: float, **extra: object) -> None:
    """A record.json as an earlier app process left it (statuses were plain strings)."""
    folder = root / owner / run_id
    folder.mkdir(parents=True)
    record = {"run_id": run_id, "owner": owner, "tab": "txt2img", "status": status, "form": {"prompt": "a fox"},
              "started": mtime - 5, **extra}
    (folder / "record.json").write_text(json.dumps(record))
    os.utime(folder / "record.json", (mtime, mtime))


def test_runs_of_an_earlier_app_are_read_back_and_those_left_running_await_reattaching(tmp_path: Path) -> None:
    _write_record(tmp_path, "ann", "r1", "running", 1000.0)
    _write_record(tmp_path, "ann", "r2", "done", 2000.0, finished=1998.0, seeds={"seed": 7})
    _write_record(tmp_path, "ann", "r3", "cancelled", 3000.0, error="Cancelled.")
    (tmp_path / "ann" / "r4").mkdir()
    (tmp_path / "ann" / "r4" / "record.json").write_text("{not json")  # skipped with a warning
    book = RunBook(tmp_path).load()
    runs = book.recent("ann")
    assert [(r.run_id, r.status, r.error) for r in runs] == [
        ("r3", RecordStatus.CANCELLED, "Cancelled."), ("r2", RecordStatus.DONE, ""), ("r1", RecordStatus.RUNNING, "")]
    assert [r.run_id for r in book.unfinished()] == ["r1"]  # for RunBook.reattach
    assert record_text(runs[2]) == "**running**\n\nprompt: a fox"
    assert record_text(runs[1]) == "**done** in 3.0 s\n\nprompt: a fox, seed: 7"


def test_only_the_newest_runs_of_each_owner_are_kept(tmp_path: Path) -> None:
    for index in range(22):
        _write_record(tmp_path, "ann", f"r{index:02}", "done", 1000.0 + index)
    _write_record(tmp_path, "bob", "b0", "done", 900.0)
    book = RunBook(tmp_path).load()
    assert [r.run_id for r in book.recent("ann")] == [f"r{index:02}" for index in range(21, 1, -1)]  # 20 kept
    assert [r.run_id for r in book.recent("bob")] == ["b0"]
    assert [r.run_id for r in RunBook(tmp_path, keep=3).load().recent("ann")] == ["r21", "r20", "r19"]


def test_a_tab_endpoint_is_one_ordered_list_of_named_fields() -> None:
    txt2img = load_tab(WORKFLOWS / "txt2img.json")
    fields = endpoint_fields(txt2img, max_runs=4)
    assert [(f.name, f.kind) for f in fields] == [
        ("prompt", "param"), ("negative_prompt", "param"), ("seed", "param"), ("seed_randomize", "randomize"),
        ("steps", "param"), ("cfg", "param"), ("width", "param"), ("height", "param"), ("sampler", "param"),
        ("checkpoint", "param"), ("runs", "runs"), ("seed_mode", "seed_mode")]
    assert endpoint_values(txt2img, {"prompt": "a fox", "seed_randomize": False}) == [
        "a fox", "blurry, low quality, watermark", 156680208700286, False, 20, 8.0, 512, 512, "euler",
        "v1-5-pruned-emaonly-fp16.safetensors", 1, "random"]
    invert = load_tab(WORKFLOWS / "invert.json")
    assert endpoint_values(invert, {}) == [None, 1]  # an upload has no default; no seed, so no seed_mode
    assert tool_docstring(invert, endpoint_fields(invert, max_runs=2)) == (
        "Invert colors. Turns every colour into its opposite. Needs no model files, so it works on any ComfyUI.\n\n"
        "Args:\n    image: Picture (an image file).\n    runs: how many times to run the workflow, 1 to 2; results add up."
        "\n\nReturns:\n    A status line, the result images, and the run details (seeds used, timing).")
    form, runs, seed_mode = split_values(fields, {"prompt": "x", "seed": 3, "seed_randomize": False, "runs": 2.0,
                                                  "seed_mode": None, "steps": 5})
    assert (form["prompt"], form["seed"], form["seed_randomize"], form["steps"], runs, seed_mode) == (
        "x", 3, False, 5, 2, "random")
    assert "runs" not in form and "seed_mode" not in form
    assert split_values(fields, {})[1:] == (1, "random")  # left out: the defaults
