"""The server's node catalogue (``GET /object_info``), read into the few answers the app needs.

A catalogue says, per node class, each input's type (``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``,
a COMBO list of choices, or a link type such as ``MODEL``) and its options (``min``, ``max``,
``step``, ``default``, ``multiline``, ``tooltip``, ``image_upload``). The last catalogue seen is
cached on disk so that forms can still be built while the server is down.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .vocabulary import OUTPUT_CLASSES, UPLOAD_KINDS, WIDGET_TYPES

__all__ = ["Catalog", "InputSpec", "load_cached", "save_cached"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class InputSpec:
    """One input of a node class as the catalogue describes it."""

    name: str
    type: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, or a link type (MODEL, IMAGE, ...)
    options: dict[str, Any]
    choices: tuple[Any, ...] = ()
    required: bool = True

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES

    @property
    def is_upload(self) -> bool:
        """A file-upload combo such as LoadImage.image (``image_upload: true``)."""
        return bool(self.upload_kind)

    @property
    def upload_kind(self) -> str:
        """"image", "video" or "audio" for an upload input, else ""."""
        for kind in UPLOAD_KINDS:
            if self.options.get(f"{kind}_upload"):
                return kind
        return ""


class Catalog:
    """Read-only view of an ``/object_info`` body."""

    def __init__(self, object_info: dict[str, Any], *, stale: bool = False) -> None:
        self.raw = object_info
        self.stale = stale  # True when read from the on-disk cache rather than a live server
        self._inputs: dict[str, dict[str, InputSpec]] = {}  # parsed once per class

    def has_class(self, class_type: str) -> bool:
        return class_type in self.raw

    def display_name(self, class_type: str) -> str:
        return str(self.raw.get(class_type, {}).get("display_name") or class_type)

    def is_output_node(self, class_type: str) -> bool:
        info = self.raw.get(class_type)
        return bool(info.get("output_node")) if info else class_type in OUTPUT_CLASSES

    def inputs(self, class_type: str) -> dict[str, InputSpec]:
        """Every input of the class in catalogue order (required first), or {} if unknown."""
        if class_type not in self._inputs:
            sections = self.raw.get(class_type, {}).get("input", {})
            self._inputs[class_type] = {
                name: _input_spec(name, entry, section == "required")
                for section in ("required", "optional") for name, entry in (sections.get(section) or {}).items()}
        return self._inputs[class_type]

    def input(self, class_type: str, name: str) -> InputSpec | None:
        return self.inputs(class_type).get(name)


def _input_spec(name: str, entry: Any, required: bool) -> InputSpec:
    kind = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
    options = entry[1] if isinstance(entry, (list, tuple)) and len(entry) > 1 else {}
    options = options if isinstance(options, dict) else {}
    if isinstance(kind, (list, tuple)):
        return InputSpec(name, "COMBO", options, tuple(kind), required)
    if kind == "COMBO":  # the newer form: ["COMBO", {"options": [...]}]
        return InputSpec(name, "COMBO", options, tuple(options.get("options", ())), required)
    return InputSpec(name, str(kind), options, (), required)


def is_output_class(catalog: Catalog | None, class_type: str) -> bool:
    return catalog.is_output_node(class_type) if catalog else class_type in OUTPUT_CLASSES


def load_cached(path: Path) -> Catalog | None:
    """The catalogue saved by ``save_cached``, marked stale, or None if there is none."""
    try:
        return Catalog(json.loads(path.read_text(encoding="utf-8")), stale=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable node catalogue cache %s: %s", path, exc)
        return None


def save_cached(path: Path, catalog: Catalog) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(catalog.raw), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("Could not cache the node catalogue at %s: %s", path, exc)
