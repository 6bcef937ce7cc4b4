"""V3 dynamic inputs as the frontend sends them (``dynamicWidgets.ts``; object_info shape from
``comfy_api/latest/_io.py``): a dynamic combo's option brings widgets named ``<combo>.<input>``
right after the combo; autogrow and match-type inputs are sockets saved as ``<input>.<name>``; a
saved input the server's class lacks is refused by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfyui_gradio.errors import ConfigError, Problem
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.convert import ui_to_api
from tests.test_convert import node, out, slot, workflow

SCALE_DIMENSIONS = {"key": "scale dimensions", "inputs": {
    "required": {"width": ["INT", {"default": 512, "min": 0}], "height": ["INT", {"default": 512}],
                 "crop": [["center", "disabled"]]}}}
SCALE_BY = {"key": "scale by", "inputs": {"required": {"multiplier": ["FLOAT", {"default": 1.0}]},
                                          "optional": {"mask": ["MASK"]}}}
V3_CLASSES = {
    "ResizeImageMaskNode": {
        "input": {"required": {"input": ["IMAGE,MASK"],
                               "resize_type": ["COMFY_DYNAMICCOMBO_V3", {"options": [SCALE_DIMENSIONS, SCALE_BY]}],
                               "scale_method": [["lanczos", "area"]]}},
        "input_order": {"required": ["input", "resize_type", "scale_method"]},
        "output": ["IMAGE"], "display_name": "Resize Image/Mask"},
    "ComfyMathExpression": {
        "input": {"required": {"expression": ["STRING", {"default": "a + b"}],
                               "values": ["COMFY_AUTOGROW_V3", {"template": {"input": {"required": {
                                   "a": ["FLOAT,INT,BOOLEAN", {"forceInput": True}]}}, "prefix": "", "min": 1}}]}},
        "output": ["FLOAT"], "display_name": "Math Expression"},
    "Nested": {
        "input": {"required": {"mode": ["COMFY_DYNAMICCOMBO_V3", {"options": [
            {"key": "outer", "inputs": {"required": {"inner": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                {"key": "deep", "inputs": {"required": {"seed": ["INT", {"control_after_generate": True}]}}}]}],
                "after": ["STRING", {}]}}}]}]}},
        "output": ["INT"], "display_name": "Nested"},
    "RecordAudio": {"input": {"required": {"audio": ["AUDIO_RECORD", {}]}}, "output": ["AUDIO"],
                    "display_name": "Record Audio"},
}


@pytest.fixture(scope="module")
def v3_catalog(object_info: dict) -> Catalog:
    return Catalog({**copy.deepcopy(object_info), **V3_CLASSES})


def resize(widgets: Any, extra_inputs: list[dict] | None = None) -> dict:
    return workflow([
        node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=["cat.png", "image"]),
        node(2, "ResizeImageMaskNode", inputs=[slot("input", "IMAGE,MASK", 1), *(extra_inputs or [])],
             outputs=[out("IMAGE", "IMAGE", [2])], widgets=widgets),
        node(3, "SaveImage", inputs=[slot("images", "IMAGE", 2)], widgets=["out"]),
    ], [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]])


def test_a_dynamic_combo_sends_its_choice_and_the_chosen_options_widgets(v3_catalog: Catalog) -> None:
    prompt = ui_to_api(resize(["scale dimensions", 1024, 768, "center", "lanczos"]), v3_catalog)
    assert prompt["2"] == {"inputs": {"resize_type": "scale dimensions", "resize_type.width": 1024,
                                      "resize_type.height": 768, "resize_type.crop": "center",
                                      "scale_method": "lanczos", "input": ["1", 0]},
                           "class_type": "ResizeImageMaskNode", "_meta": {"title": "Resize Image/Mask"}}


def test_another_option_brings_other_widgets_and_its_sockets(v3_catalog: Catalog) -> None:
    wf = resize(["scale by", 2.5, "area"], [slot("resize_type.mask", "MASK", 3)])
    wf["links"].append([3, 1, 1, 2, 1, "MASK"])
    assert ui_to_api(wf, v3_catalog)["2"]["inputs"] == {
        "resize_type": "scale by", "resize_type.multiplier": 2.5, "scale_method": "area", "input": ["1", 0],
        "resize_type.mask": ["1", 1]}


def test_a_linked_option_widget_sends_its_link(v3_catalog: Catalog) -> None:
    wf = resize(["scale dimensions", 1024, 768, "center", "lanczos"],
                [slot("resize_type.width", "INT", 4, widget=True)])
    wf["nodes"].append(node(4, "GetImageSize", inputs=[slot("image", "IMAGE")], outputs=[out("width", "INT", [4])]))
    wf["links"].append([4, 4, 0, 2, 1, "INT"])
    assert ui_to_api(wf, v3_catalog)["2"]["inputs"]["resize_type.width"] == ["4", 0]


def test_an_unsaved_dynamic_combo_takes_its_first_option_and_its_defaults(v3_catalog: Catalog) -> None:
    assert ui_to_api(resize([]), v3_catalog)["2"]["inputs"] == {
        "resize_type": "scale dimensions", "resize_type.width": 512, "resize_type.height": 512,
        "resize_type.crop": "center", "scale_method": "lanczos", "input": ["1", 0]}


def test_values_saved_by_name_pick_the_option_by_name(v3_catalog: Catalog) -> None:
    saved = {"resize_type": "scale by", "resize_type.multiplier": 3.0, "scale_method": "area"}
    assert ui_to_api(resize(saved), v3_catalog)["2"]["inputs"] == {**saved, "input": ["1", 0]}


def test_dynamic_combos_nest_and_their_widgets_keep_their_control_slots(v3_catalog: Catalog) -> None:
    wf = workflow([node(5, "Nested", outputs=[out("INT", "INT")], widgets=["outer", "deep", 42, "fixed", "text"])],
                  [])
    assert ui_to_api(wf, v3_catalog)["5"]["inputs"] == {"mode": "outer", "mode.inner": "deep", "mode.inner.seed": 42,
                                                        "mode.after": "text"}


def test_an_unknown_option_brings_no_widgets(v3_catalog: Catalog) -> None:
    assert ui_to_api(resize(["gone", "area"]), v3_catalog)["2"]["inputs"] == {
        "resize_type": "gone", "scale_method": "area", "input": ["1", 0]}


def test_autogrow_inputs_are_sockets_named_by_their_group(v3_catalog: Catalog) -> None:
    wf = workflow([
        node(1, "GetImageSize", inputs=[slot("image", "IMAGE")], outputs=[out("width", "INT", [1])]),
        node(2, "ComfyMathExpression", inputs=[slot("values.a", "FLOAT,INT,BOOLEAN", 1),
                                               slot("values.b", "FLOAT,INT,BOOLEAN")],
             outputs=[out("FLOAT", "FLOAT")], widgets=["a > 2048"]),
    ], [[1, 1, 0, 2, 0, "INT"]])
    assert ui_to_api(wf, v3_catalog)["2"]["inputs"] == {"expression": "a > 2048", "values.a": ["1", 0]}


def test_record_audio_sends_its_empty_recording(v3_catalog: Catalog) -> None:
    wf = workflow([node(1, "RecordAudio", outputs=[out("AUDIO", "AUDIO")], widgets=[""]),
                   node(2, "RecordAudio", outputs=[out("AUDIO", "AUDIO")])], [])
    prompt = ui_to_api(wf, v3_catalog)
    assert (prompt["1"]["inputs"], prompt["2"]["inputs"]) == ({"audio": ""}, {"audio": ""})


def test_an_input_the_servers_class_lacks_is_refused_by_name(v3_catalog: Catalog) -> None:
    wf = resize(["scale dimensions", 1, 2, "center", "area"], [slot("sharpen", "FLOAT")])
    wf["nodes"][1]["title"] = "Resize"
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, v3_catalog, source="r.json")
    assert caught.value.problems == [Problem("r.json", "nodes.2", (
        "'Resize' was saved with input sharpen, which node ResizeImageMaskNode on this ComfyUI server does not have "
        "(the file comes from another version of the node): update ComfyUI or the custom node, or open the "
        "workflow in ComfyUI and save it with Export (API)"))]


def test_a_dotted_input_of_a_plain_input_is_refused_too(v3_catalog: Catalog) -> None:
    wf = resize(["scale dimensions", 1, 2, "center", "area"], [slot("scale_method.x", "FLOAT"), slot("z", "INT")])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, v3_catalog, source="r.json")
    assert "saved with input scale_method.x, z, which node" in caught.value.problems[0].reason


def test_extension_widgets_are_sent_as_the_chosen_frontend_sends_them(v3_catalog: Catalog) -> None:
    wf = workflow([node(1, "SaveImage", inputs=[slot("images", "IMAGE")], widgets=["x"]),
                   node(2, "LoadImage", outputs=[out("IMAGE", "IMAGE")], widgets=["a.png", "image"])], [])
    raw = v3_catalog.raw
    catalog = Catalog({**raw, "SaveGLB": raw["SaveImage"], "LoadAudio": raw["LoadImage"]})
    wf["nodes"][0]["type"], wf["nodes"][1]["type"] = "SaveGLB", "LoadAudio"
    assert ui_to_api(wf, catalog)["1"]["inputs"] == {"filename_prefix": "x", "image": ""}
    assert ui_to_api(wf, catalog)["2"]["inputs"] == {"image": "a.png"}
    assert ui_to_api(wf, catalog, frontend="1.27.10")["2"]["inputs"] == {"image": "a.png", "audioUI": ""}
    assert ui_to_api(wf, catalog, frontend="1.40")["2"]["inputs"] == {"image": "a.png", "audioUI": ""}
    assert "image" not in ui_to_api(wf, catalog, frontend="1.26.0")["1"]["inputs"]  # before any recording


@pytest.mark.parametrize("version", ["latest", "1", "1.x.2"])
def test_a_frontend_that_is_no_version_is_refused(v3_catalog: Catalog, version: str) -> None:
    with pytest.raises(ValueError, match=f"frontend must be a version such as '1.58.1', not '{version}'"):
        ui_to_api(resize([]), v3_catalog, frontend=version)


def test_saved_values_that_do_not_fit_their_widgets_are_refused(v3_catalog: Catalog) -> None:
    """A file from another version of the class puts a word in a number, a number in a choice."""
    wf = resize(["scale dimensions", 1, "wide", "center", 100])
    wf["nodes"][1]["title"] = "Resize"
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, v3_catalog, source="r.json")
    assert caught.value.problems == [Problem("r.json", "nodes.2", (
        "'Resize' was saved with values that do not fit node ResizeImageMaskNode on this ComfyUI server "
        "(resize_type.height = 'wide', scale_method = 100; the file comes from another version of the node): "
        "update ComfyUI or the custom node, or open the workflow in ComfyUI and save it with Export (API)"))]


@pytest.mark.parametrize("values", [
    ["scale dimensions", 1.5, 2, "missing crop", "missing method"],  # words where words are chosen
    ["scale dimensions", None, 2, "center", "area"], ["scale dimensions", [1], {"a": 1}, "center", "area"],
])
def test_values_of_the_right_kind_are_taken(v3_catalog: Catalog, values: list) -> None:
    assert ui_to_api(resize(values), v3_catalog)["2"]["inputs"]["resize_type"] == "scale dimensions"


def test_a_bool_is_no_number(v3_catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"resize_type.width = True"):
        ui_to_api(resize(["scale dimensions", True, 2, "center", "area"]), v3_catalog)


def test_a_float_widget_takes_no_word_and_named_values_are_checked_too(v3_catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"resize_type.multiplier = 'big'"):
        ui_to_api(resize(["scale by", "big", "area"]), v3_catalog)
    with pytest.raises(ConfigError, match=r"scale_method = 3"):
        ui_to_api(resize({"resize_type": "scale by", "scale_method": 3}), v3_catalog)
