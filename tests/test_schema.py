"""Schemas: shipped workflows load, every schema problem is reported with file, key and reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.errors import ConfigError, Problem
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import Output, Param
from tests.paths import WORKFLOWS


def write_pair(tmp_path: Path, yaml_text: str, name: str = "txt2img") -> Path:
    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / f"{name}.json")
    (tmp_path / f"{name}.yaml").write_text(yaml_text)
    return tmp_path / f"{name}.json"


def problems(path: Path, catalog: Catalog | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_tab(path, catalog)
    return [str(p) for p in caught.value.problems]


SHIPPED = {  # name -> (parameters with their kinds, output node ids); choices are text without a catalogue
    "txt2img": ([("prompt", "text"), ("negative_prompt", "text"), ("seed", "int"), ("steps", "int"), ("cfg", "float"),
                 ("width", "int"), ("height", "int"), ("sampler", "choice"), ("checkpoint", "choice")], ["9"]),
    "img2img": ([("image", "image"), ("prompt", "text"), ("strength", "float"), ("seed", "int"), ("steps", "int"),
                 ("negative_prompt", "text"), ("checkpoint", "choice")], ["9"]),
    "invert": ([("image", "image")], ["3"]),
    "blur": ([("image", "image"), ("blur_radius", "int"), ("sigma", "float"), ("upscale_method", "choice"),
              ("width", "int"), ("height", "int"), ("crop", "choice")], ["4"]),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_workflows_load_with_and_without_a_catalogue(name: str, catalog: Catalog) -> None:
    params, outputs = SHIPPED[name]
    tab = load_tab(WORKFLOWS / f"{name}.json", catalog)
    assert [(p.name, p.kind) for p in tab.params] == params
    assert tab.workflow.output_node_ids(catalog) == outputs
    bare = load_tab(WORKFLOWS / f"{name}.json", None)
    listed = [p.name for p in bare.params if p.strict_choices]  # a schema's own list makes a choice anyway
    assert [(p.name, p.kind) for p in bare.params] == [
        (n, "text" if kind == "choice" and n not in listed else kind) for n, kind in params]
    assert bare.workflow.output_node_ids(None) == outputs


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
    (tmp_path / "media.yaml").write_text("inputs:\n  clip: {node: '1', input: file}\n"
                                         "  sound: {node: '4', input: audio}\n")
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


# ---------------------------------------------------------------------------- one problem at a time


@pytest.mark.parametrize("yaml_text, expected", [
    ("order: first\n", ["order: must be a whole number (tabs are sorted by it), not 'first'"]),
    ("order: true\n", ["order: must be a whole number (tabs are sorted by it), not True"]),
    ("outputs: [a]\n", ["outputs: must be a mapping of names to settings, not list"]),
    ("inputs:\n  runs: {node: '3', input: steps}\n",
     ["inputs.runs: the name 'runs' is reserved by the app; choose another"]),
    ("inputs:\n  seed_mode: {node: '3', input: steps}\n",
     ["inputs.seed_mode: the name 'seed_mode' is reserved by the app; choose another"]),
    ("inputs:\n  _steps: {node: '3', input: steps}\n",
     ["inputs._steps: the name '_steps' is reserved by the app; choose another"]),
    ("inputs:\n  seed_randomize: {node: '3', input: seed}\n",
     ["inputs.seed_randomize: the name 'seed_randomize' is reserved by the app; choose another"]),
    ("inputs:\n  class: {node: '3', input: steps}\n",
     ["inputs.class: the name must be a Python identifier (letters, digits and _, not starting with a digit) "
      "because it is the parameter name in the API"]),
    ("inputs:\n  steps: 3\n", ["inputs.steps: must be a mapping with at least 'node' and 'input'"]),
    ("inputs:\n  steps: {label: Steps}\n", ["inputs.steps: missing required key 'node' and 'input'"]),
    ("inputs:\n  steps: {input: steps}\n", ["inputs.steps: missing required key 'node'"]),
    ("inputs:\n  steps: {node: '3', input: steps, widget: knob}\n",
     ["inputs.steps.widget: must be one of: textbox, number, slider, dropdown, checkbox, image, video, audio, "
      "not 'knob'"]),
    ("inputs:\n  cfg: {node: '3', input: cfg, randomize: true}\n",
     ["inputs.cfg: randomize only applies to whole-number inputs such as a seed"]),
    ("inputs:\n  steps: {node: '3', input: steps, minimum: 10, default: 5}\n",
     ["inputs.steps: default 5 is below the minimum 10"]),
    ("inputs:\n  steps: {node: '3', input: steps, maximum: 10, default: 11}\n",
     ["inputs.steps: default 11 is above the maximum 10"]),
    ("inputs:\n  steps: {node: '3', input: steps, minimum: 0}\n",
     ["inputs.steps: minimum 0 is outside the server's range for this input (1 to 10000)"]),
    ("inputs:\n  steps: {node: '3', input: steps, maximum: 10001}\n",
     ["inputs.steps: maximum 10001 is outside the server's range for this input (1 to 10000)"]),
    ("inputs:\n  text: {node: ['6', '66'], input: text}\n", ["inputs.text: node '66' does not exist in txt2img.json"]),
    ("outputs:\n  image: '9'\n", ["outputs.image: must be a mapping with a 'node' key"]),
    ("outputs:\n  image: {label: Result}\n", ["outputs.image: must be a mapping with a 'node' key"]),
    ("outputs:\n  image: {node: '9', colour: red}\n",
     ["outputs.image.colour: unknown key; allowed keys are: node, label"]),
    ("outputs:\n  image: {node: '99'}\n", ["outputs.image: node '99' does not exist in txt2img.json"]),
    ("outputs:\n  image: {node: CLIPTextEncode}\n",
     ["outputs.image: node 'CLIPTextEncode' is ambiguous: nodes 6, 7 match; use an id"]),
])
def test_each_problem_names_its_key(tmp_path: Path, catalog: Catalog, yaml_text: str, expected: list[str]) -> None:
    path = write_pair(tmp_path, yaml_text)
    assert problems(path, catalog) == [f"{tmp_path}/txt2img.yaml: {line}" for line in expected]


def test_settings_of_the_wrong_type_are_reported_by_key_not_raised(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, """
inputs:
  steps: {node: '3', input: steps, widget: [slider], lines: many, minimum: low, maximum: '9', step: 0}
  cfg: {node: '3', input: cfg, choices: euler, randomize: 'no', advanced: 1, required: null, label: 5, info: [a]}
  seed: {node: '3', input: seed, lines: 1.5}
  denoise: {node: '3', input: denoise, lines: 0, step: 0.05, minimum: 0, maximum: 1.0}
