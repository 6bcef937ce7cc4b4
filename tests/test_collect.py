"""Collecting a history entry's outputs into a job folder, without a job or a server."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from comfyui_gradio.comfy.collect import collect_outputs
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow

PROMPT = {"3": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": "Keep"}},
          "7": {"class_type": "PreviewAny", "inputs": {}}, "9": {"class_type": "GetImageSize", "inputs": {}}}


def tab(schema: dict) -> TabSpec:
    return tab_from_schema(Workflow("t", Path("t.json"), PROMPT), schema, None)


def fake_download(filename: str, subfolder: str, kind: str) -> bytes:
    return f"{kind}:{subfolder}/{filename}".encode()


def test_two_outputs_with_the_same_file_name_are_kept_apart(tmp_path: Path) -> None:
    outputs = {"3": {"images": [{"filename": "a.png", "subfolder": s, "type": "output"} for s in ("x", "y", "z")]}}
    files = collect_outputs(outputs, tab({}), PROMPT, fake_download, tmp_path)
    assert [(f.path.name, f.path.read_bytes()) for f in files] == [
        ("3_a.png", b"output:x/a.png"), ("3_1_a.png", b"output:y/a.png"), ("3_2_a.png", b"output:z/a.png")]


def test_outputs_are_named_by_the_schema_else_by_the_node_title(tmp_path: Path) -> None:
    assert [(f.output_name, f.path.name) for f in collect_outputs({"5": {"text": ["x"]}}, tab({}), PROMPT,
                                                                  fake_download, tmp_path / "unknown")] == [
        ("node 5", "5_text_0.txt")]  # a node the workflow does not have
    outputs = {"3": {"images": [{"filename": "a.png", "type": "temp"}]}, "7": {"text": "hello"},
               "9": {"text": ["size"], "images": [{"filename": "b.png"}], "ui_only": [{"no": "filename"}],
                     "3d": [{"filename": "mesh.xyz"}]}}
    files = collect_outputs(outputs, tab({}), PROMPT, fake_download, tmp_path)
    assert [(f.node_id, f.output_name, f.kind, f.path.name, f.preview, f.text) for f in files] == [
        ("3", "Keep", "image", "3_a.png", True, None), ("7", "PreviewAny", "text", "7_text_0.txt", False, "hello"),
        ("9", "GetImageSize", "text", "9_text_0.txt", False, "size"),
        ("9", "GetImageSize", "image", "9_b.png", False, None), ("9", "GetImageSize", "model3d", "9_mesh.xyz", False, None)]  # an unknown suffix: the list's name says
    assert files[0].path.read_bytes() == b"temp:/a.png" and files[3].path.read_bytes() == b"output:/b.png"
    named = collect_outputs(outputs, tab({"outputs": {"picture": {"node": "3"}, "size": {"node": "9"}}}), PROMPT,
                            fake_download, tmp_path / "named")
    assert [(f.output_name, f.node_id) for f in named] == [("picture", "3")] + [("size", "9")] * 3  # not node 7


def test_a_file_already_in_the_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "3_a.png").write_bytes(b"earlier")
    names = ["sub\\a.png", ".hidden.png", "...", "a&b?c d-e.png"]
    outputs = {"3": {"images": [{"filename": n} for n in names]}, "a/b": {"text": ["one", "two"]}}
    files = collect_outputs(outputs, tab({}), PROMPT, fake_download, tmp_path)
    assert [f.path.name for f in files] == ["3_1_a.png", "3_hidden.png", "3_output", "3_a_b_c d-e.png",
                                            "a_b_text_0.txt", "a_b_text_1.txt"]
    assert (tmp_path / "3_a.png").read_bytes() == b"earlier" and files[-1].path.read_text() == "two"


def test_an_image_without_a_suffix_is_named_after_its_bytes_and_the_servers_suffix_wins(tmp_path: Path) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (2, 2)).save(jpeg, format="JPEG")
    outputs = {"3": {"images": [{"filename": name, "subfolder": "", "type": "output"} for name in ("shot", "a.png")]}}
    files = collect_outputs(outputs, tab({}), PROMPT, lambda *_: jpeg.getvalue(), tmp_path)
    assert [f.path.name for f in files] == ["3_shot.jpeg", "3_a.png"]
