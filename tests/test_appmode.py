"""App Mode: the form saved in ComfyUI's app builder (``extra.linearData``) becomes the tab's form."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfyui_gradio.__main__ import main
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import NodeStarted
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.prepare import prepare
from comfyui_gradio.forms.schema import Output, TabSpec
from tests.fake_comfyui import FakeComfyUI
from tests.paths import DATA, OBJECT_INFO, WORKFLOWS
from tests.replay import png_bytes

APP = WORKFLOWS / "invert_and_blur.json"  # made in frontend 1.58.1 by tools/appmode_workflow.py
FRONTEND_PROMPT = DATA / "appmode" / "invert_and_blur.prompt.json"
TEMPLATE = DATA / "appmode" / "template_qwen_image_illustration_lora.json"


def saved() -> dict[str, Any]:
    return json.loads(APP.read_text(encoding="utf-8"))


def write(tmp_path: Path, workflow: dict[str, Any], name: str = "app") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    return path


def with_linear(inputs: list, outputs: list | None = None) -> dict[str, Any]:
    workflow = saved()
    workflow["extra"]["linearData"] = {"inputs": inputs, "outputs": ["4"] if outputs is None else outputs}
    return workflow


def fields(tab: TabSpec) -> list[tuple[str, tuple[tuple[str, str], ...], str, str]]:
    return [(p.name, p.targets, p.label, p.info) for p in tab.params]


# ---------------------------------------------------------------------------- the shipped App Mode workflow


def test_the_app_mode_form_is_the_tab_in_its_order_with_its_descriptions(catalog: Catalog) -> None:
    tab = load_tab(APP, catalog)
    assert fields(tab) == [
        ("image", (("1", "image"),), "Image", "The picture to invert and blur"),
        ("blur_radius", (("5:3", "blur_radius"),), "Blur radius", "How far the blur reaches, in pixels (1 to 31)"),
    ]
    image, radius = tab.params
    assert (image.kind, image.default) == ("image", "example.png")
    assert (radius.kind, radius.default, radius.minimum, radius.maximum) == ("int", 4, 1, 31)  # from /object_info
    assert tab.outputs == (Output("save_image", "4", "Save Image"),)
    assert tab.notes == ()  # sigma is promoted too, but not chosen for the app: it is not on the form


def test_its_prompt_is_what_the_frontend_queues(catalog: Catalog) -> None:
    frontend = json.loads(FRONTEND_PROMPT.read_text(encoding="utf-8"))
    ours = load_tab(APP, catalog).workflow.nodes
    assert {k: (n["class_type"], n["inputs"]) for k, n in ours.items()} == \
           {k: (n["class_type"], n["inputs"]) for k, n in frontend.items()}


def test_a_value_from_the_form_reaches_the_node_inside_the_subgraph(catalog: Catalog) -> None:
    prompt = prepare(load_tab(APP, catalog), {"image": "mine.png", "blur_radius": 9}).prompt
    assert prompt["1"]["inputs"]["image"] == "mine.png"
    assert prompt["5:3"]["inputs"] == {"blur_radius": 9, "sigma": 2, "image": ["5:2", 0]}


def test_a_node_inside_the_subgraph_is_shown_as_the_instance_the_person_sees(fake: FakeComfyUI, tmp_path: Path,
                                                                            catalog: Catalog) -> None:
    """While node 5:3 (ImageBlur inside instance 5) runs, the page names instance 5 by its title first."""
    tab = load_tab(APP, catalog)
    assert tab.workflow.groups == {"5": "Invert and blur"}
    with ComfyClient(fake.url, output_dir=tmp_path) as client:
        job = client.submit(tab, {"image": png_bytes((10, 200, 30)), "blur_radius": 2})
        started = [e.title for e in job.events() if isinstance(e, NodeStarted)]
        job.result(10)
    assert started == ["Load Image", "Invert and blur › Invert Image", "Invert and blur › ImageBlur", "Save Image"]


def test_the_schema_command_prints_the_app_mode_form_and_that_yaml_gives_the_same_tab(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], catalog: Catalog) -> None:
    assert main(["schema", str(APP), "--catalog", str(OBJECT_INFO)]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert printed.out == (
        "title: Invert and blur\n"
        "inputs:\n"
        "  image:\n    node: '1'\n    input: image\n    label: Image\n    info: The picture to invert and blur\n"
        "  blur_radius:\n    node: '5:3'\n    input: blur_radius\n    label: Blur radius\n"
        "    info: How far the blur reaches, in pixels (1 to 31)\n"
        "outputs:\n  save_image:\n    node: '4'\n    label: Save Image\n")
    copy_path = write(tmp_path, saved(), "invert_and_blur")
    copy_path.with_suffix(".yaml").write_text(printed.out, encoding="utf-8")
    from_yaml, from_app = load_tab(copy_path, catalog), load_tab(APP, catalog)
    assert from_yaml.schema_file == copy_path.with_suffix(".yaml")
    assert (from_yaml.params, from_yaml.outputs, from_yaml.title) == (from_app.params, from_app.outputs, from_app.title)


def test_the_schema_command_warns_about_entries_it_leaves_out(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, with_linear([["1", "image"], ["77", "seed"]]))
    assert main(["schema", str(path), "--catalog", str(OBJECT_INFO)]) == 0
    assert capsys.readouterr().err == ("warning: App Mode input 'seed' is left out of the form: no node of the root "
                                       "graph shows a widget 'seed' of node 77.\n")


# ---------------------------------------------------------------------------- the saved forms of widget ids


@pytest.mark.parametrize("entry", [
    ["{root}:5:blur_radius", "blur_radius"],  # rootGraphId:nodeId:widgetName, as 1.58 saves it
    ["another-graph:5:blur%5Fradius", "ignored"],  # the graph id is not compared; segments are URI-encoded
    ["{subgraph}:5", "blur_radius"],  # a node locator: subgraph uuid and instance id
    ["5", "blur_radius"],  # a plain id of the instance, with its promoted widget's name
    [3, "blur_radius"],  # a legacy id of the node inside the subgraph: the instance's widget promoting it
])
def test_every_saved_form_of_a_widget_id_reaches_the_same_input(tmp_path: Path, catalog: Catalog,
                                                                  entry: list) -> None:
    ids = {"root": saved()["id"], "subgraph": saved()["definitions"]["subgraphs"][0]["id"]}
    stored = entry[0].format(**ids) if isinstance(entry[0], str) else entry[0]
    tab = load_tab(write(tmp_path, with_linear([[stored, entry[1]]])), catalog)
    assert [(p.name, p.targets) for p in tab.params] == [("blur_radius", (("5:3", "blur_radius"),))]
    assert tab.notes == ()


def test_entries_that_lead_nowhere_are_left_out_with_a_note(tmp_path: Path, catalog: Catalog) -> None:
    workflow = with_linear([["x:99:image", "image"], [2, "image"], ["5", "image"], ["5", "nothing"],
                            ["1", "upload"], "junk", ["1", "image"], ["1", "image"]], ["4", "4", "1", "42"])
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert [p.name for p in tab.params] == ["image"]
    assert tab.outputs == (Output("save_image", "4", "Save Image"),)
    assert tab.notes[:8] == (
        "App Mode input 'image' is left out of the form: node 99 is not in the workflow.",
        "App Mode input 'image' is left out of the form: no node of the root graph shows a widget 'image' of node 2.",
        "App Mode input 'image' is left out of the form: no node of the root graph shows a widget 'image' of node 5.",
        "App Mode input 'nothing' is left out of the form: no node of the root graph shows a widget 'nothing' of "
        "node 5.",
        "App Mode input 'upload' of node 1 is left out of the form: the node input it sets is not sent to ComfyUI "
        "(a muted or bypassed node, or a UI-only widget).",  # the upload button
        "App Mode input 6 is left out of the form: 'junk' is not a [widget id, widget name] pair.",
        "App Mode input 'image' of node 1 is left out of the form: an earlier App Mode input already sets it.",
        "App Mode output 1 is left out of the form: no output node (SaveImage, PreviewImage, ...) of that id is sent "
        "to ComfyUI.",
    )
    assert tab.notes[8].startswith("App Mode output 42 is left out")


def test_a_widget_of_a_bypassed_node_or_driven_by_a_link_is_left_out(tmp_path: Path, catalog: Catalog) -> None:
    workflow = with_linear([["1", "image"], ["5", "blur_radius"]])
    instance = next(n for n in workflow["nodes"] if n["id"] == 5)
    instance["inputs"].append({"name": "blur_radius", "type": "INT", "widget": {"name": "blur_radius"}, "link": 99})
    workflow["nodes"].append({"id": 9, "type": "PrimitiveInt", "mode": 0, "inputs": [],
                              "outputs": [{"name": "INT", "type": "INT", "links": [99]}],
                              "widgets_values": [6, "fixed"]})
    workflow["links"].append([99, 9, 0, 5, 1, "INT"])
    next(n for n in workflow["nodes"] if n["id"] == 1)["mode"] = 4
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert tab.notes == (
        "App Mode input 'image' of node 1 is left out of the form: the node is bypassed, so nothing of it is sent.",
        "App Mode input 'blur_radius' of node 5 is left out of the form: the subgraph input is connected to another "
        "node, which sets its value.",
    )


def test_a_primitive_node_sets_every_widget_it_feeds(tmp_path: Path, catalog: Catalog) -> None:
    # (one feeding a subgraph instance is refused by the converter, test_convert)
    workflow = with_linear([["9", "value", {"description": "Where"}]])
    workflow["nodes"].append({"id": 9, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                              "outputs": [{"name": "STRING", "type": "STRING", "widget": {"name": "value"},
                                           "links": [99]}], "widgets_values": ["mine/here"]})
    save = next(n for n in workflow["nodes"] if n["id"] == 4)
    save["inputs"].append({"name": "filename_prefix", "type": "STRING", "widget": {"name": "filename_prefix"},
                           "link": 99})
    workflow["links"].append([99, 9, 0, 4, 1, "STRING"])
    tab = load_tab(write(tmp_path, workflow, "primitive"), catalog)
    assert fields(tab) == [("value", (("4", "filename_prefix"),), "Value", "Where")]
    assert tab.params[0].default == "mine/here"


# ---------------------------------------------------------------------------- precedence


def test_a_yaml_beside_the_workflow_takes_precedence(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, saved())
    path.with_suffix(".yaml").write_text("inputs:\n  sigma: {node: '5:3', input: sigma}\n", encoding="utf-8")
    assert [p.name for p in load_tab(path, catalog).params] == ["sigma"]


def test_app_mode_takes_precedence_over_title_markers(tmp_path: Path, catalog: Catalog) -> None:
    workflow = saved()
    next(n for n in workflow["nodes"] if n["id"] == 4)["title"] = "$output.marked"
    next(n for n in workflow["nodes"] if n["id"] == 1)["title"] = "$~photo!"
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert [p.name for p in tab.params] == ["image", "blur_radius"]
    assert [o.name for o in tab.outputs] == ["save_image"]


def test_a_part_app_mode_leaves_empty_falls_back_to_markers_then_the_inferred_form(
        tmp_path: Path, catalog: Catalog) -> None:
    workflow = with_linear([], ["4"])
    next(n for n in workflow["nodes"] if n["id"] == 1)["title"] = "$~photo!"
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert [(p.name, p.required) for p in tab.params] == [("photo", True)]
    assert [o.name for o in tab.outputs] == ["save_image"]
    inferred = load_tab(write(tmp_path, with_linear([], []), "empty"), catalog)  # empty linearData: no App Mode
    assert [p.name for p in inferred.params] == ["image", "blur_radius", "sigma"]
    assert inferred.outputs == ()


# ---------------------------------------------------------------------------- an official template


def test_a_template_naming_inner_nodes_by_legacy_ids_gets_the_promoted_widgets(catalog: Catalog) -> None:
    tab = load_tab(TEMPLATE, catalog)  # saved by frontend 1.42.8: [innerNodeId, widgetName] entries
    assert [(p.name, p.targets, p.label) for p in tab.params] == [
        ("text", (("76:6", "text"),), "Prompt"),  # the instance input's label
        ("width", (("76:58", "width"),), "Width"),
        ("height", (("76:58", "height"),), "Height"),
        ("strength_model", (("76:73", "strength_model"),), "Lora strength"),
        ("steps", (("76:3", "steps"),), "Steps"),
    ]
    assert tab.params[0].info == "The text to be encoded."  # no saved description: the server's tooltip
    assert tab.outputs == (Output("save_image", "60", "Save Image"),)
    # batch_size of node 58 is no promoted widget of the instance: the frontend drops it too
    assert tab.notes[0] == ("App Mode input 'batch_size' is left out of the form: no node of the root graph shows a "
                            "widget 'batch_size' of node 58.")


def test_an_api_format_workflow_has_no_app_mode(catalog: Catalog) -> None:
    assert [p.name for p in load_tab(WORKFLOWS / "blur.json", catalog).params][:1] == ["image"]


def test_the_same_widget_name_twice_gets_distinct_names_and_labels(tmp_path: Path, catalog: Catalog) -> None:
    workflow = with_linear([["1", "image"], ["5", "blur_radius"]])
    second = copy.deepcopy(next(n for n in workflow["nodes"] if n["id"] == 1))
    second.update(id=8, title="Second picture")
    for output in second["outputs"]:
        output["links"] = []
    workflow["nodes"].append(second)
    workflow["extra"]["linearData"]["inputs"].append(["8", "image"])
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert [(p.name, p.label) for p in tab.params] == [("image", "Image"), ("blur_radius", "Blur radius"),
                                                        ("image_8", "Image (Second picture)")]


def test_a_legacy_id_promoted_by_two_instances_is_ambiguous(tmp_path: Path, catalog: Catalog) -> None:
    workflow = with_linear([[3, "blur_radius"], ["6", "blur_radius"]])
    twin = copy.deepcopy(next(n for n in workflow["nodes"] if n["id"] == 5))
    twin.update(id=6, inputs=[{"name": "image", "type": "IMAGE", "link": None}], outputs=[])
    workflow["nodes"].append(twin)
    tab = load_tab(write(tmp_path, workflow), catalog)
    assert [(p.name, p.targets) for p in tab.params] == [("blur_radius", (("6:3", "blur_radius"),))]
    assert tab.notes == ("App Mode input 'blur_radius' is left out of the form: several subgraph instances show "
                         "widget 'blur_radius' of node 3.",)


# ---------------------------------------------------------------------------- on a real ComfyUI


@pytest.mark.real
def test_the_app_mode_tab_inverts_and_blurs_on_a_real_comfyui(tmp_path: Path) -> None:
    """``COMFYUI_URL=http://127.0.0.1:8188 ./test.sh -m real``: the image and radius chosen in App Mode reach the
    nodes inside the subgraph. A black square on white, inverted, is white on black; blurred, its edge is soft."""
    import os

    from gradio_client import handle_file
    from PIL import Image, ImageDraw

    from tests.harness import RunningApp, only_image

    url = os.environ.get("COMFYUI_URL", "").split(",")[0]
    if not url:
        pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / APP.name).write_bytes(APP.read_bytes())
    source = Image.new("RGB", (64, 48), (255, 255, 255))
    ImageDraw.Draw(source).rectangle((16, 12, 47, 35), fill=(0, 0, 0))
    source.save(tmp_path / "square.png")
    app = RunningApp(url, folder, tmp_path)
    try:
        sharp = only_image(app.client.predict(image=handle_file(str(tmp_path / "square.png")), blur_radius=1,
                                              api_name="/invert_and_blur")[1])
        soft = only_image(app.client.predict(image=handle_file(str(tmp_path / "square.png")), blur_radius=8,
                                             api_name="/invert_and_blur")[1])
    finally:
        app.close()
    assert sharp.size == soft.size == (64, 48)
    assert sharp.getpixel((2, 2)) == soft.getpixel((2, 2)) == (0, 0, 0)  # white, inverted, far from the square
    assert min(soft.getpixel((32, 24))) >= 250  # the square's middle: black, inverted
    inside_edge, outside_edge = soft.getpixel((17, 24))[0], soft.getpixel((14, 24))[0]
    assert 40 < outside_edge < inside_edge < 230  # the radius 8 blur spread the edge
    assert sharp.getpixel((14, 24))[0] < outside_edge  # radius 1 keeps it sharper


# ---------------------------------------------------------------------------- a DynamicCombo field


@pytest.fixture()
def resize_app(tmp_path: Path, object_info: dict) -> tuple[Path, Catalog]:
    """ResizeImageMaskNode's ``resize_type`` chosen in App Mode (the V3 catalogue entry of test_v3_inputs)."""
    from tests.test_v3_inputs import V3_CLASSES, resize

    workflow = resize(["scale dimensions", 1024, 768, "center", "lanczos"])
    workflow["extra"] = {"linearData": {"inputs": [["2", "resize_type"], ["1", "image"]], "outputs": ["3"]}}
    return write(tmp_path, workflow, "resize"), Catalog({**copy.deepcopy(object_info), **V3_CLASSES})


