"""The one reader of /object_info: input order, options the converter and the schema ask about."""

from __future__ import annotations

from comfyui_gradio.forms.catalog import Catalog, InputSpec


def test_inputs_are_required_then_optional_each_in_input_order() -> None:
    catalog = Catalog({"N": {"input": {"required": {"b": ["INT", {}], "a": ["FLOAT", {}], "c": ["IMAGE"]},
                                       "optional": {"z": ["STRING", {}], "y": ["BOOLEAN", {}]}},
                             "input_order": {"required": ["a", "gone", "b"], "optional": ["y", "z"]}}})
    assert [(s.name, s.required) for s in catalog.inputs("N").values()] == [
        ("a", True), ("b", True), ("c", True), ("y", False), ("z", False)]  # unlisted "c" follows; "gone" is not one


def test_inputs_without_an_order_keep_the_declaration_order(catalog: Catalog) -> None:
    assert list(catalog.inputs("KSampler")) == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler",
                                                "positive", "negative", "latent_image", "denoise"]
    assert Catalog({}).inputs("Missing") == {} and Catalog({"N": {}}).inputs("N") == {}


def test_entries_in_every_form_are_read_into_one_spec() -> None:
    catalog = Catalog({"N": {"input": {"required": {
        "old_combo": [["a", "b"], {"default": "b"}], "new_combo": ["COMBO", {"options": ["x"]}],
        "bare": "INT", "odd": ["FLOAT", "not options"], "empty": []}}}})
    specs = catalog.inputs("N")
    assert specs["old_combo"] == InputSpec("old_combo", "COMBO", {"default": "b"}, ("a", "b"))
    assert specs["new_combo"] == InputSpec("new_combo", "COMBO", {"options": ["x"]}, ("x",))
    assert specs["bare"] == InputSpec("bare", "INT", {})
    assert specs["odd"] == InputSpec("odd", "FLOAT", {})
    assert specs["empty"] == InputSpec("empty", "COMBO", {})  # an empty list of choices


def test_widget_flags() -> None:
    def spec(kind: str, name: str = "x", **options: object) -> InputSpec:
        return InputSpec(name, kind, dict(options))

    assert spec("INT").is_widget and spec("COMBO").is_widget and not spec("MODEL").is_widget
    assert not spec("MARKDOWN").is_widget and spec("MARKDOWN").is_editor_widget
    assert spec("WEBCAM").is_editor_widget and spec("STRING").is_editor_widget and not spec("IMAGE").is_editor_widget
    assert spec("STRING", forceInput=True).force_input and not spec("STRING").force_input
    assert spec("INT", "seed").has_control and spec("INT", "noise_seed").has_control
    assert not spec("INT", "steps").has_control and spec("INT", "steps", control_after_generate=True).has_control
    assert not spec("INT", "seed", control_after_generate=False).has_control
    assert not spec("COMBO", "seed").has_control and spec("COMBO", control_after_generate=True).has_control


def test_upload_kinds_come_from_the_upload_options() -> None:
    kinds = [InputSpec("f", "COMBO", {option: True}).upload_kind
             for option in ("image_upload", "animated_image_upload", "video_upload", "audio_upload", "file_upload")]
    assert kinds == ["image", "image", "video", "audio", ""]
    assert not InputSpec("f", "COMBO", {"image_upload": False}).is_upload
    assert InputSpec("f", "COMBO", {"video_upload": True}).is_upload


def test_names_and_output_nodes(catalog: Catalog) -> None:
    assert catalog.display_name("CheckpointLoaderSimple") == "Load Checkpoint"
    assert catalog.display_name("NotAClass") == "NotAClass"
    assert catalog.is_output_node("SaveImage") and not catalog.is_output_node("VAEDecode")
    assert Catalog({}).is_output_node("PreviewImage") and not Catalog({}).is_output_node("VAEDecode")
