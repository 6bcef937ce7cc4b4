"""``check``: workflows against the server's catalogue, its findings, and the command's exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from comfyui_gradio.__main__ import main
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.check import Finding, check_folder, check_workflow, tab_findings
from comfyui_gradio.forms.loader import load_tab
from tests.paths import WORKFLOWS
from tests.paths import OBJECT_INFO

MISSING_CKPT = (
    "needs model v1-5-pruned-emaonly-fp16.safetensors (CheckpointLoaderSimple 'Load Checkpoint', input "
    "ckpt_name); put it in ComfyUI/models/checkpoints or pick another (this server has: tiny-random-sd15.safetensors)"
)


def node(class_type: str, title: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


INVERT = {
    "1": node("LoadImage", "Load Image", image="example.png"),
    "2": node("ImageInvert", "Invert", image=["1", 0]),
    "3": node("SaveImage", "Save Image", filename_prefix="x", images=["2", 0]),
}


def write(folder: Path, name: str, nodes: dict[str, Any], yaml: str | None = None) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(nodes), encoding="utf-8")
    if yaml is not None:
        path.with_suffix(".yaml").write_text(yaml, encoding="utf-8")
    return path


def messages(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.where, f.message) for f in findings]


# ---------------------------------------------------------------------------- one workflow


def test_shipped_workflows_need_only_the_sd15_checkpoint(catalog: Catalog) -> None:
    report = check_folder(WORKFLOWS, catalog)
    assert [(Path(f.workflow).name, f.severity, f.where, f.message) for f in report.findings] == [
        ("img2img.json", "error", "nodes.4.inputs.ckpt_name", MISSING_CKPT),
        ("txt2img.json", "error", "nodes.4.inputs.ckpt_name", MISSING_CKPT),
    ]
    assert (report.checked, len(report.workflows), report.exit_code) == (5, 5, 1)


def test_missing_node_class_names_class_node_and_title(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {**INVERT, "2": node("UltimateSDUpscale", "Upscale it", image=["1", 0])}
    findings = check_workflow(write(tmp_path, "up", nodes), catalog)
    assert messages(findings) == [(
        "error", "nodes.2",
        "node '2' ('Upscale it') uses node class 'UltimateSDUpscale', which this ComfyUI does not have; install "
        "the custom node that provides it (ComfyUI-Manager: Install Missing Custom Nodes) and restart ComfyUI",
    )]
    assert findings[0].summary == "needs custom node class UltimateSDUpscale"


def test_missing_model_in_an_empty_model_list(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {**INVERT, "4": node("LoraLoaderModelOnly", "Style", lora_name="pixel.safetensors",
                                 strength_model=1.0, model=["5", 0]),
             "5": node("UNETLoader", "Unet", unet_name="flux1-dev.safetensors", weight_dtype="default")}
    yaml = "inputs:\n  image: {node: '1', input: image}\n"
    assert messages(check_workflow(write(tmp_path, "lora", nodes, yaml), catalog)) == [
        ("error", "nodes.4.inputs.lora_name", "needs model pixel.safetensors (LoraLoaderModelOnly 'Style', input "
         "lora_name); put it in ComfyUI/models/loras or pick another (this server has: none)"),
        ("error", "nodes.5.inputs.unet_name", "needs model flux1-dev.safetensors (UNETLoader 'Unet', input "
         "unet_name); put it in ComfyUI/models/diffusion_models or pick another (this server has: none)"),
    ]


def test_a_form_default_is_what_gets_checked(tmp_path: Path, catalog: Catalog) -> None:
    nodes = json.loads((WORKFLOWS / "txt2img.json").read_text())
    good = "inputs:\n  checkpoint: {node: '4', input: ckpt_name, default: tiny-random-sd15.safetensors}\n"
    assert check_workflow(write(tmp_path, "good", nodes, good), catalog) == []
    bad = "inputs:\n  checkpoint: {node: '4', input: ckpt_name, default: other.ckpt}\n"
    assert [f.summary for f in check_workflow(write(tmp_path, "bad", nodes, bad), catalog)] == [
        "needs model other.ckpt"]


def test_values_outside_the_server_range_or_choices(tmp_path: Path, catalog: Catalog) -> None:
    nodes = json.loads((WORKFLOWS / "txt2img.json").read_text())
    nodes["3"]["inputs"].update(steps=20000, cfg=-1.0, scheduler="fastest")
    nodes["4"]["inputs"]["ckpt_name"] = "tiny-random-sd15.safetensors"
    findings = check_workflow(write(tmp_path, "range", nodes, "inputs:\n  prompt: {node: '6', input: text}\n"),
                              catalog)
    assert messages(findings) == [
        ("error", "nodes.3.inputs.steps", "value 20000 of input steps (KSampler 'KSampler') is above the server's "
         "maximum 10000; change it in the workflow or in the schema's default"),
        ("error", "nodes.3.inputs.cfg", "value -1.0 of input cfg (KSampler 'KSampler') is below the server's "
         "minimum 0.0; change it in the workflow or in the schema's default"),
        ("error", "nodes.3.inputs.scheduler", "value 'fastest' of input scheduler (KSampler 'KSampler') is not one "
         "of the server's choices (simple, sgm_uniform, karras, exponential, ddim_uniform and 4 more); pick one "
         "of them"),
    ]
    assert [f.summary for f in findings] == [
        "steps 20000 is above the maximum 10000", "cfg -1.0 is below the minimum 0.0",
        "scheduler 'fastest' is not available on the server"]


def test_unknown_inputs_warn_and_broken_links_or_missing_inputs_are_errors(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {**INVERT, "2": node("ImageInvert", "Invert", image=["7", 0], strength=2),
             "4": node("ImageBlur", "Blur", blur_radius=1, sigma=1.0)}
    assert messages(check_workflow(write(tmp_path, "links", nodes, "inputs: {}\n"), catalog)) == [
        ("error", "nodes.2.inputs.image", "input image of ImageInvert 'Invert' is connected to node '7', which "
         "is not in the workflow; reconnect it in ComfyUI and export again"),
        ("warning", "nodes.2.inputs.strength", "ImageInvert 'Invert' has no input 'strength' on this server (its "
         "inputs: image); ComfyUI ignores it. Remove it, or update the custom node that provides ImageInvert"),
        ("error", "nodes.4.inputs.image", "ImageBlur 'Blur' misses its required input 'image'; connect or set it "
         "in ComfyUI and export the workflow again"),
    ]


def test_schema_problems_are_errors_about_the_yaml(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "inv", INVERT, "inputs:\n  image: {node: '1', input: imag}\n")
    assert [(f.severity, f.file, f.where, f.message) for f in check_workflow(path, catalog)] == [(
        "error", str(path.with_suffix(".yaml")), "inputs.image", "node '1' has no input 'imag' (its inputs: image)")]


def test_marker_problems_are_errors_about_the_workflow(tmp_path: Path, catalog: Catalog) -> None:
    nodes = {**INVERT, "1": node("LoadImage", "$~photo.img", image="example.png")}
    path = write(tmp_path, "marked", nodes)
    assert [(f.file, f.where, f.message) for f in check_workflow(path, catalog)] == [
        ("", "title of node '1'", "'$~photo.img': LoadImage has no input 'img' (its widget inputs: image)")]


def test_ui_format_problems_are_errors(tmp_path: Path, catalog: Catalog) -> None:
    ui = {"nodes": [{"id": 1, "type": "FaceDetailer", "mode": 0, "title": "Fix faces", "inputs": [], "outputs": [],
                     "widgets_values": []}], "links": []}
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(ui), encoding="utf-8")
    assert messages(check_workflow(path, catalog)) == [(
        "error", "nodes.1",
        "'Fix faces' needs node FaceDetailer, which this ComfyUI server does not have: install the custom node "
        "that provides it (or update ComfyUI) and restart ComfyUI, or open the workflow in ComfyUI and save it "
        "with Export (API)",
    )]


def test_tab_findings_are_short_lines_for_the_tab(catalog: Catalog) -> None:
    assert tab_findings(load_tab(WORKFLOWS / "txt2img.json", catalog), catalog) == [
        "needs model v1-5-pruned-emaonly-fp16.safetensors"]
    assert tab_findings(load_tab(WORKFLOWS / "invert.json", catalog), catalog) == []
    assert tab_findings(load_tab(WORKFLOWS / "txt2img.json", catalog), None) == []


# ---------------------------------------------------------------------------- without a catalogue


def test_without_a_catalogue_schemas_are_still_checked(tmp_path: Path) -> None:
    write(tmp_path, "inv", INVERT, "inputs:\n  image: {node: '1', input: image, colour: red}\n")
    report = check_folder(tmp_path, None)
    assert [(f.severity, f.where) for f in report.findings] == [("warning", ""), ("error", "inputs.image.colour")]
    assert report.findings[0].message.startswith("no node catalogue: ComfyUI could not be reached")
    assert (report.checked, report.exit_code) == (1, 1)


def test_ui_workflows_without_a_catalogue_cannot_be_checked(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parent / "data" / "ui_workflows" / "default_txt2img.json", tmp_path)
    report = check_folder(tmp_path, None)
    assert [f.severity for f in report.findings] == ["warning", "warning"]
    assert report.findings[1].message.startswith("is a UI-format workflow, which cannot be read or checked")
    assert (report.checked, report.exit_code) == (0, 2)


def test_a_stale_catalogue_is_mentioned(tmp_path: Path, object_info: dict) -> None:
    write(tmp_path, "inv", INVERT)
    report = check_folder(tmp_path, Catalog(object_info, stale=True))
    assert [f.message.split(" because")[0] for f in report.findings] == ["checked against the cached node list"]
    assert report.exit_code == 0


# ---------------------------------------------------------------------------- the command


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "inv", INVERT)
    assert main(["check", str(tmp_path), "--catalog", str(OBJECT_INFO)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok: {tmp_path / 'inv.json'}",
                                                    "1 of 1 workflow(s) checked: 0 error(s), 0 warning(s)"]
    assert main(["check", str(WORKFLOWS), "--catalog", str(OBJECT_INFO)]) == 1
    assert f"error: {WORKFLOWS / 'txt2img.json'}: nodes.4.inputs.ckpt_name: {MISSING_CKPT}" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nowhere"), "--catalog", str(OBJECT_INFO)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: does not exist; give a workflows folder or " \
                                      "a workflow file\n"


def test_check_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(WORKFLOWS / "txt2img.json"), "--catalog", str(OBJECT_INFO), "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == [{
        "severity": "error", "workflow": str(WORKFLOWS / "txt2img.json"), "where": "nodes.4.inputs.ckpt_name",
        "message": MISSING_CKPT, "file": "", "summary": "needs model v1-5-pruned-emaonly-fp16.safetensors",
    }]


def test_an_unreadable_catalogue_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "object_info.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    assert main(["check", str(WORKFLOWS), "--catalog", str(bad)]) == 2
    assert capsys.readouterr().err == (f"error: {bad}: is not a node list; save it from "
                                       "http://COMFYUI/object_info\n")


def test_schema_and_convert_accept_a_catalogue_file(capsys: pytest.CaptureFixture[str]) -> None:
    ui = Path(__file__).parent / "data" / "ui_workflows" / "default_txt2img.json"
    assert main(["convert", str(ui), "--catalog", str(OBJECT_INFO)]) == 0
    assert json.loads(capsys.readouterr().out)["3"]["class_type"] == "KSampler"
    assert main(["schema", str(WORKFLOWS / "blur.json"), "--catalog", str(OBJECT_INFO)]) == 0
    assert capsys.readouterr().out.startswith("title: Blur\ninputs:\n  image:")
