"""The server's node catalogue (``GET /object_info``), read into the few answers the app needs.

A catalogue says, per node class, each input's type (``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``,
a COMBO list of choices, or a link type such as ``MODEL``) and its options (``min``, ``max``,
``step``, ``default``, ``multiline``, ``tooltip``, ``image_upload``, ``forceInput``,
``control_after_generate``) and the order of its inputs (``input_order``). ``Catalog`` is the one
reader of that body: the schema, the checks and the UI-format converter all ask it. The last
catalogue seen is cached on disk so that forms can still be built while the server is down.

Newer servers add keys to each class entry (``server.py`` ``node_info``): ``has_intermediate_output``
and ``dev_only`` are read (``has_intermediate_output``, ``is_dev_only``); ``search_aliases`` and
``essentials_category`` only order the editor's node search and are ignored, as is any key not named
here: a class is read from ``input``, ``input_order``, ``output_node`` and ``display_name`` alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .vocabulary import EDITOR_WIDGET_TYPES, OUTPUT_CLASSES, SEED_INPUTS, UPLOAD_OPTIONS, WIDGET_TYPES

__all__ = ["DYNAMIC_COMBO", "Catalog", "InputSpec", "load_cached", "save_cached"]

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"

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
        """A value typed on the node (INT, FLOAT, STRING, BOOLEAN, COMBO) rather than a link."""
        return self.type in WIDGET_TYPES

    @property
    def is_editor_widget(self) -> bool:
        """Whether the ComfyUI editor draws a widget for it (``vocabulary.EDITOR_WIDGET_TYPES``), so
        a UI save holds its value; ``force_input`` may still show it as a socket."""
        return self.type in EDITOR_WIDGET_TYPES

    @property
    def force_input(self) -> bool:
        """``forceInput``: a widget type the editor shows as a socket only."""
        return bool(self.options.get("forceInput"))

    @property
    def has_control(self) -> bool:
        """Whether the editor adds a "control after generate" widget after this one: the catalogue's
        ``control_after_generate``, else (older catalogues) an INT named like a seed."""
        return bool(self.options.get("control_after_generate", self.type == "INT" and self.name in SEED_INPUTS))

    @property
    def is_dynamic_combo(self) -> bool:
        """A V3 ``COMFY_DYNAMICCOMBO_V3``: a choice whose option brings its own inputs."""
        return self.type == DYNAMIC_COMBO

    def option_inputs(self, key: Any) -> list[InputSpec]:
        """The inputs option ``key`` of a dynamic combo brings, named ``<combo>.<input>``, required
        then optional (``{"options": [{"key", "inputs": {"required", "optional"}}]}``,
        ``comfy_api/latest/_io.py`` ``DynamicCombo``); [] for another key or input."""
        option = next((o for o in self.options.get("options") or [] if isinstance(o, dict) and o.get("key") == key),
                      None)
        inputs = (option or {}).get("inputs") or {}
        return [_input_spec(f"{self.name}.{name}", entry, part == "required")
                for part in ("required", "optional") for name, entry in (inputs.get(part) or {}).items()]

    @property
    def option_keys(self) -> tuple[Any, ...]:
        return tuple(o.get("key") for o in self.options.get("options") or [] if isinstance(o, dict))

    @property
    def is_upload(self) -> bool:
        """A file-upload combo such as LoadImage.image (``image_upload: true``)."""
        return bool(self.upload_kind)

    @property
    def upload_kind(self) -> str:
        """"image", "video" or "audio" for an upload input (``vocabulary.UPLOAD_OPTIONS``), else ""."""
        return next((kind for option, kind in UPLOAD_OPTIONS.items() if self.options.get(option)), "")


class Catalog:
    """Read-only view of an ``/object_info`` body: the one reader of its class entries."""

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

    def has_intermediate_output(self, class_type: str) -> bool:
        """Whether the class shows UI output while the graph runs without being an output node
        (``HAS_INTERMEDIATE_OUTPUT``, newer servers; False where the catalogue does not say)."""
        return (self.raw.get(class_type) or {}).get("has_intermediate_output") is True

    def is_dev_only(self, class_type: str) -> bool:
        """Whether the server lists the class for developers only (``DEV_ONLY``, newer servers)."""
        return (self.raw.get(class_type) or {}).get("dev_only") is True

    def inputs(self, class_type: str) -> dict[str, InputSpec]:
        """Every input of the class, required then optional, each part in the catalogue's
        ``input_order`` (names it does not list follow in declaration order); {} if unknown."""
        if class_type not in self._inputs:
            info = self.raw.get(class_type) or {}
            self._inputs[class_type] = {spec.name: spec for part in ("required", "optional")
                                        for spec in _section(info, part)}
        return self._inputs[class_type]

    def input(self, class_type: str, name: str) -> InputSpec | None:
        return self.inputs(class_type).get(name)


def _section(info: dict[str, Any], part: str) -> list[InputSpec]:
    """The inputs of one part (``required``/``optional``) of a class entry, in ``input_order``."""
    entries = (info.get("input") or {}).get(part) or {}
    listed = [name for name in (info.get("input_order") or {}).get(part) or [] if name in entries]
    names = dict.fromkeys(listed + list(entries))
    return [_input_spec(name, entries[name], part == "required") for name in names]


def _input_spec(name: str, entry: Any, required: bool) -> InputSpec:
    """``["INT", {...}]``, ``[["a", "b"], {...}]`` (a COMBO) or ``["COMBO", {"options": [...]}]``."""
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
