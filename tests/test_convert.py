"""UI-format -> API-format conversion, checked against the real /object_info of ComfyUI 0.3.64
(the ``catalog`` fixture).

Each expected prompt is what ComfyUI's frontend (graphToPrompt) sends for the same graph.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.convert import is_ui_format, linear_data, ui_to_api
from comfyui_gradio.errors import ConfigError, Problem
from tests.paths import UI_WORKFLOWS



def load(name: str) -> dict:
    return json.loads((UI_WORKFLOWS / name).read_text())


def node(
    node_id: int,
    class_type: str,
    *,
    inputs: list[dict] | None = None,
    outputs: list[dict] | None = None,
    widgets: Any = None,
    mode: int = 0,
    title: str | None = None,
) -> dict:
    """A node as the editor saves it (positions and sizes do not matter to the conversion)."""
    saved: dict[str, Any] = {"id": node_id, "type": class_type, "pos": [0, 0], "size": [200, 100], "flags": {},
                             "order": node_id, "mode": mode, "inputs": inputs or [], "outputs": outputs or [],
                             "properties": {}}
    if widgets is not None:
        saved["widgets_values"] = widgets
    if title is not None:
        saved["title"] = title
    return saved


def slot(name: str, type_: str, link: int | None = None, *, widget: bool = False) -> dict:
    entry: dict[str, Any] = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def out(name: str, type_: str, links: list[int] | None = None) -> dict:
    return {"name": name, "type": type_, "links": links or []}


def workflow(nodes: list[dict], links: list[list], **top: Any) -> dict:
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4, **top}


DEFAULT_TXT2IMG_API = {
    "3": {"inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
                     "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                     "latent_image": ["5", 0]},
          "class_type": "KSampler", "_meta": {"title": "KSampler"}},
    "4": {"inputs": {"ckpt_name": "tiny-random-sd15.safetensors"}, "class_type": "CheckpointLoaderSimple",
          "_meta": {"title": "Load Checkpoint"}},
    "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1}, "class_type": "EmptyLatentImage",
          "_meta": {"title": "Empty Latent Image"}},
    "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
                     "clip": ["4", 1]},
          "class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
          "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
          "_meta": {"title": "VAE Decode"}},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage",
          "_meta": {"title": "Save Image"}},
}


# ---------------------------------------------------------------------------- format detection


def test_is_ui_format_tells_editor_saves_from_api_prompts() -> None:
    assert is_ui_format(load("default_txt2img.json"))
    assert not is_ui_format(DEFAULT_TXT2IMG_API)
    assert not is_ui_format([{"nodes": []}])
    assert not is_ui_format({"nodes": "not a list"})


def test_linear_data_returns_the_app_mode_form_raw() -> None:
    assert linear_data(load("primitive_seed_reroutes.json")) == {
        "inputs": [[6, "text"], [12, "value", {"label": "Seed"}]],
        "outputs": [9],
    }


def test_linear_data_is_none_without_app_mode() -> None:
    assert linear_data(load("default_txt2img.json")) is None
    assert linear_data({"nodes": [], "extra": {"linearData": "junk"}}) is None


def test_linear_data_fills_missing_lists() -> None:
    assert linear_data({"nodes": [], "extra": {"linearData": {"outputs": ["9"]}}}) == {"inputs": [], "outputs": ["9"]}


# ---------------------------------------------------------------------------- whole workflows


def test_default_txt2img_matches_frontend_prompt(catalog: Catalog) -> None:
    """The control value after the seed is skipped; SaveImage without widgets_values gets its default."""
    assert ui_to_api(load("default_txt2img.json"), catalog) == DEFAULT_TXT2IMG_API


def test_legacy_boolean_control_value_is_skipped_too(catalog: Catalog) -> None:
    """The frontend's own old default graph saved the control widget as ``true``."""
    wf = load("default_txt2img.json")
    sampler = next(n for n in wf["nodes"] if n["id"] == 3)
    sampler["widgets_values"] = [156680208700286, True, 20, 8, "euler", "normal", 1]
    assert ui_to_api(wf, catalog) == DEFAULT_TXT2IMG_API


def test_conversion_does_not_modify_the_workflow(catalog: Catalog) -> None:
    wf = load("primitive_seed_reroutes.json")
    before = copy.deepcopy(wf)
    ui_to_api(wf, catalog)
    assert wf == before


