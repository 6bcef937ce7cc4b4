"""Applying values to a workflow: names, flat keys, types, ranges and seeds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.errors import InputError
from comfyui_gradio.forms.prepare import SEED_CEILING, flat_target, prepare, random_seed
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import Param, TabSpec
from comfyui_gradio.forms.workflow import Workflow
from tests.paths import WORKFLOWS

NODES = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "blur"}},
    "4": {"class_type": "KSampler", "inputs": {"seed": 5, "denoise": 1.0, "sampler_name": "euler"}},
}


def tab_of(*params: Param) -> TabSpec:
    """A tab over ``NODES`` with exactly these parameters (no files, no catalogue)."""
    workflow = Workflow("blur", Path("blur.json"), NODES)
    return TabSpec("blur", "Blur", "", workflow, params, ())


def param(name: str, node: str, kind: str, **settings: Any) -> Param:
    return Param(name=name, targets=((node, settings.pop("input", name)),), kind=kind,
                 label=settings.pop("label", name.capitalize()), **settings)


class FixedRandom(random.Random):
    """Records the bounds it is asked for and answers the lower one."""

    def __init__(self) -> None:
        super().__init__(0)
        self.asked: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.asked.append((a, b))
        return a


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


# ---------------------------------------------------------------------------- the whole prompt, pure


def test_the_prompt_is_the_workflow_with_every_value_in_place() -> None:
    tab = tab_of(param("radius", "2", "int", input="blur_radius", default=1, minimum=1, maximum=31),
                 param("sigma", "2", "float", default=1.0),
                 param("prefix", "3", "text", input="filename_prefix", default="blur"))
    prepared = prepare(tab, {"radius": "4", "sigma": 2, "3-inputs-filename_prefix": "mine", "4-inputs-seed": "x"})
    assert prepared.prompt == {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 4, "sigma": 2.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mine"}},
        "4": {"class_type": "KSampler", "inputs": {"seed": "x", "denoise": 1.0, "sampler_name": "euler"}},
    }
    assert prepared.values == {"radius": 4, "sigma": 2.0, "prefix": "blur", "3-inputs-filename_prefix": "mine",
                               "4-inputs-seed": "x"}
    assert type(prepared.prompt["2"]["inputs"]["sigma"]) is float
    assert prepared.seeds == {}
    assert NODES["3"]["inputs"]["filename_prefix"] == "blur"  # the workflow itself is untouched


def test_one_parameter_sets_every_node_it_targets() -> None:
    both = Param("strength", (("2", "sigma"), ("4", "denoise")), "float", "Strength", default=0.5)
    assert prepare(tab_of(both), {}).prompt["4"]["inputs"]["denoise"] == 0.5
    prompt = prepare(tab_of(both), {"strength": 0.25}).prompt
    assert (prompt["2"]["inputs"]["sigma"], prompt["4"]["inputs"]["denoise"]) == (0.25, 0.25)


def test_a_parameter_named_like_a_flat_key_is_the_parameter() -> None:
    odd = param("2-inputs-sigma", "2", "float", input="sigma", maximum=3)
    with pytest.raises(InputError) as caught:
        prepare(tab_of(odd), {"2-inputs-sigma": 9})  # checked as the parameter, not set raw
    assert str(caught.value) == "2-inputs-sigma: value 9.0 bigger than max of 3"
    prepared = prepare(tab_of(odd), {"2-inputs-sigma": "0.5"})
    assert prepared.prompt["2"]["inputs"]["sigma"] == 0.5 and prepared.values == {"2-inputs-sigma": 0.5}


def test_flat_target_splits_at_the_first_inputs() -> None:
    assert flat_target("6-inputs-text") == ("6", "text")
    assert flat_target("my node-inputs-a-inputs-b") == ("my node", "a-inputs-b")
    assert flat_target("6-input-text") is None and flat_target("-inputs-text") is None
    assert flat_target("6-inputs-") is None


def test_unknown_names_list_the_inputs_or_say_there_are_none() -> None:
    with pytest.raises(InputError) as caught:
        prepare(tab_of(), {"radius": 3})
    assert str(caught.value) == ("radius: this workflow has no input named 'radius'; its inputs are: (none), or set "
                                 "any node input with a key like '6-inputs-text'")
    assert caught.value.field == "radius"


# ---------------------------------------------------------------------------- seeds


def test_a_randomized_seed_is_drawn_when_no_value_is_given() -> None:
    seed = param("seed", "4", "int", randomize=True, default=5, minimum=0, maximum=2**64 - 1)
    rng = FixedRandom()
    prepared = prepare(tab_of(seed), {}, rng)
    assert rng.asked == [(0, SEED_CEILING)]
    assert prepared.prompt["4"]["inputs"]["seed"] == 0 and prepared.seeds == {"seed": 0}
    assert prepared.values == {"seed": 0}
    given = prepare(tab_of(seed), {"seed": 9}, rng)
    assert (given.seeds, rng.asked) == ({"seed": 9}, [(0, SEED_CEILING)])  # a given seed is not redrawn


def test_a_seed_without_randomize_keeps_its_default_and_is_still_reported() -> None:
    seed = param("seed", "4", "int", default=5)
    prepared = prepare(tab_of(seed), {}, FixedRandom())
    assert prepared.seeds == {"seed": 5} and prepared.prompt["4"]["inputs"]["seed"] == 5


def test_without_an_rng_the_system_draws_a_seed_in_bounds() -> None:
    seed = param("seed", "4", "int", randomize=True, minimum=10, maximum=12)
    assert {prepare(tab_of(seed), {}).seeds["seed"] for _ in range(30)} <= {10, 11, 12}


@pytest.mark.parametrize("minimum, maximum, asked", [
    (None, None, (0, SEED_CEILING)),
    (3, 7, (3, 7)),
    (3.0, 7.9, (3, 7)),
    (None, 2**64 - 1, (0, SEED_CEILING)),  # what a browser Number holds
    (9, 2, (9, 9)),  # an upside-down range gives its minimum
    (None, 0, (0, 0)),
])
def test_random_seed_stays_in_the_parameters_bounds(minimum: Any, maximum: Any, asked: tuple[int, int]) -> None:
    rng = FixedRandom()
    assert random_seed(param("seed", "4", "int", minimum=minimum, maximum=maximum), rng) == asked[0]
    assert rng.asked == [asked]


def test_random_seed_without_an_rng_uses_the_system() -> None:
    assert random_seed(param("seed", "4", "int", minimum=4, maximum=4)) == 4


# ---------------------------------------------------------------------------- conversion and checks


@pytest.mark.parametrize("kind, given, sent", [
    ("int", " 12 ", 12), ("int", 3.0, 3), ("int", "-4", -4), ("int", 7, 7),
    ("float", "6.5", 6.5), ("float", 2, 2.0), ("float", "1e-3", 0.001),
    ("bool", True, True), ("bool", False, False), ("bool", " Yes ", True), ("bool", "on", True), ("bool", "1", True),
    ("bool", "true", True), ("bool", "no", False), ("bool", "OFF", False), ("bool", "0", False),
    ("bool", "false", False), ("bool", 1, True), ("bool", 0, False),
    ("text", None, ""), ("text", 5, 5), ("choice", "lcm", "lcm"), ("choice", None, None),
])
def test_values_are_converted_to_what_comfyui_expects(kind: str, given: Any, sent: Any) -> None:
    tab = tab_of(param("value", "4", kind, input="sampler_name"))
    converted = prepare(tab, {"value": given}).prompt["4"]["inputs"]["sampler_name"]
    assert converted == sent and type(converted) is type(sent)


@pytest.mark.parametrize("kind, given, message", [
    ("int", True, "Value: expected a whole number, got True"),
    ("int", "1.0", "Value: expected a whole number, got '1.0'"),
    ("int", None, "Value: expected a whole number, got None"),
    ("int", [1], "Value: expected a whole number, got [1]"),
    ("float", False, "Value: expected a number, got False"),
    ("float", "six", "Value: expected a number, got 'six'"),
    ("float", None, "Value: expected a number, got None"),
    ("bool", "maybe", "Value: expected true or false, got 'maybe'"),
    ("bool", 2, "Value: expected true or false, got 2"),
])
def test_a_value_of_the_wrong_type_names_the_field(kind: str, given: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        prepare(tab_of(param("value", "4", kind, input="sampler_name")), {"value": given})
    assert (str(caught.value), caught.value.field) == (message, "Value")


def test_listed_choices_are_enforced_and_a_long_list_is_cut_short() -> None:
    few = param("sampler", "4", "choice", input="sampler_name", choices=("euler", "lcm"), strict_choices=True)
    assert prepare(tab_of(few), {"sampler": "lcm"}).prompt["4"]["inputs"]["sampler_name"] == "lcm"
    with pytest.raises(InputError) as caught:
        prepare(tab_of(few), {"sampler": "ddim"})
    assert str(caught.value) == "Sampler: 'ddim' is not one of: euler, lcm"
    many = param("sampler", "4", "choice", input="sampler_name", choices=tuple(range(21)), strict_choices=True)
    with pytest.raises(InputError) as caught:
        prepare(tab_of(many), {"sampler": 99})
    assert str(caught.value) == ("Sampler: 99 is not one of: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, "
                                 "17, 18, 19 ...")
    twenty = param("sampler", "4", "choice", input="sampler_name", choices=tuple(range(20)), strict_choices=True)
    with pytest.raises(InputError) as caught:
        prepare(tab_of(twenty), {"sampler": 99})
    assert str(caught.value).endswith("18, 19")


def test_the_servers_choices_are_not_enforced_because_they_may_be_stale() -> None:
    served = param("sampler", "4", "choice", input="sampler_name", choices=("euler",))
    assert prepare(tab_of(served), {"sampler": "new_one"}).prompt["4"]["inputs"]["sampler_name"] == "new_one"


@pytest.mark.parametrize("kind, minimum, maximum, given, message", [
    ("int", 1, 31, 0, "Radius: value 0 smaller than min of 1"),
    ("int", 1, 31, 32, "Radius: value 32 bigger than max of 31"),
    ("float", 0.5, 2.0, 0.25, "Radius: value 0.25 smaller than min of 0.5"),
    ("float", 0.5, 2.0, 2.5, "Radius: value 2.5 bigger than max of 2"),
    ("float", 0, 1.5, -1, "Radius: value -1.0 smaller than min of 0"),
])
def test_values_outside_the_range_name_the_field_and_the_bound(
    kind: str, minimum: float, maximum: float, given: Any, message: str
) -> None:
    radius = param("radius", "2", kind, input="blur_radius", minimum=minimum, maximum=maximum)
    with pytest.raises(InputError) as caught:
        prepare(tab_of(radius), {"radius": given})
    assert str(caught.value) == message


def test_the_bounds_themselves_are_allowed_and_unbounded_numbers_are_free() -> None:
    radius = param("radius", "2", "int", input="blur_radius", minimum=1, maximum=31)
    assert [prepare(tab_of(radius), {"radius": v}).values["radius"] for v in (1, 31)] == [1, 31]
    free = param("radius", "2", "float", input="blur_radius")
    assert prepare(tab_of(free), {"radius": -1e9}).values["radius"] == -1e9
    lower_only = param("radius", "2", "int", input="blur_radius", minimum=0)
    assert prepare(tab_of(lower_only), {"radius": 10**12}).values["radius"] == 10**12


def test_ranges_apply_to_numbers_only() -> None:
    text = param("prefix", "3", "text", input="filename_prefix", minimum=5, maximum=6)
    assert prepare(tab_of(text), {"prefix": "abc"}).values["prefix"] == "abc"


@pytest.mark.parametrize("kind, article", [("image", "an"), ("video", "a"), ("audio", "an")])
def test_a_required_upload_asks_for_its_kind_of_file(kind: str, article: str) -> None:
    upload = param("source", "1", kind, input="image", required=True)
    for missing in ({}, {"source": None}, {"source": ""}):
        with pytest.raises(InputError) as caught:
            prepare(tab_of(upload), missing)
        assert str(caught.value) == f"Source: is required; upload {article} {kind}"


def test_a_required_value_may_be_zero_or_false() -> None:
    count = param("radius", "2", "int", input="blur_radius", required=True)
    assert prepare(tab_of(count), {"radius": 0}).values == {"radius": 0}
    flag = param("flag", "2", "bool", input="sigma", required=True)
    assert prepare(tab_of(flag), {"flag": False}).values == {"flag": False}
