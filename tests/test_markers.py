"""Title markers: the grammar, the schema they describe, and zero-config tabs built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.errors import ConfigError
from comfyui_gradio.forms.infer import infer_schema
from comfyui_gradio.forms.markers import Marker, MarkerError, markers_schema, parse_title, required_params
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import Output
from comfyui_gradio.forms.workflow import Workflow

# ---------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("$prompt", Marker("prompt", text="$prompt")),
        ("$prompt.text", Marker("prompt", "text", text="$prompt.text")),
        ("$prompt!", Marker("prompt", required=True, text="$prompt!")),
        ("$prompt.text!", Marker("prompt", "text", required=True, text="$prompt.text!")),
        ("$~image", Marker("image", upload=True, text="$~image")),
        ("$~image!", Marker("image", required=True, upload=True, text="$~image!")),
        ("$img.~image!", Marker("img", "image", required=True, upload=True, text="$img.~image!")),
        ("$image.image!:Input image URL",
         Marker("image", "image", required=True, description="Input image URL",
                text="$image.image!:Input image URL")),
        ("$output.cover", Marker("cover", is_output=True, text="$output.cover")),
        ("  $steps  ", Marker("steps", text="$steps")),
    ],
)
def test_every_marker_form(title: str, expected: Marker) -> None:
    assert parse_title(title) == [expected]


def test_titles_without_markers_have_none() -> None:
    assert parse_title("KSampler") == []
    assert parse_title("") == []
    assert parse_title("Costs 5$, cheap") == []


def test_several_markers_in_one_title_after_display_text() -> None:
    assert [(m.name, m.required) for m in parse_title("Size, $width!, $height")] == [("width", True), ("height", False)]


def test_a_description_keeps_its_commas_until_the_next_marker() -> None:
    width, height = parse_title("$width.width:Image width, default 512, $height:Image height")
    assert width.description == "Image width, default 512"
    assert height.description == "Image height"


def test_an_output_marker_takes_its_description_as_label_and_may_follow_text() -> None:
    assert parse_title("Result, $output.cover:Book cover") == [
        Marker("cover", description="Book cover", is_output=True, text="$output.cover:Book cover")]


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("$my-prompt", "marker '$my-prompt': the name 'my-prompt' must be a Python identifier (letters, digits "
                       "and _, not starting with a digit) because it is the parameter name in the API"),
        ("$class", "marker '$class': the name 'class' must be a Python identifier (letters, digits and _, not "
                   "starting with a digit) because it is the parameter name in the API"),
        ("$a b", "cannot read marker '$a b'; write $name, $name.input, $~name (upload), $name! (required) or "
                 "$name:description"),
        ("$", "marker '$' has no name after '$'; write $name, $name.input, $~name (upload), $name! (required) "
              "or $name:description"),
        ("$p.", "marker '$p.' has no input name after '.'; write $p.INPUT or $p"),
        ("$p.text.more", "cannot read marker '$p.text.more'; write $name, $name.input, $~name (upload), "
                         "$name! (required) or $name:description"),
        ("$output", "marker '$output' needs the output's name: write $output.NAME"),
        ("$output.cover!", "output marker '$output.cover!' takes no '~' or '!'; write $output.NAME"),
    ],
)
def test_bad_markers_say_how_to_write_them(title: str, message: str) -> None:
    with pytest.raises(MarkerError) as caught:
        parse_title(title)
    assert str(caught.value) == message


def test_every_bad_marker_of_a_title_is_named() -> None:
    with pytest.raises(MarkerError, match=r"'\$1x'.*; .*'\$a-b'"):
        parse_title("$1x, $ok, $a-b")


# ---------------------------------------------------------------------------- the schema


def workflow(nodes: dict[str, Any], path: Path = Path("workflows/marked.json")) -> Workflow:
    return Workflow(path.stem, path, nodes)


def node(class_type: str, title: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


TXT2IMG = {
    "4": node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="tiny-random-sd15.safetensors"),
    "6": node("CLIPTextEncode", "$prompt!:What to draw", text="a cat", clip=["4", 1]),
    "7": node("CLIPTextEncode", "Negative, $negative.text", text="blurry", clip=["4", 1]),
    "5": node("EmptyLatentImage", "Size, $width, $height", width=512, height=512, batch_size=1),
    "3": node("KSampler", "$seed, $steps.steps:Sampling steps", seed=5, steps=20, cfg=8.0, sampler_name="euler",
              scheduler="normal", denoise=1.0, model=["4", 0], positive=["6", 0], negative=["7", 0],
              latent_image=["5", 0]),
    "8": node("VAEDecode", "VAE Decode", samples=["3", 0], vae=["4", 2]),
    "9": node("SaveImage", "$output.picture:Picture", filename_prefix="x", images=["8", 0]),
}


def test_markers_describe_inputs_and_outputs_in_file_order(catalog: Catalog) -> None:
    assert markers_schema(workflow(TXT2IMG), catalog) == {
        "title": "Marked",
        "inputs": {
            "prompt": {"node": "6", "input": "text", "info": "What to draw", "required": True},
            "negative": {"node": "7", "input": "text"},
            "width": {"node": "5", "input": "width"},
            "height": {"node": "5", "input": "height"},
            "seed": {"node": "3", "input": "seed", "randomize": True},
            "steps": {"node": "3", "input": "steps", "info": "Sampling steps"},
        },
        "outputs": {"picture": {"node": "9", "label": "Picture"}},
    }


def test_no_markers_no_marker_schema(catalog: Catalog) -> None:
    assert markers_schema(workflow({"1": node("LoadImage", "Load Image", image="a.png")}), catalog) is None


@pytest.mark.parametrize("with_catalog", [True, False])
def test_main_input_follows_comfykit_then_upload_then_first_widget(with_catalog: bool, catalog: Catalog) -> None:
    nodes = {
        "1": node("LoadImage", "$~photo", image="a.png"),
        "2": node("KSampler", "$noise", seed=1, steps=20, model=["9", 0]),
        "3": node("CLIPTextEncode", "$words", clip=["9", 1], text="hi"),
        "4": node("EmptyLatentImage", "$batch_size", width=512, height=512, batch_size=1),
    }
    inputs = markers_schema(workflow(nodes), catalog if with_catalog else None)["inputs"]
    assert inputs == {
        "photo": {"node": "1", "input": "image", "widget": "image"},
        "noise": {"node": "2", "input": "seed", "randomize": True},
        "words": {"node": "3", "input": "text"},
        "batch_size": {"node": "4", "input": "batch_size"},
    }


def test_one_name_on_several_nodes_feeds_them_all(catalog: Catalog) -> None:
    nodes = {"1": node("CLIPTextEncode", "$prompt", text="a"), "2": node("CLIPTextEncode", "$prompt:Both", text="b")}
    assert markers_schema(workflow(nodes), catalog)["inputs"] == {
        "prompt": {"node": ["1", "2"], "input": "text", "info": "Both"}}


def test_required_params_lists_the_names_marked_with_a_bang() -> None:
    assert required_params(workflow(TXT2IMG)) == {"prompt"}
    assert required_params(workflow({"1": node("LoadImage", "$~image!, $bad-name!", image="a.png")})) == {"image"}


def test_bad_markers_are_reported_per_node_title(catalog: Catalog) -> None:
    nodes = {
        "6": node("CLIPTextEncode", "$prompt.txt", text="a", clip=["4", 1]),
        "7": node("CLIPTextEncode", "$neg.clip", text="b", clip=["4", 1]),
        "3": node("KSampler", "$my-seed, $steps, $more.steps", seed=1, steps=20),
        "5": node("EmptyLatentImage", "$size.width", width=512, height=512),
        "8": node("EmptyLatentImage", "$size.height", width=512, height=512),
        "9": node("SaveImage", "$output.out", images=["8", 0]),
        "10": node("PreviewImage", "$output.out", images=["8", 0]),
        "11": node("VAEDecode", "$decoded", samples=["3", 0]),
    }
    with pytest.raises(ConfigError) as caught:
        markers_schema(workflow(nodes), catalog)
    assert str(caught.value).splitlines() == [
        "workflows/marked.json: title of node '6': '$prompt.txt': CLIPTextEncode has no input 'txt' "
        "(its widget inputs: text)",
        "workflows/marked.json: title of node '7': '$neg.clip': input 'clip' is connected to node '4'; "
        "only widget values can be set from the form, so mark a widget input",
        "workflows/marked.json: title of node '3': marker '$my-seed': the name 'my-seed' must be a Python "
        "identifier (letters, digits and _, not starting with a digit) because it is the parameter name in the API",
        "workflows/marked.json: title of node '3': '$more.steps': input 'steps' is already set by '$steps'; "
        "mark each input once",
        "workflows/marked.json: title of node '8': '$size.height': the name 'size' already sets input 'width' "
        "of node '5'; one name can feed several nodes only through inputs of the same name, so pick another name",
        "workflows/marked.json: title of node '10': '$output.out': the output name 'out' is already used by "
        "node '9'; give each output its own name",
        "workflows/marked.json: title of node '11': '$decoded': VAEDecode has no widget input to set; "
        "write $decoded.INPUT naming one",
    ]


# ---------------------------------------------------------------------------- zero-config tabs


def write(tmp_path: Path, nodes: dict[str, Any], name: str = "marked") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(nodes), encoding="utf-8")
    return path


def test_a_marked_workflow_is_a_tab_without_yaml(tmp_path: Path, catalog: Catalog) -> None:
    tab = load_tab(write(tmp_path, TXT2IMG), catalog)
    assert [(p.name, p.targets, p.kind, p.label, p.default, p.info, p.randomize) for p in tab.params] == [
        ("prompt", (("6", "text"),), "text", "Prompt", "a cat", "What to draw", False),
        ("negative", (("7", "text"),), "text", "Negative", "blurry", "The text to be encoded.", False),
        ("width", (("5", "width"),), "int", "Width", 512, "The width of the latent images in pixels.", False),
        ("height", (("5", "height"),), "int", "Height", 512, "The height of the latent images in pixels.", False),
        ("seed", (("3", "seed"),), "int", "Seed", 5, "The random seed used for creating the noise.", True),
        ("steps", (("3", "steps"),), "int", "Steps", 20, "Sampling steps", False),
    ]
    assert tab.outputs == (Output("picture", "9", "Picture"),)
    assert (tab.param("steps").minimum, tab.param("steps").maximum) == (1, 10000)


def test_an_upload_marker_is_an_image_field(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": node("LoadImage", "Input, $~picture!", image="example.png"),
             "2": node("ImageInvert", "Invert", image=["1", 0]),
             "3": node("SaveImage", "Save", filename_prefix="x", images=["2", 0])}
    tab = load_tab(write(tmp_path, nodes), catalog)
    assert [(p.name, p.targets, p.kind) for p in tab.params] == [("picture", (("1", "image"),), "image")]
    assert tab.outputs == ()


def test_output_markers_alone_keep_the_inferred_form(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": node("LoadImage", "Load", image="example.png"),
             "2": node("SaveImage", "$output.result", filename_prefix="x", images=["1", 0])}
    schema = infer_schema(workflow(nodes), catalog)
    assert schema["inputs"] == {"image": {"node": "1", "input": "image", "label": "Image"}}
    assert schema["outputs"] == {"result": {"node": "2"}}


def test_bad_markers_stop_the_tab_with_every_problem(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {"1": node("LoadImage", "$~in put", image="a.png"), "2": node("SaveImage", "$output.9", images=["1", 0])}
    path = write(tmp_path, nodes)
    with pytest.raises(ConfigError) as caught:
        load_tab(path, catalog)
    assert [(p.key, p.reason) for p in caught.value.problems] == [
        ("title of node '1'", "cannot read marker '$~in put'; write $name, $name.input, $~name (upload), "
                              "$name! (required) or $name:description"),
        ("title of node '2'", "marker '$output.9': the name '9' must be a Python identifier (letters, digits and "
                              "_, not starting with a digit) because it is the parameter name in the API"),
    ]
    assert {p.source for p in caught.value.problems} == {str(path)}


def test_a_yaml_schema_wins_over_markers(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, TXT2IMG)
    path.with_suffix(".yaml").write_text("inputs:\n  words: {node: '6', input: text}\n", encoding="utf-8")
    assert [p.name for p in load_tab(path, catalog).params] == ["words"]
