"""What a finished run gives back: local output files grouped by kind and by output name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["NO_OUTPUT", "OutputFile", "RunResult", "RunStatus", "kind_of"]

NO_OUTPUT = ("The workflow finished but produced no output. Check that it has an output node (Save Image, "
             "Preview Image, ...) connected to the rest, and that the outputs its schema names exist.")
"""The warning a ``RunResult`` without any output file carries (and the page shows instead of "Done")."""

_EXTENSIONS = {
    "image": {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"},
    "video": {".mp4", ".webm", ".mov", ".mkv", ".avi"},
    "audio": {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac"},
    "model3d": {".glb", ".gltf", ".obj", ".stl", ".ply"},
    "text": {".txt", ".json", ".md"},
}


def kind_of(filename: str, key: str = "") -> str:
    """The media kind of an output file, from its extension (``key`` is the history list name)."""
    suffix = Path(filename).suffix.lower()
    for kind, suffixes in _EXTENSIONS.items():
        if suffix in suffixes:
            return kind
    return {"audio": "audio", "gifs": "video", "video": "video", "3d": "model3d"}.get(key, "file")


RunStatus = Literal["success"]
"""A ``RunResult`` exists only for a run that succeeded; every other ending raises (see ``errors``)."""


@dataclass(frozen=True)
class OutputFile:
    """One output, downloaded to ``path``. ``preview`` marks PreviewImage-style temporary results."""

    path: Path
    kind: str  # image, video, audio, text, model3d or file
    node_id: str
    output_name: str  # the schema's output name, else the node's title
    preview: bool = False
    text: str | None = None  # the content, for text outputs


@dataclass
class RunResult:
    """A successful run. ``record`` holds what was sent, for reproducing the run."""

    prompt_id: str
    status: RunStatus
    duration: float  # seconds from submit to outputs on disk
    seeds: dict[str, int]
    values: dict[str, Any]
    outputs: list[OutputFile]
    server: str
    prompt: dict[str, Any] = field(repr=False, default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. NO_OUTPUT: a success that gave nothing back
    queued_for: float = 0.0  # seconds spent waiting in the server's queue

    def _of(self, kind: str) -> list[OutputFile]:
        return [o for o in self.outputs if o.kind == kind]

    @property
    def images(self) -> list[OutputFile]:
        return self._of("image")

    @property
    def videos(self) -> list[OutputFile]:
        return self._of("video")

    @property
    def audios(self) -> list[OutputFile]:
        return self._of("audio")

    @property
    def texts(self) -> list[str]:
        return [o.text or "" for o in self._of("text")]

    @property
    def models3d(self) -> list[OutputFile]:
        return self._of("model3d")

    @property
    def by_output(self) -> dict[str, list[OutputFile]]:
        """Every output file grouped by output name (like ComfyKit's ``images_by_var``)."""
        grouped: dict[str, list[OutputFile]] = {}
        for output in self.outputs:
            grouped.setdefault(output.output_name, []).append(output)
        return grouped

    @property
    def images_by_output(self) -> dict[str, list[Path]]:
        return {name: [o.path for o in files if o.kind == "image"] for name, files in self.by_output.items()
                if any(o.kind == "image" for o in files)}
