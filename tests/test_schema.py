"""Schemas: shipped workflows load, every schema problem is reported with file, key and reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.errors import ConfigError
from comfyui_gradio.forms.loader import load_tab
from tests.paths import WORKFLOWS


def write_pair(tmp_path: Path, yaml_text: str, name: str = "txt2img") -> Path:
    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / f"{name}.json")
    (tmp_path / f"{name}.yaml").write_text(yaml_text)
    return tmp_path / f"{name}.json"


def problems(path: Path, catalog: Catalog | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tab(path, catalog)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("name", ["txt2img", "img2img", "invert", "blur"])
def test_shipped_workflows_load_with_and_without_a_catalogue(name: str, catalog: Catalog) -> None:
    for cat in (catalog, None):
        tab = load_tab(WORKFLOWS / f"{name}.json", cat)
        assert tab.params, name
        assert tab.workflow.output_node_ids(cat)


def test_txt2img_schema_maps_names_labels_and_server_ranges(catalog: Catalog) -> None:
    tab = load_tab(WORKFLOWS / "txt2img.json", catalog)
    assert [p.name for p in tab.params] == ["prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height",
                                            "sampler", "checkpoint"]
    seed = tab.param("seed")
    assert seed.targets == (("3", "seed"),) and seed.randomize and seed.kind == "int"
    assert seed.maximum == 18446744073709551615  # from the server's catalogue
    assert tab.param("prompt").lines == 3 and tab.param("prompt").kind == "text"
    assert tab.param("steps").maximum == 50  # schema narrows the server's 10000
    assert tab.param("sampler").choices == ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "ddim")
    assert tab.param("checkpoint").kind == "choice" and tab.param("width").advanced
    assert [(o.name, o.node_id) for o in tab.outputs] == [("image", "9")]


def test_invert_image_input_is_an_upload_even_without_a_catalogue() -> None:
    assert load_tab(WORKFLOWS / "invert.json", None).param("image").kind == "image"


def test_missing_input_names_file_key_and_reason(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "inputs:\n  steps: {node: '3', input: stepz}\n")
    assert problems(path) == [
        f"{tmp_path}/txt2img.yaml: inputs.steps: node '3' has no input 'stepz' "
        "(its inputs: seed, steps, cfg, sampler_name, scheduler, denoise)"]


def test_every_problem_is_reported_at_once(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, """
title: T
colour: red
inputs:
  prompt: {node: "66", input: text}
  steps: {node: "3", input: steps, lable: Steps}
  cfg: {node: KSampler, input: cfg, default: 500}
  seed: {node: "3", input: seed, maximum: 99999999999999999999999}
  clip: {node: "6", input: clip}
  2fast: {node: "3", input: steps}
  model: {node: "3"}
outputs:
  decoded: {node: "8"}