def test_a_dynamic_combo_field_brings_the_fields_of_its_options(resize_app: tuple[Path, Catalog]) -> None:
    tab = load_tab(*resize_app)
    assert [(p.name, p.targets[0], p.kind, p.default, p.option_of) for p in tab.params] == [
        ("resize_type", ("2", "resize_type"), "choice", "scale dimensions", None),
        ("resize_type_width", ("2", "resize_type.width"), "int", 1024, ("resize_type", ("scale dimensions",))),
        ("resize_type_height", ("2", "resize_type.height"), "int", 768, ("resize_type", ("scale dimensions",))),
        ("resize_type_crop", ("2", "resize_type.crop"), "choice", "center", ("resize_type", ("scale dimensions",))),
        ("resize_type_multiplier", ("2", "resize_type.multiplier"), "float", 1.0, ("resize_type", ("scale by",))),
        ("image", ("1", "image"), "image", "cat.png", None),
    ]
    assert tab.params[0].choices == ("scale dimensions", "scale by")
    assert tab.params[3].choices == ("center", "disabled")
    assert (tab.params[1].label, tab.params[1].minimum) == ("Resize type: width", 0)


def test_the_prompt_holds_only_the_chosen_options_inputs(resize_app: tuple[Path, Catalog]) -> None:
    tab = load_tab(*resize_app)
    kept = prepare(tab, {"resize_type_width": 640, "resize_type_multiplier": 3}).prompt["2"]["inputs"]
    assert kept == {"resize_type": "scale dimensions", "resize_type.width": 640, "resize_type.height": 768,
                    "resize_type.crop": "center", "scale_method": "lanczos", "input": ["1", 0]}
    switched = prepare(tab, {"resize_type": "scale by", "resize_type_width": 640, "resize_type_multiplier": 3})
    assert switched.prompt["2"]["inputs"] == {"resize_type": "scale by", "resize_type.multiplier": 3.0,
                                              "scale_method": "lanczos", "input": ["1", 0]}
    assert "resize_type_width" not in switched.values
    defaults = prepare(tab, {"resize_type": "scale by"}).prompt["2"]["inputs"]
    assert defaults["resize_type.multiplier"] == 1.0