def test_primitive_reroutes_and_notes(catalog: Catalog) -> None:
    """A PrimitiveNode feeds both seeds; two chained Reroutes carry the VAE; notes vanish; titles kept."""
    assert ui_to_api(load("primitive_seed_reroutes.json"), catalog) == {
        "4": {"inputs": {"ckpt_name": "tiny-random-sd15.safetensors"}, "class_type": "CheckpointLoaderSimple",
              "_meta": {"title": "Load Checkpoint"}},
        "6": {"inputs": {"text": "a glass bottle on a beach", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "Positive"}},
        "7": {"inputs": {"text": "blurry", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "Negative"}},
        "5": {"inputs": {"width": 512, "height": 768, "batch_size": 1}, "class_type": "EmptyLatentImage",
              "_meta": {"title": "Empty Latent Image"}},
        "3": {"inputs": {"seed": 42, "steps": 25, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                         "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                         "latent_image": ["5", 0]},
              "class_type": "KSampler", "_meta": {"title": "KSampler"}},
        "13": {"inputs": {"add_noise": "enable", "noise_seed": 42, "steps": 30, "cfg": 7.5,
                          "sampler_name": "euler_ancestral", "scheduler": "normal", "start_at_step": 0,
                          "end_at_step": 10000, "return_with_leftover_noise": "disable", "model": ["4", 0],
                          "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
               "class_type": "KSamplerAdvanced", "_meta": {"title": "Second opinion"}},
        "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
              "_meta": {"title": "VAE Decode"}},
        "14": {"inputs": {"samples": ["13", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
               "_meta": {"title": "VAE Decode"}},
        "9": {"inputs": {"filename_prefix": "bottle", "images": ["8", 0]}, "class_type": "SaveImage",
              "_meta": {"title": "Save Image"}},
        "15": {"inputs": {"images": ["14", 0]}, "class_type": "PreviewImage", "_meta": {"title": "Preview Image"}},
    }


def test_load_image_bypass_and_mute(catalog: Catalog) -> None:
    """The "upload" button value is not sent; the bypassed blur passes the image through; the muted
    ImageScale is dropped and the PreviewImage that read from it loses that input, as in the frontend."""
    assert ui_to_api(load("load_bypass_mute.json"), catalog) == {
        "1": {"inputs": {"image": "photo of me.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
        "3": {"inputs": {"image": ["1", 0]}, "class_type": "ImageInvert", "_meta": {"title": "Invert Image"}},
        "4": {"inputs": {"filename_prefix": "inverted/%date:yyyy-MM-dd%", "images": ["3", 0]},
              "class_type": "SaveImage", "_meta": {"title": "Save Image"}},
        "6": {"inputs": {}, "class_type": "PreviewImage", "_meta": {"title": "Preview Image"}},
    }


# ---------------------------------------------------------------------------- widgets


def test_load_image_without_upload_value(catalog: Catalog) -> None:
    wf = workflow([node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE"), out("MASK", "MASK")],
                        widgets=["example.png"])], [])
    assert ui_to_api(wf, catalog) == {
        "1": {"inputs": {"image": "example.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}}
    }


def test_widgets_values_as_dict_maps_by_name_and_defaults_the_rest(catalog: Catalog) -> None:
    wf = workflow([node(5, "EmptyLatentImage", widgets={"width": 768, "height": 640, "videopreview": {"x": 1}})], [])
    assert ui_to_api(wf, catalog)["5"]["inputs"] == {"width": 768, "height": 640, "batch_size": 1}


def test_missing_widgets_values_take_class_defaults(catalog: Catalog) -> None:
    wf = workflow([node(3, "KSampler", widgets=[5])], [])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == {
        "seed": 5, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}


def test_control_value_missing_from_an_old_save_does_not_shift_widgets(catalog: Catalog) -> None:
    """A file saved before the seed had a control widget: the next value is steps, not a control word."""
    wf = workflow([node(3, "KSampler", widgets=[7, 20, 8, "euler", "normal", 1])], [])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == {
        "seed": 7, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "denoise": 1}


def test_extra_control_word_after_an_undeclared_int_is_skipped(catalog: Catalog) -> None:
    wf = workflow([node(2, "ImageBlur", widgets=[3, "increment", 1.5])], [])
    assert ui_to_api(wf, catalog)["2"] == {
        "inputs": {"blur_radius": 3, "sigma": 1.5}, "class_type": "ImageBlur", "_meta": {"title": "ImageBlur"}}


def test_widget_converted_to_input_takes_the_link(catalog: Catalog) -> None:
    """New frontend: the width socket is linked from a real PrimitiveInt node; its widget value is overridden."""
    wf = workflow(
        [node(1, "PrimitiveInt", outputs=[out("INT", "INT", [1])], widgets=[1024, "fixed"], title="Width"),
         node(2, "EmptyImage", inputs=[slot("width", "INT", 1, widget=True), slot("height", "INT", widget=True)],
              outputs=[out("IMAGE", "IMAGE")], widgets=[512, 256, 1, 0])],
        [[1, 1, 0, 2, 0, "INT"]])
    assert ui_to_api(wf, catalog) == {
        "1": {"inputs": {"value": 1024}, "class_type": "PrimitiveInt", "_meta": {"title": "Width"}},
        "2": {"inputs": {"width": ["1", 0], "height": 256, "batch_size": 1, "color": 0},
              "class_type": "EmptyImage", "_meta": {"title": "EmptyImage"}},
    }


def test_old_style_converted_widget_fed_by_primitive_node(catalog: Catalog) -> None:
    """Old frontend: a converted widget is an extra input with a widget config; its value slot stays."""
    converted = {"name": "text", "type": "STRING", "link": 2,
                 "widget": {"name": "text", "config": ["STRING", {"multiline": True, "dynamicPrompts": True}]}}
    wf = workflow(
        [node(1, "PrimitiveNode", outputs=[{"name": "STRING", "type": "STRING", "links": [2],
                                            "widget": {"name": "text"}}], widgets=["a red fox"], title="Prompt"),
         node(4, "CheckpointLoaderSimple", outputs=[out("MODEL", "MODEL"), out("CLIP", "CLIP", [1]),
                                                     out("VAE", "VAE")], widgets=["tiny-random-sd15.safetensors"]),
         node(6, "CLIPTextEncode", inputs=[slot("clip", "CLIP", 1), converted],
              outputs=[out("CONDITIONING", "CONDITIONING")], widgets=["stale text"])],
        [[1, 4, 1, 6, 0, "CLIP"], [2, 1, 0, 6, 1, "STRING"]])
    assert ui_to_api(wf, catalog)["6"]["inputs"] == {"text": "a red fox", "clip": ["4", 1]}


def test_list_widget_values_are_boxed(catalog: Catalog) -> None:
    wf = workflow([node(1, "StringConcatenate", widgets=[["not", "a", "link"], "b", ", "])], [])
    assert ui_to_api(wf, catalog)["1"]["inputs"] == {
        "string_a": {"__value__": ["not", "a", "link"]}, "string_b": "b", "delimiter": ", "}


# ---------------------------------------------------------------------------- links


def test_bypassed_sampler_passes_its_latent_through(catalog: Catalog) -> None:
    """Output 0 (LATENT) of a bypassed KSampler continues from its first LATENT input, not input 0 (MODEL)."""
    wf = workflow(
        [node(4, "CheckpointLoaderSimple", outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP"),
                                                     out("VAE", "VAE", [4])], widgets=["tiny-random-sd15.safetensors"]),
         node(5, "EmptyLatentImage", outputs=[out("LATENT", "LATENT", [2])], widgets=[512, 512, 1]),
         node(3, "KSampler", mode=4, inputs=[slot("model", "MODEL", 1), slot("positive", "CONDITIONING"),
                                            slot("negative", "CONDITIONING"), slot("latent_image", "LATENT", 2)],
              outputs=[out("LATENT", "LATENT", [3])], widgets=[1, "fixed", 20, 8, "euler", "normal", 1]),
         node(8, "VAEDecode", inputs=[slot("samples", "LATENT", 3), slot("vae", "VAE", 4)],
              outputs=[out("IMAGE", "IMAGE")])],
        [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 8, 0, "LATENT"], [4, 4, 2, 8, 1, "VAE"]])
    assert ui_to_api(wf, catalog)["8"]["inputs"] == {"samples": ["5", 0], "vae": ["4", 2]}
    assert "3" not in ui_to_api(wf, catalog)


def test_bypassed_lora_loader_passes_model_and_clip_by_slot(catalog: Catalog) -> None:
    wf = workflow(
        [node(4, "CheckpointLoaderSimple", outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2]),
                                                     out("VAE", "VAE")], widgets=["tiny-random-sd15.safetensors"]),
         node(10, "LoraLoader", mode=4, inputs=[slot("model", "MODEL", 1), slot("clip", "CLIP", 2)],
              outputs=[out("MODEL", "MODEL", [3]), out("CLIP", "CLIP", [4])], widgets=["style.safetensors", 1, 1]),
         node(6, "CLIPTextEncode", inputs=[slot("clip", "CLIP", 4)], outputs=[out("CONDITIONING", "CONDITIONING")],
              widgets=["hi"]),
         node(3, "KSampler", inputs=[slot("model", "MODEL", 3)], outputs=[out("LATENT", "LATENT")],
              widgets=[1, "fixed", 20, 8, "euler", "normal", 1])],
        [[1, 4, 0, 10, 0, "MODEL"], [2, 4, 1, 10, 1, "CLIP"], [3, 10, 0, 3, 0, "MODEL"], [4, 10, 1, 6, 0, "CLIP"]])
    prompt = ui_to_api(wf, catalog)
    assert prompt["6"]["inputs"]["clip"] == ["4", 1]
    assert prompt["3"]["inputs"]["model"] == ["4", 0]
    assert set(prompt) == {"4", "6", "3"}


def test_bypassed_node_without_a_matching_input_leaves_the_input_out(catalog: Catalog) -> None:
    wf = workflow(
        [node(5, "EmptyLatentImage", outputs=[out("LATENT", "LATENT", [1])], widgets=[512, 512, 1]),
         node(8, "VAEDecode", mode=4, inputs=[slot("samples", "LATENT", 1), slot("vae", "VAE")],
              outputs=[out("IMAGE", "IMAGE", [2])]),
         node(9, "SaveImage", inputs=[slot("images", "IMAGE", 2)], widgets=["x"])],
        [[1, 5, 0, 8, 0, "LATENT"], [2, 8, 0, 9, 0, "IMAGE"]])
    assert ui_to_api(wf, catalog)["9"]["inputs"] == {"filename_prefix": "x"}


def test_widget_input_linked_from_a_muted_node_is_removed(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "PrimitiveInt", mode=2, outputs=[out("INT", "INT", [1])], widgets=[1024, "fixed"]),
         node(2, "EmptyImage", inputs=[slot("width", "INT", 1, widget=True)], widgets=[512, 256, 1, 0])],
        [[1, 1, 0, 2, 0, "INT"]])
    assert ui_to_api(wf, catalog) == {
        "2": {"inputs": {"height": 256, "batch_size": 1, "color": 0}, "class_type": "EmptyImage",
              "_meta": {"title": "EmptyImage"}}}


