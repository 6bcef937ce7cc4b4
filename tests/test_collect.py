"""Collecting a history entry's outputs into a job folder, without a job or a server."""

from __future__ import annotations

from pathlib import Path

from comfyui_gradio.comfy.collect import collect_outputs
from comfyui_gradio.forms.schema import TabSpec, tab_from_schema
from comfyui_gradio.forms.workflow import Workflow

PROMPT = {"3": {"class_type": "SaveImage", "inputs": {}, "_meta": {"title": "Keep"}},
          "7": {"class_type": "PreviewAny", "inputs": {}}}


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
    outputs = {"3": {"images": [{"filename": "a.png", "type": "temp"}]}, "7": {"text": "hello"},
               "9": {"images": [{"filename": "b.png"}], "ui_only": [{"no": "filename"}]}}
    files = collect_outputs(outputs, tab({}), PROMPT, fake_download, tmp_path)
    assert [(f.node_id, f.output_name, f.kind, f.path.name, f.preview, f.text) for f in files] == [
        ("3", "Keep", "image", "3_a.png", True, None), ("7", "PreviewAny", "text", "7_text_0.txt", False, "hello"),
        ("9", "node 9", "image", "9_b.png", False, None)]
    assert files[0].path.read_bytes() == b"temp:/a.png" and files[2].path.read_bytes() == b"output:/b.png"
    named = collect_outputs(outputs, tab({"outputs": {"picture": {"node": "3"}}}), PROMPT, fake_download,
                            tmp_path / "named")
    assert [(f.output_name, f.node_id) for f in named] == [("picture", "3")]  # only the outputs it names


def test_a_file_already_in_the_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "3_a.png").write_bytes(b"earlier")
    outputs = {"3": {"images": [{"filename": "sub\\a.png"}]}, "a/b": {"text": ["one", "two"]}}
    files = collect_outputs(outputs, tab({}), PROMPT, fake_download, tmp_path)
    assert [f.path.name for f in files] == ["3_1_a.png", "a_b_text_0.txt", "a_b_text_1.txt"]
    assert (tmp_path / "3_a.png").read_bytes() == b"earlier" and files[2].path.read_text() == "two"
