"""Workflow and schema files are refused by their size before they are read, and YAML aliases
cannot blow a schema up ("billion laughs"); such a file gets its own error tab at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from comfyui_gradio.errors import ConfigError, Problem
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.check import check_workflow
from comfyui_gradio.forms.loader import Limits, discover_tabs, load_tab
from comfyui_gradio.forms.schema import MAX_ALIAS_EXPANSION, MAX_SCHEMA_BYTES, build_tab
from comfyui_gradio.forms.workflow import MAX_WORKFLOW_BYTES, load_workflow
from tests.test_loader import copy_workflow

FIFTY_MIB = 50 * 2**20
BIG_WORKFLOW = ("is 50.0 MiB (52428800 bytes), more than the 8.0 MiB (8388608 bytes) this app reads from one file; "
                "remove what is embedded in it (images, long notes) or raise Limits.max_workflow_bytes")
BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["inputs: *i"]
)
BOMB = ("uses YAML aliases (*name) that expand it by more than 10000 values; write the settings out instead of "
        "repeating anchors")


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` zero bytes that takes no disk space."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def only_problem(exc: pytest.ExceptionInfo[ConfigError]) -> Problem:
    [problem] = exc.value.problems
    return problem


# ---------------------------------------------------------------------------- workflow files


def test_the_caps_are_8_mib_for_workflows_and_256_kib_for_schemas() -> None:
    assert (MAX_WORKFLOW_BYTES, MAX_SCHEMA_BYTES) == (8 * 2**20, 256 * 2**10)
    assert (Limits().max_workflow_bytes, Limits().max_schema_bytes) == (MAX_WORKFLOW_BYTES, MAX_SCHEMA_BYTES)


def test_a_50_mib_workflow_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "huge.json", FIFTY_MIB)  # zero bytes: read, it would be invalid JSON
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert time.monotonic() - started < 1
    assert only_problem(exc) == Problem(str(path), "", BIG_WORKFLOW)
    assert str(exc.value) == f"{path}: {BIG_WORKFLOW}"


def test_the_workflow_cap_is_inclusive_and_set_through_the_limits(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert")
    size = path.stat().st_size
    assert load_tab(path, None, limits=Limits(max_workflow_bytes=size)).name == "invert"
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None, limits=Limits(max_workflow_bytes=size - 1))
    assert only_problem(exc) == Problem(str(path), "", (
        f"is 0.0 MiB ({size} bytes), more than the 0.0 MiB ({size - 1} bytes) this app reads from one file; "
        "remove what is embedded in it (images, long notes) or raise Limits.max_workflow_bytes"))


def test_a_larger_cap_lets_a_large_workflow_through(tmp_path: Path) -> None:
    path = tmp_path / "padded.json"
    nodes = json.loads(copy_workflow(tmp_path, "invert").read_text())
    path.write_text(json.dumps(nodes) + " " * MAX_WORKFLOW_BYTES)
    with pytest.raises(ConfigError):
        load_workflow(path)
    assert load_workflow(path, max_bytes=2 * MAX_WORKFLOW_BYTES).nodes == nodes


def test_a_workflow_nested_too_deeply_or_not_utf8_gets_a_problem_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError) as exc:
        load_workflow(deep)
    assert only_problem(exc) == Problem(str(deep), "", "is nested too deeply to be a ComfyUI workflow; save it "
                                                       "again from ComfyUI")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"1": {"class_type": "Caf\xe9"}}')
    with pytest.raises(ConfigError) as exc:
        load_workflow(latin)
    assert only_problem(exc) == Problem(str(latin), "", (
        "is not UTF-8 text ('utf-8' codec can't decode byte 0xe9 in position 25: invalid continuation byte); "
        "save it again as UTF-8"))


def test_check_reports_an_oversized_workflow_without_reading_it(tmp_path: Path, catalog: Catalog) -> None:
    path = sparse_file(tmp_path / "huge.json", FIFTY_MIB)
    for known in (catalog, None):
        [finding] = check_workflow(path, known)
        assert (finding.severity, finding.message) == ("error", BIG_WORKFLOW)


# ---------------------------------------------------------------------------- schema files


def test_an_oversized_schema_is_refused_by_its_size(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert")
    schema = sparse_file(path.with_suffix(".yaml"), MAX_SCHEMA_BYTES + 1)
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert only_problem(exc) == Problem(str(schema), "", (
        "is 0.3 MiB (262145 bytes), more than the 0.2 MiB (262144 bytes) this app reads from one file; "
        "remove what is embedded in it (images, long notes) or raise Limits.max_schema_bytes"))
    schema.write_text("title: Small\n" + "#" * MAX_SCHEMA_BYTES)
    assert load_tab(path, None, limits=Limits(max_schema_bytes=2 * MAX_SCHEMA_BYTES)).title == "Small"


def test_build_tab_takes_both_caps(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert")
    with pytest.raises(ConfigError, match="max_workflow_bytes"):
        build_tab(path, None, max_workflow_bytes=10)
    with pytest.raises(ConfigError, match="max_schema_bytes"):
        build_tab(path, None, max_schema_bytes=10)
    assert build_tab(path, None).name == "invert"


def test_a_billion_laughs_schema_is_refused_at_once(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert", yaml_text=BILLION_LAUGHS)
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert time.monotonic() - started < 1
    assert only_problem(exc) == Problem(str(path.with_suffix(".yaml")), "", BOMB)


def anchored(count: int) -> str:
    """A schema whose one alias repeats a list of ``count`` values: it adds ``count + 1`` values."""
    return f"title: Anchored\nx-list: &x [{', '.join(['1'] * count)}]\nx-again: *x\n"


def test_aliases_may_add_up_to_the_expansion_limit(tmp_path: Path) -> None:
    assert MAX_ALIAS_EXPANSION == 10_000
    path = copy_workflow(tmp_path, "invert", yaml_text=anchored(MAX_ALIAS_EXPANSION - 1))
    with pytest.raises(ConfigError) as exc:  # read, then refused for its unknown keys, not as a bomb
        load_tab(path, None)
    assert [p.key for p in exc.value.problems] == ["x-list", "x-again"]
    path.with_suffix(".yaml").write_text(anchored(MAX_ALIAS_EXPANSION))
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert only_problem(exc).reason == BOMB


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = ("inputs:\n  a: &common {node: '2', input: value, advanced: true}\n"
            "  b: {<<: *common, label: Second}\n")
    workflow = tmp_path / "two.json"
    workflow.write_text(json.dumps({"2": {"class_type": "Foo", "inputs": {"value": 1}},
                                          "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}))
    workflow.with_suffix(".yaml").write_text(text)
    tab = load_tab(workflow, None)
    assert [(p.name, p.advanced, p.label) for p in tab.params] == [("a", True, "A"), ("b", True, "Second")]


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert", yaml_text="inputs: &me {again: *me}\n")
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert only_problem(exc).reason == ("uses a YAML alias (*name) inside its own anchor (&name); write the settings "
                                        "out")


def test_a_schema_nested_too_deeply_gets_a_problem(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert", yaml_text="inputs: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert only_problem(exc).reason == "is nested too deeply to be a schema"


def test_the_schema_loader_is_still_safe(tmp_path: Path) -> None:
    path = copy_workflow(tmp_path, "invert", yaml_text="title: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError) as exc:
        load_tab(path, None)
    assert only_problem(exc).reason.startswith("is not valid YAML: could not determine a constructor")


# ---------------------------------------------------------------------------- a folder


def test_a_huge_workflow_and_a_bomb_get_their_own_error_tabs_while_the_others_load(tmp_path: Path) -> None:
    copy_workflow(tmp_path, "invert")
    copy_workflow(tmp_path, "blur")
    huge = sparse_file(tmp_path / "a_huge.json", FIFTY_MIB)
    bomb = copy_workflow(tmp_path, "invert", "b_bomb", yaml_text=BILLION_LAUGHS)
    started = time.monotonic()
    loads = discover_tabs(tmp_path, None)
    assert time.monotonic() - started < 5
    assert [(load.name, load.spec is not None) for load in loads] == [
        ("invert", True), ("blur", True), ("a_huge", False), ("b_bomb", False)]
    assert loads[2].error.problems == [Problem(str(huge), "", BIG_WORKFLOW)]
    assert loads[3].error.problems == [Problem(str(bomb.with_suffix(".yaml")), "", BOMB)]