""")
    src = f"{tmp_path}/txt2img.yaml"
    assert problems(path, catalog) == [
        f"{src}: inputs.steps.lines: must be a whole number of lines, 1 or more, not 'many'",
        f"{src}: inputs.steps.minimum: must be a number, not 'low'",
        f"{src}: inputs.steps.maximum: must be a number, not '9'",
        f"{src}: inputs.steps.step: must be a number above 0, not 0",
        f"{src}: inputs.steps.widget: must be one of: textbox, number, slider, dropdown, checkbox, image, video, "
        "audio, not ['slider']",
        f"{src}: inputs.cfg.label: must be text, not 5",
        f"{src}: inputs.cfg.info: must be text, not ['a']",
        f"{src}: inputs.cfg.choices: must be a list of choices, not 'euler'",
        f"{src}: inputs.cfg.randomize: must be true or false, not 'no'",
        f"{src}: inputs.cfg.advanced: must be true or false, not 1",
        f"{src}: inputs.cfg.required: must be true or false, not None",
        f"{src}: inputs.seed.lines: must be a whole number of lines, 1 or more, not 1.5",
        f"{src}: inputs.denoise.lines: must be a whole number of lines, 1 or more, not 0",
    ]


def test_the_bounds_a_schema_keeps_inside_the_servers_range_are_allowed(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, "inputs:\n  steps: {node: '3', input: steps, minimum: 1, maximum: 10000}\n")
    steps = load_tab(path, catalog).param("steps")
    assert (steps.minimum, steps.maximum, steps.step) == (1, 10000, None)
    path = write_pair(tmp_path, "inputs:\n  steps: {node: '3', input: steps, minimum: 1, maximum: 1, default: 1}\n")
    assert load_tab(path, catalog).param("steps").default == 1


def test_a_param_takes_its_settings_from_the_schema_then_the_catalogue(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, """
inputs:
  prompt: {node: '6', input: text}
  negative_prompt: {node: '7', input: text, lines: 1, info: Keep out, label: Not this, advanced: true}
  sampler_name: {node: '3', input: sampler_name}
  cfg: {node: '3', input: cfg, step: 0.5, default: 7, required: true}