def test_deleted_link_holes_are_skipped(catalog: Catalog) -> None:
    wf = load("default_txt2img.json")
    wf["links"].insert(3, None)
    assert ui_to_api(wf, catalog) == DEFAULT_TXT2IMG_API


def test_links_in_object_form_are_read(catalog: Catalog) -> None:
    wf = load("default_txt2img.json")
    wf["links"] = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4],
                    "type": l[5]} for l in wf["links"]]
    assert ui_to_api(wf, catalog) == DEFAULT_TXT2IMG_API


def test_reroute_loop_is_reported(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "Reroute", inputs=[slot("", "*", 2)], outputs=[out("", "IMAGE", [1])]),
         node(2, "Reroute", inputs=[slot("", "*", 1)], outputs=[out("", "IMAGE", [2, 3])]),
         node(3, "PreviewImage", inputs=[slot("images", "IMAGE", 3)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 1, 0, "IMAGE"], [3, 2, 0, 3, 0, "IMAGE"]])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="loop.json")
    assert str(caught.value) == (
        "loop.json: nodes.2: links form a loop through reroutes or bypassed nodes; "
        "open the workflow in ComfyUI and save it with Export (API)")


# ---------------------------------------------------------------------------- refusals


def test_missing_custom_node_class_is_reported_with_every_node(catalog: Catalog) -> None:
    wf = load("default_txt2img.json")
    wf["nodes"].append(node(20, "IPAdapterAdvanced", title="Face style"))
    wf["nodes"].append(node(21, "UltimateSDUpscale"))
    wf["nodes"].append(node(22, "ImpactWildcardProcessor", mode=4))  # bypassed: never sent, so no problem
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="workflows/faces.json")
    assert caught.value.problems == [
        Problem("workflows/faces.json", "nodes.20",
                "'Face style' needs node IPAdapterAdvanced, which this ComfyUI server does not have: install the "
                "custom node that provides it (or update ComfyUI) and restart ComfyUI, or open the workflow in "
                "ComfyUI and save it with Export (API)"),
        Problem("workflows/faces.json", "nodes.21",
                "'UltimateSDUpscale' needs node UltimateSDUpscale, which this ComfyUI server does not have: install "
                "the custom node that provides it (or update ComfyUI) and restart ComfyUI, or open the workflow in "
                "ComfyUI and save it with Export (API)"),
    ]


def test_legacy_group_node_is_refused(catalog: Catalog) -> None:
    wf = load("default_txt2img.json")
    wf["nodes"].append(node(30, "workflow>Upscaler"))
    wf["extra"]["groupNodes"] = {"Upscaler": {"nodes": [], "links": [], "external": []}}
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="g.json")
    assert str(caught.value) == (
        "g.json: nodes.30: 'workflow>Upscaler' is a group node ('Upscaler'), which cannot be converted "
        "here; open the workflow in ComfyUI and save it with Export (API), or convert the group node back to "
        "nodes and save the workflow again")


def test_api_format_input_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ConfigError) as caught:
        ui_to_api(DEFAULT_TXT2IMG_API, catalog, source="api.json")
    assert str(caught.value) == (
        "api.json: nodes: not a ComfyUI UI-format workflow (no 'nodes' list); "
        "open the workflow in ComfyUI and save it with Export (API)")


def test_malformed_link_is_refused(catalog: Catalog) -> None:
    wf = load("default_txt2img.json")
    wf["links"][0] = [1, 4]
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="bad.json")
    assert str(caught.value) == (
        "bad.json: links[0]: cannot read link [1, 4]; open the workflow in ComfyUI and save it with Export (API)")


# ---------------------------------------------------------------------------- more widget and link cases