def test_an_option_field_chosen_in_app_mode_keeps_its_place(resize_app: tuple[Path, Catalog]) -> None:
    path, catalog = resize_app
    workflow = json.loads(path.read_text(encoding="utf-8"))
    workflow["extra"]["linearData"]["inputs"] = [["2", "resize_type.height", {"description": "Tall"}],
                                                 ["2", "resize_type"]]
    path.write_text(json.dumps(workflow), encoding="utf-8")
    tab = load_tab(path, catalog)
    assert [(p.name, p.info) for p in tab.params][:3] == [("resize_type_height", "Tall"), ("resize_type", ""),
                                                          ("resize_type_width", "")]
    assert [p.name for p in tab.params] == ["resize_type_height", "resize_type", "resize_type_width",
                                            "resize_type_crop", "resize_type_multiplier"]


def test_the_tab_shows_the_fields_of_the_chosen_option_only(resize_app: tuple[Path, Catalog], tmp_path: Path) -> None:
    from comfyui_gradio.comfy.pool import ComfyPool
    from comfyui_gradio.comfy.client import ComfyClient
    from comfyui_gradio.forms.loader import TabLoad
    from comfyui_gradio.web.config import Settings
    from comfyui_gradio.web.page import build_app

    spec = load_tab(*resize_app)
    settings = Settings(comfyui_url="http://127.0.0.1:9", workflows_dir=tmp_path, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache")
    pool = ComfyPool([ComfyClient("http://127.0.0.1:9")])
    try:
        app = build_app(settings, pool, [TabLoad("resize", resize_app[0], spec=spec)])
    finally:
        pool.close()
    props = {c["props"].get("elem_id"): c["props"] for c in app.get_config_file()["components"]}
    assert [props[f"resize-{n}"]["visible"] for n in ("resize_type", "resize_type_width", "resize_type_crop",
                                                      "resize_type_multiplier")] == [True, True, True, False]
    combo_id = next(c["id"] for c in app.get_config_file()["components"]
                    if c["props"].get("elem_id") == "resize-resize_type")
    show = next(f for f in app.fns.values() if [t[0] for t in f.targets] == [combo_id] and f.name == "show")
    assert [u["visible"] for u in show.fn("scale by")] == [False, False, False, True]
    assert [u["visible"] for u in show.fn("scale dimensions")] == [True, True, True, False]


def test_the_template_gives_the_same_tab_as_the_widget_ids_the_frontend_upgrades_it_to(
        tmp_path: Path, catalog: Catalog) -> None:
    upgraded = json.loads((DATA / "appmode" / "template_qwen_image_illustration_lora.linear.json").read_text())
    workflow = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert len(upgraded["inputs"]) == len(workflow["extra"]["linearData"]["inputs"]) - 1  # batch_size dropped
    workflow["extra"]["linearData"] = upgraded
    canonical, legacy = load_tab(write(tmp_path, workflow, "upgraded"), catalog), load_tab(TEMPLATE, catalog)
    assert (canonical.params, canonical.outputs) == (legacy.params, legacy.outputs)
    assert not [note for note in canonical.notes if note.startswith("App Mode")]


def test_a_widget_promoted_twice_reaches_the_node_two_subgraphs_deep(tmp_path: Path, catalog: Catalog) -> None:
    from tests.test_convert import node, out, slot
    from tests.test_subgraphs import OUTER, SCALE, around, definition, io, link, scale_definition

    inner = node(7, SCALE, inputs=[slot("image", "IMAGE", 1), slot("width", "INT", 4, widget=True)],
                 outputs=[out("IMAGE", "IMAGE", [2])], widgets=[55])
    outer = definition(OUTER, "Outer", [inner], [link(1, -10, 0, 7, 0), link(4, -10, 1, 7, 1, "INT"),
                                                 link(2, 7, 0, -20, 0)],
                       [io("image", "IMAGE", [1]), io("width", "INT", [4])], [io("IMAGE", "IMAGE", [2])])
    # the widget id; a legacy id names the node the outer subgraph input feeds: the inner instance 7
    for entry in (["g:12:width", "width"], [7, "width"]):
        workflow = around(OUTER, [outer, scale_definition()], widgets=[33])
        workflow["extra"] = {"linearData": {"inputs": [entry, [5, "width"]], "outputs": [3]}}
        tab = load_tab(write(tmp_path, workflow, "nested"), catalog)
        assert [(p.name, p.targets, p.default) for p in tab.params] == [("width", (("12:7:5", "width"),), 33)]
        assert prepare(tab, {"width": 64}).prompt["12:7:5"]["inputs"]["width"] == 64
        # [5, "width"] is dropped, as the frontend drops it: resolveSubgraphInputTarget stops at the inner instance
        assert tab.notes == ("App Mode input 'width' is left out of the form: no node of the root graph shows a "
                             "widget 'width' of node 5.",)


def test_check_reports_the_entries_left_out_as_warnings(tmp_path: Path, catalog: Catalog) -> None:
    from comfyui_gradio.forms.check import check_folder

    write(tmp_path, with_linear([["1", "image"], ["77", "seed"]]))
    report = check_folder(tmp_path, catalog)
    assert [(f.severity, f.message) for f in report.findings] == [
        ("warning", "App Mode input 'seed' is left out of the form: no node of the root graph shows a widget 'seed' "
                    "of node 77.")]
    assert report.exit_code == 0


def test_an_option_not_chosen_has_no_widget_to_pick(resize_app: tuple[Path, Catalog]) -> None:
    path, catalog = resize_app
    workflow = json.loads(path.read_text(encoding="utf-8"))
    workflow["extra"]["linearData"]["inputs"] = [["2", "resize_type.multiplier"], ["2", "resize_type"]]
    path.write_text(json.dumps(workflow), encoding="utf-8")
    assert load_tab(path, catalog).notes[0] == ("App Mode input 'resize_type.multiplier' is left out of the form: no "
                                                "node of the root graph shows a widget 'resize_type.multiplier' of "
                                                "node 2.")  # the editor draws only the chosen option's widgets


def test_the_yaml_of_a_dynamic_combo_form_gives_the_same_tab(resize_app: tuple[Path, Catalog], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path, catalog = resize_app
    workflow = json.loads(path.read_text(encoding="utf-8"))
    workflow["extra"]["linearData"]["inputs"].insert(0, ["2", "resize_type.height"])
    path.write_text(json.dumps(workflow), encoding="utf-8")
    (tmp_path / "catalog.json").write_text(json.dumps(catalog.raw), encoding="utf-8")
    assert main(["schema", str(path), "--catalog", str(tmp_path / "catalog.json")]) == 0
    printed = capsys.readouterr().out
    assert "input: resize_type.height" in printed and "resize_type_width" not in printed  # brought by the combo
    from_app = load_tab(path, catalog)
    path.with_suffix(".yaml").write_text(printed, encoding="utf-8")
    from_yaml = load_tab(path, catalog)
    assert (from_yaml.params, from_yaml.outputs) == (from_app.params, from_app.outputs)
    assert [p.name for p in from_yaml.params][:3] == ["resize_type_height", "resize_type", "resize_type_width"]
