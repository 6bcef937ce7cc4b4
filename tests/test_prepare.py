"""Applying values to a workflow: names, flat keys, types, ranges and seeds."""

from __future__ import annotations

import random

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.errors import InputError
from comfyui_gradio.forms.prepare import prepare
from comfyui_gradio.forms.loader import load_tab
from tests.paths import WORKFLOWS


@pytest.fixture()
def txt2img(catalog: Catalog):
    return load_tab(WORKFLOWS / "txt2img.json", catalog)


def test_named_values_reach_their_nodes_with_comfy_types(txt2img) -> None:
    prepared = prepare(txt2img, {"prompt": "a cat", "steps": 12.0, "cfg": "6.5", "width": 768, "seed": 7})
    nodes = prepared.prompt
    assert nodes["6"]["inputs"]["text"] == "a cat"
    assert nodes["3"]["inputs"]["steps"] == 12 and type(nodes["3"]["inputs"]["steps"]) is int
    assert nodes["3"]["inputs"]["cfg"] == 6.5
    assert nodes["5"]["inputs"]["width"] == 768 and nodes["3"]["inputs"]["seed"] == 7
    assert prepared.seeds == {"seed": 7}
    assert nodes["3"]["inputs"]["model"] == ["4", 0]  # links untouched
    assert txt2img.workflow.nodes["6"]["inputs"]["text"] != "a cat"  # the loaded workflow is never mutated


def test_omitted_values_keep_the_workflow_defaults_and_seed_is_randomized(txt2img) -> None:
    first = prepare(txt2img, {}, random.Random(1))
    second = prepare(txt2img, {}, random.Random(2))
    assert first.prompt["7"]["inputs"]["text"] == "blurry, low quality, watermark"
    assert first.seeds["seed"] != second.seeds["seed"]
    assert first.prompt["3"]["inputs"]["seed"] == first.seeds["seed"]


def test_flat_viewcomfy_keys_set_any_node_input(txt2img) -> None:
    prepared = prepare(txt2img, {"6-inputs-text": "a dog", "9-inputs-filename_prefix": "mine"})
    assert prepared.prompt["6"]["inputs"]["text"] == "a dog"
    assert prepared.prompt["9"]["inputs"]["filename_prefix"] == "mine"


@pytest.mark.parametrize("values, message", [
    ({"steps": 200}, "Steps: value 200 bigger than max of 50"),
    ({"steps": 0}, "Steps: value 0 smaller than min of 1"),
    ({"steps": "many"}, "Steps: expected a whole number, got 'many'"),
    ({"steps": 2.5}, "Steps: expected a whole number, got 2.5"),
    ({"cfg": True}, "CFG scale: expected a number, got True"),
    ({"sampler": "magic"}, "Sampler: 'magic' is not one of: euler, euler_ancestral, dpmpp_2m, dpmpp_2m_sde, ddim"),
    ({"promt": "x"}, "promt: this workflow has no input named 'promt'; its inputs are: prompt, negative_prompt, "
                     "seed, steps, cfg, width, height, sampler, checkpoint, or set any node input with a key "
                     "like '6-inputs-text'"),
    ({"66-inputs-text": "x"}, "66-inputs-text: the workflow has no node '66'; node ids are 3, 4, 5, 6, 7, 8, 9"),
])
def test_bad_values_name_the_field(txt2img, values: dict, message: str) -> None:
    with pytest.raises(InputError) as caught:
        prepare(txt2img, values)
    assert str(caught.value) == message


def test_required_inputs_need_a_value(tmp_path) -> None:
    import shutil

    shutil.copy(WORKFLOWS / "invert.json", tmp_path / "inv.json")
    (tmp_path / "inv.yaml").write_text("inputs:\n  image: {node: '1', input: image, label: Photo, required: true}\n"
                                       "  prefix: {node: '3', input: filename_prefix, required: true}\n")
    tab = load_tab(tmp_path / "inv.json")
    with pytest.raises(InputError) as caught:
        prepare(tab, {"prefix": "x"})
    assert str(caught.value) == "Photo: is required; upload an image"
    with pytest.raises(InputError) as caught:
        prepare(tab, {"image": "a.png", "prefix": ""})
    assert str(caught.value) == "Prefix: is required; give a value"
    assert prepare(tab, {"image": "a.png", "prefix": "p"}).prompt["3"]["inputs"]["filename_prefix"] == "p"