@pytest.mark.parametrize(
    "saved",
    [
        ["a cat", "sd3.5-large", "1:1", "None", 4, 123, "fixed", 0.75],  # new frontend: forceInput has no widget
        ["a cat", "sd3.5-large", "1:1", "None", 4, 123, "fixed", "", 0.75],  # old frontend: a converted widget
    ],
)
def test_force_input_widgets_in_old_and_new_saves(catalog: Catalog, saved: list) -> None:
    wf = workflow([node(1, "StabilityStableImageSD_3_5Node", outputs=[out("IMAGE", "IMAGE")], widgets=saved)], [])
    assert ui_to_api(wf, catalog)["1"]["inputs"] == {
        "prompt": "a cat", "model": "sd3.5-large", "aspect_ratio": "1:1", "style_preset": "None", "cfg_scale": 4,
        "seed": 123, "image_denoise": 0.75}


def test_kjnodes_get_node_reads_its_set_node(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK")],
              widgets=["example.png", "image"]),
         node(2, "SetNode", inputs=[slot("IMAGE", "IMAGE", 1)], outputs=[out("*", "*")], widgets=["source"],
              title="Set_source"),
         node(3, "GetNode", outputs=[out("IMAGE", "IMAGE", [2])], widgets=["source"], title="Get_source"),
         node(4, "ImageInvert", inputs=[slot("image", "IMAGE", 2)], outputs=[out("IMAGE", "IMAGE")])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 3, 0, 4, 0, "IMAGE"]])
    prompt = ui_to_api(wf, catalog)
    assert set(prompt) == {"1", "4"}
    assert prompt["4"]["inputs"] == {"image": ["1", 0]}


def test_link_missing_from_the_table_leaves_the_input_unconnected(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    wf = workflow([node(9, "SaveImage", inputs=[slot("images", "IMAGE", 77)], widgets=["x"])], [])
    with caplog.at_level("WARNING", logger="comfyui_gradio.forms.convert"):
        assert ui_to_api(wf, catalog, source="damaged.json")["9"]["inputs"] == {"filename_prefix": "x"}
    assert caplog.messages == ["damaged.json: link 77 is missing from 'links'; the input is left unconnected"]


def test_muted_or_bypassed_missing_class_is_not_an_error(catalog: Catalog) -> None:
    wf = workflow([node(1, "SomeCustomNode", mode=2), node(2, "OtherCustomNode", mode=4)], [])
    assert ui_to_api(wf, catalog) == {}


# ---------------------------------------------------------------------------- the rules on a small catalogue

TOY = Catalog({
    "Toy": {
        "input": {"required": {"count": ["INT", {"default": 3}], "pick": [["a", "b"], {"control_after_generate": True}],
                               "word": ["STRING", {}], "image": ["IMAGE", {}]},
                  "optional": {"many": ["COMBO", {"options": ["x", "y"], "multiselect": True}],
                               "flag": ["BOOLEAN", {}], "note": ["MARKDOWN", {}]}},
        "input_order": {"required": ["word", "count", "pick", "image"], "optional": ["flag", "many"]},
        "display_name": "Toy node",
    },
    "Bare": {"input": {"required": {"choice": ["COMBO", {}], "ratio": ["FLOAT", {}], "seed": ["INT", {}],
                                    "fixed_seed": ["INT", {"control_after_generate": False}]}}},
    "Defaults": {"input": {"required": {"pick": [["p", "q"], {"default": "q"}],
                                        "many": [["p", "q"], {"multiselect": True, "default": ["q"]}],
                                        "blank": [["p", "q"], {"default": ""}], "n": ["INT", {"default": 4}],
                                        "text": ["STRING", {"default": "hi"}], "on": ["BOOLEAN", {}]}}},
    "Forced": {"input": {"required": {"n": ["INT", {}], "s": ["STRING", {"forceInput": True}]},
                         "optional": {"f": ["FLOAT", {}]}}},
    "Upload": {"input": {"required": {"file": [["a.mp4"], {"video_upload": True}]},
                         "optional": {"fps": ["FLOAT", {"default": 8.0}]}}},
})


def toy(widgets: Any, class_type: str = "Toy", **settings: Any) -> dict:
    """The API inputs of one ``class_type`` node saved with ``widgets``."""
    return ui_to_api(workflow([node(1, class_type, widgets=widgets, **settings)], []), TOY)["1"]


def test_widgets_follow_input_order_and_skip_every_ui_only_value() -> None:
    """word, count, [control after count?], pick, [control], [filter], flag, many, note."""
    assert toy(["hi", 5, "b", "fixed", "", True, ["x"], "# notes"]) == {
        "inputs": {"word": "hi", "count": 5, "pick": "b", "flag": True, "many": {"__value__": ["x"]},
                   "note": "# notes"},
        "class_type": "Toy", "_meta": {"title": "Toy node"}}


def test_a_control_word_after_an_int_without_control_is_skipped_unless_the_next_widget_can_hold_it() -> None:
    assert toy(["hi", 5, "increment", "b", "fixed", "", True])["inputs"]["pick"] == "b"
    fixed_is_a_word = Catalog({"T": {"input": {"required": {"n": ["INT", {}], "s": ["STRING", {}]}}}})
    wf = workflow([node(1, "T", widgets=[2, "fixed"])], [])
    assert ui_to_api(wf, fixed_is_a_word)["1"]["inputs"] == {"n": 2, "s": "fixed"}
    choice_word = Catalog({"T": {"input": {"required": {"n": ["INT", {}], "c": [["other", "fixed"], {}]}}}})
    assert ui_to_api(wf, choice_word)["1"]["inputs"] == {"n": 2, "c": "fixed"}
    other_choice = Catalog({"T": {"input": {"required": {"n": ["INT", {}], "c": [["other"], {}]}}}})
    assert ui_to_api(workflow([node(1, "T", widgets=[2, "fixed", "other"])], []), other_choice)["1"]["inputs"] == {
        "n": 2, "c": "other"}
    at_the_end = Catalog({"T": {"input": {"required": {"n": ["INT", {}]}}}})
    assert ui_to_api(wf, at_the_end)["1"]["inputs"] == {"n": 2}


def test_a_list_where_a_control_word_may_be_is_a_value() -> None:
    """A list (unhashable) after an INT, or where a combo's control is, is read as the next widget's value."""
    assert toy(["hi", 5, ["b"]])["inputs"]["pick"] == {"__value__": ["b"]}
    assert toy(["hi", 5, "b", [1], 2])["inputs"]["flag"] == {"__value__": [1]}


def test_the_control_and_filter_of_a_combo_are_skipped_only_when_they_look_like_theirs() -> None:
    assert toy(["hi", 5, "b", None, None, True])["inputs"]["flag"] is True
    assert toy(["hi", 5, "b", True, "a*", False])["inputs"]["flag"] is False
    assert toy(["hi", 5, "b", "fixed", 7, True])["inputs"]["flag"] == 7  # a number is no filter
    assert toy(["hi", 5, "b", 7, True])["inputs"]["flag"] == 7  # nor a control: a save from before them


def test_widgets_without_saved_values_take_the_frontends_defaults() -> None:
    assert toy([])["inputs"] == {"word": "", "count": 3, "pick": "a", "flag": False, "many": {"__value__": []}}
    assert toy(None)["inputs"] == toy([])["inputs"]
    assert toy("junk")["inputs"] == toy([])["inputs"]
    bare = toy([], "Bare")
    assert bare == {"inputs": {"ratio": 0, "seed": 0, "fixed_seed": 0}, "class_type": "Bare",
                    "_meta": {"title": "Bare"}}  # a COMBO with no choices has no value to send


def test_catalogue_defaults_come_before_the_frontends(catalog: Catalog) -> None:
    assert toy([], "Defaults")["inputs"] == {"pick": "q", "many": {"__value__": ["q"]}, "blank": "p", "n": 4,
                                             "text": "hi", "on": False}


def test_a_saved_none_is_sent_as_none() -> None:
    assert toy([None, None])["inputs"]["word"] is None and toy([None, None])["inputs"]["count"] is None


def test_seed_named_ints_have_a_control_unless_the_catalogue_says_not() -> None:
    """``seed`` with no option: a control follows; ``fixed_seed`` says False: only a control word is skipped."""
    expected = {"choice": "a", "ratio": 1.5, "seed": 7, "fixed_seed": 9}
    assert toy(["a", 1.5, 7, "randomize", 9, 3], "Bare")["inputs"] == expected
    assert toy(["a", 1.5, 7, 9, 3], "Bare")["inputs"] == expected  # saved before seeds had a control
    assert toy(["a", 1.5, 7, None, 9, True], "Bare")["inputs"] == expected
    assert toy(["a", 1.5, 7, "fixed", 9, "fixed"], "Bare")["inputs"] == expected


def test_a_force_input_slot_is_counted_without_the_controls_an_int_may_lack() -> None:
    """Old frontends saved a value for ``s``; the words after an INT without a control do not count."""
    assert toy([5, "", 0.5], "Forced")["inputs"] == {"n": 5, "f": 0.5}
    assert toy([5, 0.5], "Forced")["inputs"] == {"n": 5, "f": 0.5}


def test_the_upload_button_follows_the_required_widgets_of_a_video_loader() -> None:
    assert toy(["a.mp4", "image", 12.0], "Upload")["inputs"] == {"file": "a.mp4", "fps": 12.0}
    assert toy(["a.mp4", None, 12.0], "Upload")["inputs"] == {"file": "a.mp4", "fps": 12.0}
    assert toy(["a.mp4", 12.0], "Upload")["inputs"] == {"file": "a.mp4", "fps": 12.0}  # saved without the button
    assert toy(["a.mp4"], "Upload")["inputs"] == {"file": "a.mp4", "fps": 8.0}


def test_a_dict_of_widget_values_ignores_names_that_are_not_widgets() -> None:
    assert toy({"word": "w", "image": "not a widget", "many": ["y"]})["inputs"] == {
        "word": "w", "count": 3, "pick": "a", "flag": False, "many": {"__value__": ["y"]}}


def test_titles_come_from_the_node_then_the_catalogue() -> None:
    assert toy([], title="Mine")["_meta"] == {"title": "Mine"}
    assert toy([], title="")["_meta"] == {"title": "Toy node"}
    assert toy([], "Bare")["_meta"] == {"title": "Bare"}


# ---------------------------------------------------------------------------- following links

CKPT = node(4, "CheckpointLoaderSimple", outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP"),
                                                  out("VAE", "VAE", [9])], widgets=["tiny-random-sd15.safetensors"])