""")
    tab = load_tab(path, catalog)
    tooltip = catalog.input("CLIPTextEncode", "text").options["tooltip"]
    assert tab.param("prompt") == Param(
        name="prompt", targets=(("6", "text"),), kind="text", label="Prompt",
        default="a photograph of a cat sitting on a windowsill, soft light", lines=3, info=tooltip)
    assert tab.param("negative_prompt") == Param(
        name="negative_prompt", targets=(("7", "text"),), kind="text", label="Not this",
        default="blurry, low quality, watermark", lines=1, info="Keep out", advanced=True)
    sampler = tab.param("sampler_name")
    assert (sampler.kind, sampler.label, sampler.default, sampler.strict_choices) == (
        "choice", "Sampler name", "euler", False)
    assert sampler.choices == catalog.input("KSampler", "sampler_name").choices
    cfg = tab.param("cfg")
    assert (cfg.kind, cfg.minimum, cfg.maximum, cfg.step, cfg.default, cfg.required) == (
        "float", 0.0, 100.0, 0.5, 7, True)
    assert (tab.title, tab.description, tab.order, tab.outputs) == ("txt2img", "", 100, ())


def test_without_a_catalogue_kinds_come_from_the_values(tmp_path: Path) -> None:
    path = write_pair(tmp_path, """
inputs:
  seed: {node: '3', input: seed}
  cfg: {node: '3', input: cfg}
  sampler: {node: '3', input: sampler_name}
  listed: {node: '3', input: scheduler, choices: [normal, karras]}
  flag: {node: '3', input: denoise, widget: checkbox}
  width: {node: '5', input: width, widget: textbox}
