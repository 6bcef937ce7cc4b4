"""The one place a tab spec is built: notes about the server, limits, and a folder of workflows."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from comfyui_gradio.errors import ConfigError, Problem
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import Limits, TabLoad, discover_tabs, load_tab
from tests.paths import WORKFLOWS

NO_SERVER = ("ComfyUI was not reachable when the app started, so this form was built from the workflow alone: "
             "choices and limits are missing. Restart the app once ComfyUI is up.")
STALE = ("ComfyUI was not reachable when the app started, so this form uses the node list saved earlier: "
         "choices (models, samplers) may be out of date.")
MISSING_MODEL = ("On this ComfyUI server: needs model v1-5-pruned-emaonly-fp16.safetensors. Pick another under "
                 "*Advanced*, or add it to ComfyUI.")


def copy_workflow(folder: Path, name: str, as_name: str | None = None, yaml_text: str | None = None) -> Path:
    """``workflows/NAME.json`` (and its YAML, or ``yaml_text``) copied into ``folder`` as ``AS_NAME``."""
    target = folder / f"{as_name or name}.json"
    shutil.copy(WORKFLOWS / f"{name}.json", target)
    if yaml_text is not None:
        target.with_suffix(".yaml").write_text(yaml_text)
    elif (WORKFLOWS / f"{name}.yaml").exists():
        shutil.copy(WORKFLOWS / f"{name}.yaml", target.with_suffix(".yaml"))
    return target


# ---------------------------------------------------------------------------- notes


def test_a_live_catalogue_notes_only_what_the_server_lacks(catalog: Catalog) -> None:
    assert load_tab(WORKFLOWS / "txt2img.json", catalog).notes == (MISSING_MODEL,)
    assert load_tab(WORKFLOWS / "invert.json", catalog).notes == ()


def test_without_a_catalogue_the_tab_says_its_form_is_built_from_the_workflow_alone() -> None:
    assert load_tab(WORKFLOWS / "invert.json", None).notes == (NO_SERVER,)


def test_a_stale_catalogue_is_noted_after_what_the_server_lacks(object_info: dict) -> None:
    stale = Catalog(object_info, stale=True)
    assert load_tab(WORKFLOWS / "txt2img.json", stale).notes == (MISSING_MODEL, STALE)
    assert load_tab(WORKFLOWS / "invert.json", stale).notes == (STALE,)


def test_load_tab_keeps_what_build_tab_read(catalog: Catalog) -> None:
    tab = load_tab(WORKFLOWS / "txt2img.json", catalog)
    assert (tab.name, tab.title, tab.order, tab.schema_file) == ("txt2img", "Text to image", 1,
                                                                  WORKFLOWS / "txt2img.yaml")
    assert [p.name for p in tab.params] == ["prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height",
                                            "sampler", "checkpoint"]


# ---------------------------------------------------------------------------- limits


def batch_tab(tmp_path: Path, catalog: Catalog | None, limits: Limits | None, yaml_text: str):
    path = copy_workflow(tmp_path, "txt2img", yaml_text=yaml_text)
    return load_tab(path, catalog, limits=limits)


BATCH_AND_WIDTH = "inputs:\n  batch: {node: '5', input: batch_size}\n  width: {node: '5', input: width}\n"


def test_max_batch_size_caps_only_batch_size_inputs(tmp_path: Path, catalog: Catalog) -> None:
    tab = batch_tab(tmp_path, catalog, Limits(max_batch_size=4), BATCH_AND_WIDTH)
    assert tab.param("batch").maximum == 4  # the server allows 4096
    assert tab.param("width").maximum == 16384  # not a batch size: the server's bound stands


def test_max_batch_size_sets_a_maximum_where_there_was_none(tmp_path: Path) -> None:
    tab = batch_tab(tmp_path, None, Limits(max_batch_size=4), BATCH_AND_WIDTH)
    assert (tab.param("batch").maximum, tab.param("width").maximum) == (4, None)


def test_a_narrower_schema_maximum_is_kept_under_a_wider_cap(tmp_path: Path, catalog: Catalog) -> None:
    tab = batch_tab(tmp_path, catalog, Limits(max_batch_size=8),
                    "inputs:\n  batch: {node: '5', input: batch_size, maximum: 2}\n")
    assert tab.param("batch").maximum == 2


def test_a_cap_reaches_every_batch_size_a_parameter_sets(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "two.json"
    nodes = json.loads((WORKFLOWS / "txt2img.json").read_text())
    nodes["10"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
    path.write_text(json.dumps(nodes))
    path.with_suffix(".yaml").write_text("inputs:\n  count: {node: ['10', '5'], input: batch_size}\n")
    count = load_tab(path, catalog, limits=Limits(max_batch_size=3)).param("count")
    assert (count.targets, count.maximum) == ((("10", "batch_size"), ("5", "batch_size")), 3)


def test_no_cap_and_non_numbers_are_left_alone(tmp_path: Path, catalog: Catalog) -> None:
    assert batch_tab(tmp_path, catalog, None, BATCH_AND_WIDTH).param("batch").maximum == 4096
    assert batch_tab(tmp_path, catalog, Limits(), BATCH_AND_WIDTH).param("batch").maximum == 4096
    text = batch_tab(tmp_path, catalog, Limits(max_batch_size=4),
                     "inputs:\n  batch: {node: '5', input: batch_size, widget: textbox}\n").param("batch")
    assert (text.kind, text.maximum) == ("text", None)


# ---------------------------------------------------------------------------- a folder


def test_discover_tabs_orders_by_order_then_name_and_keeps_broken_files(
    tmp_path: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    copy_workflow(tmp_path, "invert")  # order 3
    copy_workflow(tmp_path, "txt2img")  # order 1
    copy_workflow(tmp_path, "blur", "a_blur")  # no YAML: order 100
    copy_workflow(tmp_path, "blur", "b_blur")
    (tmp_path / "aa_broken.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("not a workflow")
    with caplog.at_level(logging.ERROR, logger="comfyui_gradio.forms.loader"):
        loads = discover_tabs(tmp_path, catalog, Limits(max_batch_size=2))
    assert [(load.name, load.path) for load in loads] == [
        ("txt2img", tmp_path / "txt2img.json"), ("invert", tmp_path / "invert.json"),
        ("a_blur", tmp_path / "a_blur.json"), ("b_blur", tmp_path / "b_blur.json"),
        ("aa_broken", tmp_path / "aa_broken.json")]  # a broken file goes last, whatever its name
    assert [load.spec.title for load in loads[:4]] == ["Text to image", "Invert colors", "A blur", "B blur"]
    assert loads[0].spec.notes == (MISSING_MODEL,)  # checked against the catalogue given
    assert all(load.error is None for load in loads[:4])
    broken = loads[4]
    assert broken.spec is None and isinstance(broken.error, ConfigError)
    [problem] = broken.error.problems
    assert (problem.source, problem.key) == (str(tmp_path / "aa_broken.json"), "")
    assert problem.reason.startswith("is not valid JSON (")
    assert caplog.messages == [f"Workflow {tmp_path / 'aa_broken.json'} cannot be used:\n{broken.error}"]


def test_discover_tabs_passes_catalogue_and_limits_to_every_tab(tmp_path: Path) -> None:
    copy_workflow(tmp_path, "txt2img", yaml_text="inputs:\n  batch: {node: '5', input: batch_size}\n")
    [load] = discover_tabs(tmp_path, None, Limits(max_batch_size=2))
    assert load.spec.notes == (NO_SERVER,) and load.spec.param("batch").maximum == 2
    [load] = discover_tabs(tmp_path, None)
    assert load.spec.param("batch").maximum is None


def test_a_schema_problem_is_kept_with_every_problem(tmp_path: Path) -> None:
    copy_workflow(tmp_path, "txt2img", yaml_text="order: first\ninputs:\n  steps: {node: '3', input: stepz}\n")
    [load] = discover_tabs(tmp_path, None)
    source = str(tmp_path / "txt2img.yaml")
    assert load == TabLoad("txt2img", tmp_path / "txt2img.json", error=load.error)
    assert load.error.problems == [
        Problem(source, "inputs.steps", "node '3' has no input 'stepz' (its inputs: seed, steps, cfg, sampler_name, "
                                        "scheduler, denoise)"),
        Problem(source, "order", "must be a whole number (tabs are sorted by it), not 'first'"),
    ]


def test_an_empty_folder_has_no_tabs(tmp_path: Path) -> None:
    assert discover_tabs(tmp_path, None) == []


def test_broken_files_come_after_every_tab_whatever_its_order(tmp_path: Path) -> None:
    copy_workflow(tmp_path, "invert", "late", yaml_text="order: 5000\n")
    copy_workflow(tmp_path, "invert", "early", yaml_text="order: -1\n")
    (tmp_path / "b_broken.json").write_text("[]")
    (tmp_path / "a_broken.json").write_text("{}")
    assert [(load.name, load.spec is None) for load in discover_tabs(tmp_path, None)] == [
        ("early", False), ("late", False), ("a_broken", True), ("b_broken", True)]


def test_tabs_of_the_same_order_are_sorted_by_their_names(tmp_path: Path) -> None:
    for name in ("a-b", "a", "b"):
        copy_workflow(tmp_path, "blur", name)
    assert [load.name for load in discover_tabs(tmp_path, None)] == ["a", "a-b", "b"]


def test_a_ui_format_workflow_is_converted_with_the_catalogue(tmp_path: Path, catalog: Catalog) -> None:
    shutil.copy(Path(__file__).parent / "data" / "ui_invert_resize.json", tmp_path / "resize.json")
    tab = load_tab(tmp_path / "resize.json", catalog)
    assert tab.workflow.source_format == "ui"
    assert tab.workflow.nodes["6"] == {
        "inputs": {"upscale_method": "nearest-exact", "width": 40, "height": 48, "crop": "disabled", "image": ["3", 0]},
        "class_type": "ImageScale", "_meta": {"title": "Resize"}}
    assert [p.name for p in tab.params] == ["image", "upscale_method", "width", "height", "crop"]


def test_an_inferred_form_is_labelled_with_the_catalogues_names(tmp_path: Path, catalog: Catalog) -> None:
    nodes = json.loads((WORKFLOWS / "blur.json").read_text())
    for node in nodes.values():
        node.pop("_meta", None)
    (tmp_path / "plain.json").write_text(json.dumps(nodes))
    assert load_tab(tmp_path / "plain.json", catalog).param("width").label == "Upscale Image: width"
    assert load_tab(tmp_path / "plain.json", None).param("width").label == "ImageScale: width"