LATENT = node(5, "EmptyLatentImage", outputs=[out("LATENT", "LATENT", [2])], widgets=[512, 512, 1])


def bypassed_sampler(node_id: int, model_link: int, latent_link: int, out_link: int) -> dict:
    return node(node_id, "KSampler", mode=4, inputs=[slot("model", "MODEL", model_link),
                                                     slot("latent_image", "LATENT", latent_link)],
                outputs=[out("LATENT", "LATENT", [out_link])], widgets=[1, "fixed", 20, 8, "euler", "normal", 1])


def test_a_reroute_hands_the_wanted_type_on_to_a_bypassed_node(catalog: Catalog) -> None:
    """VAEDecode wants a LATENT; through the Reroute (typed ``*``) the bypassed sampler still picks its
    LATENT input, not input 0 (MODEL)."""
    wf = workflow(
        [CKPT, LATENT, bypassed_sampler(3, 1, 2, 3),
         node(7, "Reroute", inputs=[slot("", "*", 3)], outputs=[out("", "*", [4])]),
         node(8, "VAEDecode", inputs=[slot("samples", "LATENT", 4), slot("vae", "VAE", 9)])],
        [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 7, 0, "LATENT"], [4, 7, 0, 8, 0, "*"],
         [9, 4, 2, 8, 1, "VAE"]])
    assert ui_to_api(wf, catalog)["8"]["inputs"] == {"samples": ["5", 0], "vae": ["4", 2]}


