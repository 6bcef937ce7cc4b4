"""The words of ComfyUI and of this app that several modules need: each is written here once.

Where a catalogue (``/object_info``) is at hand it is the authority; these lists are what is known
without one, or what the app itself adds.
"""

from __future__ import annotations

__all__ = [
    "ENDPOINT_EXTRAS", "OUTPUT_CLASSES", "OUTPUT_CLASSES_BY_KIND", "RANDOMIZE_SUFFIX", "SEED_INPUTS", "UPLOAD_CLASSES",
    "UPLOAD_KINDS", "WIDGET_TYPES",
]  # fmt: skip

# Input names ComfyUI's frontend treats as seeds (it adds "control after generate" to them).
SEED_INPUTS = ("seed", "noise_seed")

# Kinds of file input, uploaded to the server before a run; a catalogue marks them "<kind>_upload".
UPLOAD_KINDS = ("image", "video", "audio")
# Loader inputs known without a catalogue: (class_type, input) -> upload kind.
UPLOAD_CLASSES = {("LoadImage", "image"): "image", ("LoadImageMask", "image"): "image",
                  ("LoadVideo", "file"): "video", ("LoadAudio", "audio"): "audio"}

# Catalogue input types that are widgets (values typed on the node) rather than links.
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})

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