""")
    tab = load_tab(path)
    assert {p.name: p.kind for p in tab.params} == {"seed": "int", "cfg": "float", "sampler": "text",
                                                    "listed": "choice", "flag": "bool", "width": "text"}
    seed = tab.param("seed")
    assert (seed.minimum, seed.maximum, seed.step, seed.lines, seed.info) == (None, None, None, 1, "")
    assert seed.is_seed and not seed.randomize and not tab.param("cfg").is_seed


def test_a_bool_value_is_a_checkbox_and_widgets_fix_kinds(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
             "2": {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "area",
                                                           "scale_by": 1.0}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x", "flag": True}}}
    (tmp_path / "kinds.json").write_text(json.dumps(nodes))
    (tmp_path / "kinds.yaml").write_text("inputs:\n  flag: {node: '3', input: flag}\n"
                                         "  method: {node: '2', input: upscale_method, widget: dropdown}\n"
                                         "  picture: {node: '1', input: image, widget: video}\n"
                                         "  scale: {node: '2', input: scale_by, widget: slider}\n")
    for cat in (None, catalog):
        tab = load_tab(tmp_path / "kinds.json", cat)
        assert {p.name: p.kind for p in tab.params} == {"flag": "bool", "method": "choice", "picture": "video",
                                                        "scale": "float"}
        assert tab.param("scale").widget == "slider"


def test_an_empty_schema_is_the_whole_workflow_with_no_inputs(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "")
    tab = load_tab(path)
    assert (tab.params, tab.outputs, tab.title, tab.order) == ((), (), "txt2img", 100)


def test_a_schema_that_is_not_a_mapping_lists_the_keys(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "- inputs\n")
    assert problems(path) == [f"{tmp_path}/txt2img.yaml: must be a mapping with keys title, description, order, "
                              "inputs, outputs"]


def test_a_yml_schema_is_found_too(tmp_path: Path) -> None:
    shutil.copy(WORKFLOWS / "txt2img.json", tmp_path / "t.json")
    (tmp_path / "t.yml").write_text("title: From yml\n")
    tab = load_tab(tmp_path / "t.json")
    assert (tab.title, tab.schema_file) == ("From yml", tmp_path / "t.yml")


def test_a_workflow_without_an_output_node_needs_one(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}
    (tmp_path / "no_out.json").write_text(json.dumps(nodes))
    (tmp_path / "no_out.yaml").write_text("title: Nothing out\n")
    assert problems(tmp_path / "no_out.json", catalog) == [
        f"{tmp_path}/no_out.yaml: no_out.json has no output node (SaveImage, PreviewImage, ...)"]
    (tmp_path / "no_out.yaml").unlink()
    assert problems(tmp_path / "no_out.json", catalog) == [
        f"{tmp_path}/no_out.json: no_out.json has no output node (SaveImage, PreviewImage, ...)"]


def test_an_output_names_a_node_and_is_labelled(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, "outputs:\n  final_image: {node: Save Image}\n  again: {node: '9', label: Once more}\n")
    tab = load_tab(path, catalog)
    assert tab.outputs == (Output("final_image", "9", "Final image"), Output("again", "9", "Once more"))
    assert load_tab(write_pair(tmp_path, "outputs:\n  decoded: {node: '8'}\n"), None).outputs == (
        Output("decoded", "8", "Decoded"),)  # without a catalogue any node may be named


def config_problems(path: Path, catalog: Catalog | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_tab(path, catalog)
    return caught.value.problems


def test_an_unreadable_schema_says_so(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "title: x\n")
    (tmp_path / "txt2img.yaml").unlink()
    (tmp_path / "txt2img.yaml").mkdir()
    assert config_problems(path) == [Problem(str(tmp_path / "txt2img.yaml"), "", "cannot be read (Is a directory)")]


def test_file_level_problems_have_no_key(tmp_path: Path) -> None:
    source = str(tmp_path / "txt2img.yaml")
    assert config_problems(write_pair(tmp_path, "- a\n")) == [
        Problem(source, "", "must be a mapping with keys title, description, order, inputs, outputs")]
    [problem] = config_problems(write_pair(tmp_path, "a: [\n"))
    assert (problem.source, problem.key, problem.reason.startswith("is not valid YAML: ")) == (source, "", True)
    nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}}
    (tmp_path / "lonely.json").write_text(json.dumps(nodes))
    assert config_problems(tmp_path / "lonely.json") == [
        Problem(str(tmp_path / "lonely.json"), "", "lonely.json has no output node (SaveImage, PreviewImage, ...)")]


def test_an_output_node_known_only_to_the_catalogue_is_enough(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
             "2": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}},
             "3": {"class_type": "MaskPreview", "inputs": {"mask": ["2", 0]}}}
    (tmp_path / "mask.json").write_text(json.dumps(nodes))
    assert load_tab(tmp_path / "mask.json", catalog).workflow.output_node_ids(catalog) == ["3"]


def test_the_title_and_description_come_from_the_schema(catalog: Catalog) -> None:
    tab = load_tab(WORKFLOWS / "txt2img.json", catalog)
    assert (tab.title, tab.description) == ("Text to image", "Describe a picture and Stable Diffusion 1.5 paints it.")


def test_a_bad_entry_stops_there_with_its_own_problems_only(tmp_path: Path, catalog: Catalog) -> None:
    path = write_pair(tmp_path, "inputs:\n  steps: {node: '3', input: steps, lable: x, default: 99999}\n"
                                "  none: {node: [], input: steps}\n")
    src = f"{tmp_path}/txt2img.yaml"
    assert problems(path, catalog) == [
        f"{src}: inputs.steps.lable: unknown key; allowed keys are: node, input, label, info, lines, minimum, "
        "maximum, step, choices, default, randomize, advanced, required, widget",
        f"{src}: inputs.none: 'node' must name a node (an id, a title or a class), or a list of them"]


def test_an_input_only_the_catalogue_knows_takes_its_default(tmp_path: Path, catalog: Catalog) -> None:
    nodes = json.loads((WORKFLOWS / "blur.json").read_text())
    del nodes["2"]["inputs"]["blur_radius"]
    (tmp_path / "b.json").write_text(json.dumps(nodes))
    (tmp_path / "b.yaml").write_text("inputs:\n  radius: {node: '2', input: blur_radius}\n"
                                     "  sigma: {node: '2', input: sigma}\n")
    tab = load_tab(tmp_path / "b.json", catalog)
    radius = tab.param("radius")
    assert (radius.kind, radius.default, radius.minimum, radius.maximum, radius.step, radius.info) == (
        "int", 1, 1, 31, 1, "")  # ImageBlur's catalogue entry has no tooltip
    assert tab.param("sigma").step == 0.1
    assert problems(tmp_path / "b.json") == [
        f"{tmp_path}/b.yaml: inputs.radius: node '2' has no input 'blur_radius' (its inputs: sigma)"]


def test_a_node_with_only_links_gives_no_input_hint(tmp_path: Path) -> None:
    path = write_pair(tmp_path, "inputs:\n  x: {node: '8', input: strength}\n")
    assert problems(path) == [f"{tmp_path}/txt2img.yaml: inputs.x: node '8' has no input 'strength'"]