def test_two_bypassed_nodes_in_a_row_pass_the_type_of_the_input_taken(catalog: Catalog) -> None:
    wf = workflow(
        [CKPT, LATENT, bypassed_sampler(3, 1, 2, 3), bypassed_sampler(6, 5, 3, 4),
         node(8, "VAEDecode", inputs=[slot("samples", "LATENT", 4), slot("vae", "VAE", 9)])],
        [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 6, 3, "LATENT"], [5, 4, 0, 6, 0, "MODEL"],
         [4, 6, 0, 8, 0, "LATENT"], [9, 4, 2, 8, 1, "VAE"]])
    assert ui_to_api(wf, catalog) == {
        "4": {"inputs": {"ckpt_name": "tiny-random-sd15.safetensors"}, "class_type": "CheckpointLoaderSimple",
              "_meta": {"title": "Load Checkpoint"}},
        "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1}, "class_type": "EmptyLatentImage",
              "_meta": {"title": "Empty Latent Image"}},
        "8": {"inputs": {"samples": ["5", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
              "_meta": {"title": "VAE Decode"}},
    }


def test_a_bypassed_node_with_no_input_of_the_type_sends_nothing_even_when_all_are_linked(catalog: Catalog) -> None:
    wf = workflow(
        [CKPT, LATENT,
         node(8, "VAEDecode", mode=4, inputs=[slot("samples", "LATENT", 2), slot("vae", "VAE", 9)],
              outputs=[out("IMAGE", "IMAGE", [3])]),
         node(10, "SaveImage", inputs=[slot("images", "IMAGE", 3)], widgets=["x"])],
        [[2, 5, 0, 8, 0, "LATENT"], [9, 4, 2, 8, 1, "VAE"], [3, 8, 0, 10, 0, "IMAGE"]])
    assert ui_to_api(wf, catalog)["10"]["inputs"] == {"filename_prefix": "x"}


@pytest.mark.parametrize("input_types, expected", [
    (["IMAGE", "MASK"], ["1", 1]),  # same slot fits
    (["MASK", "image,mask"], ["1", 1]),  # a comma list and another case still fit
    (["*", "LATENT"], ["1", 0]),  # slot 1 does not fit; no exact MASK; the first compatible is a wildcard
    (["", "LATENT"], ["1", 0]),  # a missing type takes anything too
    (["LATENT", "MASK,IMAGE"], ["1", 1]),
    (["MASK,LATENT", "LATENT"], ["1", 0]),
    (["LATENT", "LATENT"], None),
])
def test_a_bypassed_node_passes_the_first_input_that_fits(
    catalog: Catalog, input_types: list[str], expected: list | None
) -> None:
    """Output 1 (a MASK) of a bypassed two-input node feeds a MASK input."""
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [2])], widgets=["a.png"]),
         node(2, "ImageCompositeMasked", mode=4,
              inputs=[slot("a", input_types[0], 1), slot("b", input_types[1], 2)],
              outputs=[out("IMAGE", "IMAGE"), out("MASK", "MASK", [3])]),
         node(3, "InvertMask", inputs=[slot("mask", "MASK", 3)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"], [3, 2, 1, 3, 0, "MASK"]])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == ({"mask": expected} if expected else {})


def test_an_output_type_that_does_not_fit_rules_out_the_same_slot(catalog: Catalog) -> None:
    """Input 0 takes a MASK, which is wanted, but not the IMAGE of output 0: the exact MASK input passes."""
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [2])], widgets=["a.png"]),
         node(2, "MaskToImage", mode=4, inputs=[slot("a", "MASK,LATENT", 1), slot("b", "MASK", 2)],
              outputs=[out("IMAGE", "IMAGE", [3])]),
         node(3, "InvertMask", inputs=[slot("mask", "MASK", 3)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"], [3, 2, 0, 3, 0, "MASK"]])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == {"mask": ["1", 1]}


@pytest.mark.parametrize("out_slot, inputs, expected", [
    (1, 2, ["1", 1]),  # a wildcard consumer takes the same slot
    (1, 1, ["1", 0]),  # or input 0 when there is no such slot
    (0, 0, None),
])
def test_a_wildcard_consumer_takes_the_same_slot_of_a_bypassed_node(
    catalog: Catalog, out_slot: int, inputs: int, expected: list | None
) -> None:
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"]][:inputs]
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [2])], widgets=["a.png"]),
         node(2, "ImageCompositeMasked", mode=4,
              inputs=[slot("a", "IMAGE", 1), slot("b", "MASK", 2)][:inputs],
              outputs=[out("IMAGE", "IMAGE"), out("MASK", "MASK", [3])]),
         node(3, "PreviewAny", inputs=[slot("source", "*", 3)])],
        [*links, [3, 2, out_slot, 3, 0, "*"]])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == ({"source": expected} if expected else {})


def test_links_that_end_nowhere_leave_the_input_out(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "Reroute", inputs=[], outputs=[out("", "IMAGE", [1])]),
         node(2, "Reroute", inputs=[slot("", "*")], outputs=[out("", "IMAGE", [2])]),
         node(3, "GetNode", outputs=[out("IMAGE", "IMAGE", [3])], widgets=["nobody set me"]),
         node(4, "ImageBatch", inputs=[slot("image1", "IMAGE", 1), slot("image2", "IMAGE", 2)]),
         node(5, "ImageBatch", inputs=[slot("image1", "IMAGE", 3), slot("image2", "IMAGE", 4)]),
         node(6, "Note", outputs=[out("", "IMAGE", [5])]),
         node(7, "ImageInvert", inputs=[slot("image", "IMAGE", 5)])],
        [[1, 1, 0, 4, 0, "IMAGE"], [2, 2, 0, 4, 1, "IMAGE"], [3, 3, 0, 5, 0, "IMAGE"], [4, 99, 0, 5, 1, "IMAGE"],
         [5, 6, 0, 7, 0, "IMAGE"]])
    prompt = ui_to_api(wf, catalog)
    assert {k: v["inputs"] for k, v in prompt.items()} == {"4": {}, "5": {}, "7": {}}


def test_an_unlinked_socket_before_a_linked_one_is_skipped(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=["a.png"]),
         node(2, "ImageBatch", inputs=[slot("image1", "IMAGE"), slot("image2", "IMAGE", 1)])],
        [[1, 1, 0, 2, 1, "IMAGE"]])
    assert ui_to_api(wf, catalog)["2"]["inputs"] == {"image2": ["1", 0]}


def test_a_loop_through_bypassed_nodes_is_reported_with_the_file(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "ImageInvert", mode=4, inputs=[slot("image", "IMAGE", 2)], outputs=[out("IMAGE", "IMAGE", [1, 3])]),
         node(2, "ImageInvert", mode=4, inputs=[slot("image", "IMAGE", 1)], outputs=[out("IMAGE", "IMAGE", [2])]),
         node(3, "PreviewImage", inputs=[slot("images", "IMAGE", 3)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 1, 0, "IMAGE"], [3, 1, 0, 3, 0, "IMAGE"]])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="by.json")
    assert caught.value.problems == [Problem("by.json", "nodes.1", "links form a loop through reroutes or bypassed "
                                             "nodes; open the workflow in ComfyUI and save it with Export (API)")]


