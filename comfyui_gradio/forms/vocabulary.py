"""The words of ComfyUI and of this app that several modules need: each is written here once.

Where a catalogue (``/object_info``) is at hand it is the authority; these lists are what is known
without one, or what the app itself adds.
"""

from __future__ import annotations

__all__ = [
    "EDITOR_WIDGET_TYPES", "ENDPOINT_EXTRAS", "FRONTEND_EXTRAS", "KIND_BY_WIDGET_TYPE", "OUTPUT_CLASSES",
    "OUTPUT_CLASSES_BY_KIND", "RANDOMIZE_SUFFIX", "RENUMBERS_SUBGRAPH_NODES", "SEED_INPUTS", "UPLOAD_BUTTON",
    "UPLOAD_CLASSES", "UPLOAD_KINDS", "UPLOAD_OPTIONS", "WIDGET_TYPES",
]  # fmt: skip

# Input names ComfyUI's frontend treats as seeds (it adds "control after generate" to them).
SEED_INPUTS = ("seed", "noise_seed")

# Kinds of file input, uploaded to the server before a run.
UPLOAD_KINDS = ("image", "video", "audio")
# Catalogue options that make a COMBO a file upload, by the kind of file it takes.
UPLOAD_OPTIONS = {**{f"{kind}_upload": kind for kind in UPLOAD_KINDS}, "animated_image_upload": "image"}
# The editor's button after an upload combo: a UI-only widget (older API exports carry it as an input).
UPLOAD_BUTTON = "upload"
# Loader inputs known without a catalogue: (class_type, input) -> upload kind.
UPLOAD_CLASSES = {("LoadImage", "image"): "image", ("LoadImageMask", "image"): "image",
                  ("LoadVideo", "file"): "video", ("LoadAudio", "audio"): "audio"}

# Catalogue input types that are widgets (values typed on the node) rather than links, with the kind
# of form field each becomes (schema.KINDS).
KIND_BY_WIDGET_TYPE = {"INT": "int", "FLOAT": "float", "STRING": "text", "BOOLEAN": "bool", "COMBO": "choice"}
WIDGET_TYPES = frozenset(KIND_BY_WIDGET_TYPE)
# Input types the ComfyUI editor draws as widgets on a node, so each holds a slot in a UI save's
# widgets_values: the widget types and the editor's own (a markdown note, a webcam, 3D viewers, RecordAudio's
# recorder).
EDITOR_WIDGET_TYPES = WIDGET_TYPES | {"MARKDOWN", "WEBCAM", "LOAD_3D", "LOAD_3D_ANIMATION", "AUDIO_RECORD"}

# Output node classes known without a catalogue (ComfyUI core + the common video nodes), by what they show.
OUTPUT_CLASSES_BY_KIND = {
    "image": ("SaveImage", "PreviewImage", "SaveImageWebsocket"),
    "video": ("SaveVideo", "SaveWEBM", "VHS_VideoCombine", "SaveAnimatedWEBP", "SaveAnimatedPNG"),
    "audio": ("SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio"),
    "text": ("PreviewAny",),
    "model3d": ("SaveGLB", "Preview3D", "Preview3DAnimation"),
    "latent": ("SaveLatent",),
}
OUTPUT_CLASSES = frozenset(c for classes in OUTPUT_CLASSES_BY_KIND.values() for c in classes)

# What the app adds to every tab's endpoint, so a schema may not use these names for its inputs:
# "runs" and "seed_mode" for repeated runs, and "<seed>_randomize" beside every seed.
ENDPOINT_EXTRAS = ("runs", "seed_mode")
RANDOMIZE_SUFFIX = "_randomize"

# Inputs the frontend's extensions add to nodes of some classes and send as they are, whatever the
# file saved, by the frontend version from which on it does so (each entry holds until the next):
# recorded with frontends 1.27.10 and 1.58.1 (tests/data/frontend-*/, test_frontend_agreement.py).
_AUDIO_UI = {"audioUI": ""}
FRONTEND_EXTRAS: dict[tuple[int, int], dict[str, dict[str, object]]] = {
    (1, 27): {"SaveGLB": {"image": ""}, "Preview3D": {"image": ""}, "PreviewAny": {"preview": ""},
              "LoadImageOutput": {"refresh": "refresh"}, "LoadAudio": _AUDIO_UI, "SaveAudio": _AUDIO_UI,
              "SaveAudioMP3": _AUDIO_UI, "SaveAudioOpus": _AUDIO_UI, "PreviewAudio": _AUDIO_UI},
    (1, 58): {"SaveGLB": {"image": ""}},
}
# The first recorded frontend that renumbers inner nodes whose ids collide on load (1.27.10 does not).
RENUMBERS_SUBGRAPH_NODES = (1, 58)