""")
    src = f"{tmp_path}/txt2img.yaml"
    assert problems(path, catalog) == [
        f"{src}: colour: unknown key; allowed keys are: title, description, order, inputs, outputs",
        f"{src}: inputs.prompt: node '66' does not exist in txt2img.json",
        f"{src}: inputs.steps.lable: unknown key; allowed keys are: node, input, label, info, lines, minimum, "
        "maximum, step, choices, default, randomize, advanced, required, widget",
        f"{src}: inputs.cfg: default 500 is above the maximum 100.0",
        f"{src}: inputs.seed: maximum 99999999999999999999999 is outside the server's range for this input "
        "(0 to 18446744073709551615)",
        f"{src}: inputs.clip: input 'clip' of node '6' is connected to node '4'; only widget values can be set "
        "from the form",
        f"{src}: inputs.2fast: the name must be a Python identifier (letters, digits and _, not starting with a "
        "digit) because it is the parameter name in the API",
        f"{src}: inputs.model: missing required key 'input'",
        f"{src}: outputs.decoded: node '8' (VAEDecode) is not an output node; pick a SaveImage, PreviewImage or "
        "other output node",
    ]


def test_nodes_by_title_or_class_and_several_targets(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "inputs:\n  text: {node: [Positive prompt, '7'], input: text}\n"
                                "  sampler: {node: KSampler, input: sampler_name}\n")
    tab = load_tab(path)
    assert tab.param("text").targets == (("6", "text"), ("7", "text"))
    assert tab.param("sampler").targets == (("3", "sampler_name"),)


def test_ambiguous_class_reference_asks_for_an_id(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "inputs:\n  text: {node: CLIPTextEncode, input: text}\n")
    assert problems(path) == [f"{tmp_path}/txt2img.yaml: inputs.text: node 'CLIPTextEncode' is ambiguous: "
                              "nodes 6, 7 match; use an id"]


def test_choice_default_must_be_among_the_choices(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "inputs:\n  sampler: {node: '3', input: sampler_name, choices: [ddim, lcm]}\n")
    assert problems(path) == [f"{tmp_path}/txt2img.yaml: inputs.sampler: default 'euler' is not one of the "
                              "choices ['ddim', 'lcm']"]


def test_broken_files_say_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert problems(tmp_path / "bad.json")[0].startswith(f"{tmp_path}/bad.json: is not valid JSON (")
    (tmp_path / "ui.json").write_text(json.dumps({"nodes": [], "links": []}))
    assert problems(tmp_path / "ui.json") == [
        f"{tmp_path}/ui.json: is a UI-format workflow and converting it needs the server's node list; start "
        "ComfyUI (or export the workflow with 'Export (API)') and restart the app"]
    path = write_pair(tmp_path, "inputs: [1, 2]\n", name="listy")
    assert problems(path) == [f"{tmp_path}/listy.yaml: inputs: must be a mapping of names to settings, not list"]
    path = write_pair(tmp_path, "inputs: {a: {node: '3'\n", name="broken")
    assert problems(path)[0].startswith(f"{tmp_path}/broken.yaml: is not valid YAML:")


def test_workflow_without_schema_gets_an_inferred_form(catalog: Catalog, tmp_path: Path) -> None:
    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / "plain.json")
    tab = load_tab(tmp_path / "plain.json", catalog)
    main = [p.name for p in tab.params if not p.advanced]
    assert main == ["prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "scheduler", "denoise",
                    "width", "height", "batch_size", "checkpoint"]
    assert tab.param("seed").randomize and not any(p.name == "filename_prefix" for p in tab.params)
    blur = load_tab(WORKFLOWS / "blur.json", catalog)
    assert blur.param("image").kind == "image" and not blur.param("image").advanced
    assert {p.name for p in blur.params if p.advanced} == {"blur_radius", "sigma", "upscale_method", "width",
                                                            "height", "crop"}
    assert blur.param("blur_radius").maximum == 31  # typed from the server's catalogue


def test_video_and_audio_loaders_become_uploads(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
             "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "f"}},
             "4": {"class_type": "LoadAudio", "inputs": {"audio": "a.wav"}}}
    (tmp_path / "media.json").write_text(json.dumps(nodes))
    (tmp_path / "media.yaml").write_text("inputs:\n  clip: {node: '1', input: file}\n  sound: {node: '4', input: audio}\n")
    with_catalog = load_tab(tmp_path / "media.json", catalog)
    assert with_catalog.param("clip").kind == "video"  # video_upload in the server's catalogue
    without = load_tab(tmp_path / "media.json", None)
    assert (without.param("clip").kind, without.param("sound").kind) == ("video", "audio")


def test_a_tab_carries_the_versions_of_the_files_it_was_built_from(tmp_path: Path) -> None:
    import hashlib

    path = write_pair(tmp_path, "inputs:\n  steps: {node: '3', input: steps}\n")
    tab = load_tab(path)
    expected = {"workflow_sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "schema_sha256": hashlib.sha256((tmp_path / "txt2img.yaml").read_bytes()).hexdigest()[:16]}
    assert tab.versions == expected
    (tmp_path / "txt2img.yaml").write_text("inputs: {}\n")  # edited after loading: the tab keeps what it ran
    assert tab.versions == expected
    assert load_tab(WORKFLOWS / "blur.json").versions["schema_sha256"] is None  # no YAML