def test_a_set_node_with_a_missing_link_warns_with_the_file(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    wf = workflow(
        [node(2, "SetNode", inputs=[slot("IMAGE", "IMAGE", 8)], widgets=["source"]),
         node(3, "GetNode", outputs=[out("IMAGE", "IMAGE", [2])], widgets=["source"]),
         node(4, "ImageInvert", inputs=[slot("image", "IMAGE", 2)])],
        [[2, 3, 0, 4, 0, "IMAGE"]])
    with caplog.at_level("WARNING", logger="comfyui_gradio.forms.convert"):
        assert ui_to_api(wf, catalog, source="kj.json")["4"]["inputs"] == {}
    assert caplog.messages == ["kj.json: link 8 is missing from 'links'; the input is left unconnected"]


def test_get_nodes_find_the_set_node_by_name(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=["a.png"]),
         node(9, "LoadImage", outputs=[out("IMAGE", "IMAGE", [4])], widgets=["b.png"]),
         node(2, "SetNode", inputs=[slot("IMAGE", "IMAGE", 1)], widgets=["first"]),
         node(5, "ImageInvert", inputs=[slot("image", "IMAGE", 4)], widgets=["second"]),  # not a setter
         node(6, "SetNode", inputs=[slot("IMAGE", "IMAGE", 5)], widgets=["second"]),
         node(3, "GetNode", outputs=[out("IMAGE", "IMAGE", [2])], widgets=["second"]),
         node(4, "ImageInvert", inputs=[slot("image", "IMAGE", 2)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [4, 9, 0, 5, 0, "IMAGE"], [5, 9, 0, 6, 0, "IMAGE"], [2, 3, 0, 4, 0, "IMAGE"]])
    assert ui_to_api(wf, catalog)["4"]["inputs"] == {"image": ["9", 0]}


def test_a_server_class_named_like_an_editor_node_is_a_real_node() -> None:
    server = Catalog({"Note": {"input": {"required": {"text": ["STRING", {}]}}, "display_name": "Server note"},
                      "Reroute": {"input": {"required": {"value": ["IMAGE", {}]}}},
                      "Sink": {"input": {"required": {"image": ["IMAGE", {}]}}}})
    wf = workflow([node(1, "Note", widgets=["hello"]),
                   node(2, "Reroute", inputs=[slot("value", "IMAGE")], outputs=[out("IMAGE", "IMAGE", [1])]),
                   node(3, "Sink", inputs=[slot("image", "IMAGE", 1)])], [[1, 2, 0, 3, 0, "IMAGE"]])
    assert ui_to_api(wf, server) == {
        "1": {"inputs": {"text": "hello"}, "class_type": "Note", "_meta": {"title": "Server note"}},
        "2": {"inputs": {}, "class_type": "Reroute", "_meta": {"title": "Reroute"}},
        "3": {"inputs": {"image": ["2", 0]}, "class_type": "Sink", "_meta": {"title": "Sink"}},
    }


def test_a_primitive_node_feeds_widgets_only(catalog: Catalog) -> None:
    """Its value reaches the widget it is linked to, not a plain socket; one without a value feeds nothing."""
    wf = workflow(
        [node(1, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [1, 2, 3, 9]}], widgets=[64]),
         node(2, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [4]}], widgets=[]),
         node(3, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [5]}]),
         node(5, "EmptyLatentImage", inputs=[slot("width", "INT", 1, widget=True), slot("height", "INT", 4,
                                                                                       widget=True),
                                             slot("batch_size", "INT", 5, widget=True)],
              widgets=[512, 512, 1]),
         node(6, "EmptyImage", inputs=[{"name": "width", "type": "INT", "link": 2}], widgets=[8, 8, 1, 0]),
         node(7, "EmptyImage", inputs=[slot("width", "INT", 3, widget=True)], widgets=[8, 8, 1, 0])],
        [[1, 1, 0, 5, 0, "INT"], [4, 2, 0, 5, 1, "INT"], [5, 3, 0, 5, 2, "INT"], [2, 1, 0, 6, 0, "INT"],
         [3, 1, 0, 7, 0, "INT"]])
    prompt = ui_to_api(wf, catalog)
    assert prompt["5"]["inputs"] == {"width": 64, "height": 512, "batch_size": 1}
    assert prompt["6"]["inputs"] == {"width": 8, "height": 8, "batch_size": 1, "color": 0}
    assert prompt["7"]["inputs"] == {"width": 64, "height": 8, "batch_size": 1, "color": 0}
    assert set(prompt) == {"5", "6", "7"}


def test_a_primitive_node_linked_to_a_missing_node_is_ignored(catalog: Catalog) -> None:
    wf = workflow([node(1, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [1]}], widgets=[64]),
                   node(2, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [2]}], widgets=[64])],
                  [[1, 1, 0, 77, 0, "INT"]])
    assert ui_to_api(wf, catalog) == {}


def test_a_primitive_list_value_is_boxed(catalog: Catalog) -> None:
    wf = workflow(
        [node(1, "PrimitiveNode", outputs=[{"name": "STRING", "type": "STRING", "links": [1]}], widgets=[["a", "b"]]),
         node(2, "PrimitiveString", inputs=[slot("value", "STRING", 1, widget=True)], widgets=["x"])],
        [[1, 1, 0, 2, 0, "STRING"]])
    assert ui_to_api(wf, catalog)["2"]["inputs"] == {"value": {"__value__": ["a", "b"]}}


# ---------------------------------------------------------------------------- more refusals


def test_an_older_group_node_and_one_whose_table_was_lost_are_refused(catalog: Catalog) -> None:
    wf = workflow([node(1, "workflow/Upscaler")], [])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="g.json")
    assert str(caught.value) == (
        "g.json: nodes.1: 'workflow/Upscaler' is a group node ('Upscaler'), which cannot be converted here; open the "
        "workflow in ComfyUI and save it with Export (API), or convert the group node back to nodes and save the "
        "workflow again")


def test_a_workflow_class_missing_from_the_group_table_is_a_missing_custom_node(catalog: Catalog) -> None:
    wf = workflow([node(1, "workflow>Other", title="Odd")], [], extra={"groupNodes": {"Upscaler": {}}},
                  definitions=["not", "a", "mapping"])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="g.json")
    assert [p.reason for p in caught.value.problems] == [
        "'Odd' needs node workflow>Other, which this ComfyUI server does not have: install the custom node "
        "that provides it (or update ComfyUI) and restart ComfyUI, or open the workflow in ComfyUI and save it "
        "with Export (API)"]


@pytest.mark.parametrize("bad_node, key", [
    ("not a node", "nodes[1]"), ({"type": "KSampler"}, "nodes[1]"), ({"id": 2, "type": 7}, "nodes[1]"),
    ({"id": 2}, "nodes[1]"),
])
def test_a_malformed_node_is_refused(catalog: Catalog, bad_node: Any, key: str) -> None:
    wf = {"nodes": [node(1, "Note"), bad_node], "links": []}
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="n.json")
    assert caught.value.problems == [Problem("n.json", key, "a node must be an object with an 'id' and a 'type'")]


@pytest.mark.parametrize("bad_link", [
    {"id": 1, "origin_id": 4, "origin_slot": 0, "target_id": 9},  # no target_slot
    [1, 4, "0", 9, 0, "IMAGE"], [1, 4, 0, 9, None, "IMAGE"], "1,4,0,9,0",
])
def test_a_link_that_cannot_be_read_is_refused(catalog: Catalog, bad_link: Any) -> None:
    wf = {"nodes": [node(9, "SaveImage")], "links": [[2, 4, 0, 9, 0, "IMAGE"], bad_link]}
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="l.json")
    assert caught.value.problems == [Problem("l.json", "links[1]", f"cannot read link {bad_link!r}; open the "
                                             "workflow in ComfyUI and save it with Export (API)")]


def test_problems_name_the_workflow_even_without_a_source(catalog: Catalog) -> None:
    with pytest.raises(ConfigError) as caught:
        ui_to_api({"nodes": [node(1, "Missing")]}, catalog)
    assert [(p.source, p.key) for p in caught.value.problems] == [("<workflow>", "nodes.1")]


def test_links_in_object_form_need_no_type(catalog: Catalog) -> None:
    wf = workflow([node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=["a.png"]),
                   node(2, "ImageInvert", inputs=[slot("image", "IMAGE", 1)])], [])
    wf["links"] = [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0}]
    assert ui_to_api(wf, catalog)["2"]["inputs"] == {"image": ["1", 0]}


def test_a_workflow_without_links_converts(catalog: Catalog) -> None:
    assert ui_to_api({"nodes": [node(9, "SaveImage", widgets=["p"])]}, catalog) == {
        "9": {"inputs": {"filename_prefix": "p"}, "class_type": "SaveImage", "_meta": {"title": "Save Image"}}}


def test_linear_data_of_something_that_is_not_a_workflow_is_none() -> None:
    assert linear_data([]) is None  # type: ignore[arg-type]
    assert linear_data({"extra": "x"}) is None
    assert linear_data({"extra": {"linearData": {"inputs": None, "outputs": None}}}) == {"inputs": [], "outputs": []}


def test_a_get_node_hands_the_wanted_type_on_through_its_set_node(catalog: Catalog) -> None:
    wf = workflow(
        [CKPT, LATENT, bypassed_sampler(3, 1, 2, 3),
         node(6, "SetNode", inputs=[slot("*", "*", 3)], widgets=["latent"]),
         node(7, "GetNode", outputs=[out("*", "*", [4])], widgets=["latent"]),
         node(8, "VAEDecode", inputs=[slot("samples", "LATENT", 4), slot("vae", "VAE", 9)])],
        [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 6, 0, "LATENT"], [4, 7, 0, 8, 0, "*"],
         [9, 4, 2, 8, 1, "VAE"]])
    assert ui_to_api(wf, catalog)["8"]["inputs"] == {"samples": ["5", 0], "vae": ["4", 2]}


def test_a_bypassed_node_without_outputs_passes_its_input(catalog: Catalog) -> None:
    wf = workflow([node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1])], widgets=["a.png"]),
                   node(2, "ImageInvert", mode=4, inputs=[slot("image", "IMAGE", 1)]),
                   node(3, "PreviewImage", inputs=[slot("images", "IMAGE", 2)])],
                  [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == {"images": ["1", 0]}


@pytest.mark.parametrize("input_types, output_type, want, expected", [
    (["IMAGE", "IMAGE"], "*", "MASK", None),  # a wildcard output does not make an IMAGE input fit a MASK
    (["IMAGE", "MASK"], "MASK", "LATENT,MASK", ["1", 1]),  # the wanted type is a list too
    (["MASK"], "MASK", "MASK", ["1", 0]),  # output 1 has no input 1: the exact match is input 0
])
def test_a_bypassed_node_checks_both_the_output_and_the_wanted_type(
    catalog: Catalog, input_types: list[str], output_type: str, want: str, expected: list | None
) -> None:
    inputs = [slot("a", input_types[0], 1), *([slot("b", input_types[1], 2)] if len(input_types) > 1 else [])]
    wf = workflow(
        [node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [2])], widgets=["a.png"]),
         node(2, "ImageCompositeMasked", mode=4, inputs=inputs,
              outputs=[out("IMAGE", "IMAGE"), out("OUT", output_type, [3])]),
         node(3, "InvertMask", inputs=[slot("mask", want, 3)])],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"], [3, 2, 1, 3, 0, want]])
    assert ui_to_api(wf, catalog)["3"]["inputs"] == ({"mask": expected} if expected else {})


def test_only_primitive_nodes_write_into_widgets(catalog: Catalog) -> None:
    """A GetNode with no SetNode linked into a widget leaves the widget's own value; a PrimitiveNode saved
    with a dict, or linked where the target does not list the link, writes nothing."""
    wf = workflow(
        [node(1, "GetNode", outputs=[out("INT", "INT", [1])], widgets=["nobody"]),
         node(2, "PrimitiveNode", outputs=[out("INT", "INT", [2])], widgets={"value": 64}),
         node(3, "PrimitiveNode", outputs=[out("INT", "INT", [3])], widgets=[32]),
         node(5, "EmptyLatentImage", inputs=[slot("width", "INT", 1, widget=True), slot("height", "INT", 2,
                                                                                       widget=True)],
              widgets=[512, 256, 1])],
        [[1, 1, 0, 5, 0, "INT"], [2, 2, 0, 5, 1, "INT"], [3, 3, 0, 5, 2, "INT"]])
    assert ui_to_api(wf, catalog)["5"]["inputs"] == {"width": 512, "height": 256, "batch_size": 1}
