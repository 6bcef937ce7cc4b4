"""Title markers: a workflow's form written into its node titles, the ComfyKit / Pixelle-MCP way.

A node title is split on commas; every part that starts with ``$`` is a marker, other parts are
display text. The grammar (a superset of both tools' grammars)::

    marker  := "$" ["~"] NAME ["." ["~"] INPUT] ["!"] [":" DESCRIPTION]
    output  := "$output." NAME [":" LABEL]

- ``NAME`` is the parameter name (a Python identifier: it is the API parameter name);
- ``INPUT`` is the node input it sets; without it, the input called ``NAME`` (ComfyKit's rule), else
  for ``~`` the node's upload input, else the node's first widget input with a literal value;
- ``~`` (before the name or the input) makes it an image upload; ``!`` makes it required;
- ``DESCRIPTION`` is the help text under the field. It runs to the end of the part and, because
  descriptions contain commas (Pixelle's ``$width.width:Image width, default 512``), over the
  following parts up to the next one that starts with ``$``;
- ``$output.NAME`` names an output node's results (the description becomes its label).

Sources: ComfyKit ``comfykit/comfyui/workflow_parser.py`` (``parse_title``: comma-separated parts,
``parse_param_marker``: ``$[~]name[.[~]field][!][:description]``, description ignored) and
Pixelle-MCP ``mcp-server/comfyui/workflow_parser.py`` (``parse_dsl_title``:
``^\\$(\\w+)\\.(~)?(\\w+)(!)?(?::(.+))?$`` over the whole title, with a description).
Both read ``$output.NAME`` when a title starts with it.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, replace
from typing import Any

from .catalog import Catalog
from ..errors import ConfigError, Problem
from .vocabulary import SEED_INPUTS, UPLOAD_KINDS
from .workflow import Workflow, is_link

__all__ = ["Marker", "MarkerError", "has_markers", "markers_schema", "parse_marker", "parse_title",
           "required_params", "scan_title"]

_MARKER = re.compile(
    r"\$(?P<upload>~)?(?P<name>[^\s.!:~]*)(?:\.(?P<field_upload>~)?(?P<field>[^\s.!:~]*))?"
    r"(?P<required>!)?(?::(?P<description>.*))?",
    re.DOTALL,
)
_GRAMMAR_HINT = "write $name, $name.input, $~name (upload), $name! (required) or $name:description"


@dataclass(frozen=True)
class Marker:
    """One marker of a node title. ``field`` None means the node's main input (module docstring)."""

    name: str  # parameter name, or the output name when is_output
    field: str | None = None
    required: bool = False
    upload: bool = False
    description: str = ""
    is_output: bool = False
    text: str = ""  # the marker as written, for messages


class MarkerError(ValueError):
    """A marker that cannot be read; the message quotes it and says how to write it."""


def has_markers(title: str) -> bool:
    """True when some comma-separated part of ``title`` starts with ``$`` (good or bad marker)."""
    return any(part.startswith("$") for part in _parts(title))


def parse_title(title: str) -> list[Marker]:
    """Every marker of a node title, in order; raise ``MarkerError`` naming every bad one."""
    markers, errors = scan_title(title)
    if errors:
        raise MarkerError("; ".join(errors))
    return markers


def scan_title(title: str) -> tuple[list[Marker], list[str]]:
    """The good markers of ``title`` and one message per bad marker (never raises)."""
    markers: list[Marker] = []
    errors: list[str] = []
    described: Marker | None = None  # the last marker, while its description may continue
    for part in _parts(title):
        if not part.startswith("$"):
            if described is not None:
                described = replace(described, description=f"{described.description}, {part}")
                markers[-1] = described
            continue
        try:
            markers.append(parse_marker(part))
        except MarkerError as exc:
            errors.append(str(exc))
            described = None
            continue
        described = markers[-1] if markers[-1].description else None
    return markers, errors


def parse_marker(text: str) -> Marker:
    """One marker such as ``$~image!`` or ``$prompt.text:What to draw``; ``MarkerError`` if bad."""
    match = _MARKER.fullmatch(text.strip())
    if match is None:
        raise MarkerError(f"cannot read marker {text!r}; {_GRAMMAR_HINT}")
    name, field = match["name"], match["field"]
    description = (match["description"] or "").strip()
    if not name:
        raise MarkerError(f"marker {text!r} has no name after '$'; {_GRAMMAR_HINT}")
    if field == "":
        raise MarkerError(f"marker {text!r} has no input name after '.'; write ${name}.INPUT or ${name}")
    if name == "output":
        return _output_marker(text, match, description)
    _check_identifier(text, name)
    upload = bool(match["upload"] or match["field_upload"])
    return Marker(name, field, bool(match["required"]), upload, description, text=text)


def _output_marker(text: str, match: re.Match[str], description: str) -> Marker:
    if match["field"] is None:
        raise MarkerError(f"marker {text!r} needs the output's name: write $output.NAME")
    if match["upload"] or match["field_upload"] or match["required"]:
        raise MarkerError(f"output marker {text!r} takes no '~' or '!'; write $output.NAME")
    _check_identifier(text, match["field"])
    return Marker(match["field"], None, description=description, is_output=True, text=text)


def _check_identifier(text: str, name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise MarkerError(f"marker {text!r}: the name {name!r} must be a Python identifier (letters, "
                          "digits and _, not starting with a digit) because it is the parameter name in the API")


def _parts(title: str) -> list[str]:
    return [part.strip() for part in str(title or "").split(",") if part.strip()]


def _title(node: dict[str, Any]) -> str:
    return str((node.get("_meta") or {}).get("title") or "")


def required_params(workflow: Workflow) -> set[str]:
    """Names of the parameters marked ``!``: a run must not leave them empty. Bad markers are skipped."""
    return {
        marker.name
        for node in workflow.nodes.values()
        for marker in scan_title(_title(node))[0]
        if marker.required and not marker.is_output
    }


def markers_schema(workflow: Workflow, catalog: Catalog | None) -> dict[str, Any] | None:
    """The schema dict (``title``, ``inputs``, ``outputs``) the title markers describe.

    None when no title carries a marker. Inputs follow the nodes' order in the file, then the
    markers' order in a title; a name marked on several nodes with the same input feeds all of
    them. Raises ``ConfigError`` listing every bad marker as ``title of node 'ID'`` problems.
    """
    marked = [node_id for node_id, node in workflow.nodes.items() if has_markers(_title(node))]
    if not marked:
        return None
    builder = _SchemaBuilder(workflow, catalog)
    for node_id in marked:
        builder.add_node(node_id)
    if builder.problems:
        raise ConfigError(builder.problems)
    title = workflow.name.replace("_", " ").replace("-", " ").capitalize()
    return {"title": title, "inputs": builder.inputs, "outputs": builder.outputs}


class _SchemaBuilder:
    """Turns the markers of one node after another into schema entries, collecting problems."""

    def __init__(self, workflow: Workflow, catalog: Catalog | None) -> None:
        self.workflow = workflow
        self.catalog = catalog
        self.inputs: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []
        self._set_by: dict[tuple[str, str], str] = {}  # (node_id, input) -> marker text

    def problem(self, node_id: str, reason: str) -> None:
        self.problems.append(Problem(str(self.workflow.path), f"title of node '{node_id}'", reason))

    def add_node(self, node_id: str) -> None:
        markers, errors = scan_title(_title(self.workflow.nodes[node_id]))
        for error in errors:
            self.problem(node_id, error)
        for marker in markers:
            if marker.is_output:
                self._add_output(node_id, marker)
            else:
                self._add_input(node_id, marker)

    def _add_output(self, node_id: str, marker: Marker) -> None:
        if marker.name in self.outputs:
            other = self.outputs[marker.name]["node"]
            self.problem(node_id, f"{marker.text!r}: the output name {marker.name!r} is already used by "
                                  f"node '{other}'; give each output its own name")
            return
        label = {"label": marker.description} if marker.description else {}
        self.outputs[marker.name] = {"node": node_id, **label}

    def _add_input(self, node_id: str, marker: Marker) -> None:
        input_name = self._input_for(node_id, marker)
        if input_name is None:
            return
        if (node_id, input_name) in self._set_by:
            self.problem(node_id, f"{marker.text!r}: input {input_name!r} is already set by "
                                  f"{self._set_by[node_id, input_name]!r}; mark each input once")
            return
        self._set_by[node_id, input_name] = marker.text
        if marker.name in self.inputs:
            self._merge(node_id, input_name, marker)
        else:
            self.inputs[marker.name] = self._entry(node_id, input_name, marker)

    def _merge(self, node_id: str, input_name: str, marker: Marker) -> None:
        """A name marked on several nodes feeds them all, provided it sets the same input."""
        entry = self.inputs[marker.name]
        if entry["input"] != input_name:
            first = entry["node"][0] if isinstance(entry["node"], list) else entry["node"]
            self.problem(node_id, f"{marker.text!r}: the name {marker.name!r} already sets input "
                                  f"{entry['input']!r} of node '{first}'; one name can feed several nodes "
                                  "only through inputs of the same name, so pick another name")
            return
        nodes = entry["node"] if isinstance(entry["node"], list) else [entry["node"]]
        entry["node"] = [*nodes, node_id]
        if marker.required:
            entry["required"] = True
        if marker.description and "info" not in entry:
            entry["info"] = marker.description

    def _entry(self, node_id: str, input_name: str, marker: Marker) -> dict[str, Any]:
        entry: dict[str, Any] = {"node": node_id, "input": input_name}
        if marker.description:
            entry["info"] = marker.description
        if marker.upload:
            entry["widget"] = "image"
        if marker.required:
            entry["required"] = True
        if self._is_seed(node_id, input_name):
            entry["randomize"] = True
        return entry

    def _is_seed(self, node_id: str, input_name: str) -> bool:
        if input_name in SEED_INPUTS:
            return True
        class_type = self.workflow.nodes[node_id]["class_type"]
        spec = self.catalog.input(class_type, input_name) if self.catalog else None
        return bool(spec and spec.type == "INT" and spec.has_control)

    def _input_for(self, node_id: str, marker: Marker) -> str | None:
        """The input a marker sets, checked: it exists and holds a literal, not a link."""
        node = self.workflow.nodes[node_id]
        input_name = marker.field or self._main_input(node, marker)
        if input_name is None:
            self.problem(node_id, f"{marker.text!r}: {node['class_type']} has no widget input to set; "
                                  f"write ${marker.name}.INPUT naming one{_inputs_hint(node)}")
            return None
        if not self._has_input(node, input_name):
            self.problem(node_id, f"{marker.text!r}: {node['class_type']} has no input {input_name!r}"
                                  f"{_inputs_hint(node)}")
            return None
        if is_link(node["inputs"].get(input_name)):
            source = node["inputs"][input_name][0]
            self.problem(node_id, f"{marker.text!r}: input {input_name!r} is connected to node '{source}'; "
                                  "only widget values can be set from the form, so mark a widget input")
            return None
        return input_name

    def _has_input(self, node: dict[str, Any], input_name: str) -> bool:
        return input_name in node["inputs"] or (
            self.catalog is not None and self.catalog.input(node["class_type"], input_name) is not None)

    def _main_input(self, node: dict[str, Any], marker: Marker) -> str | None:
        """ComfyKit's rule (the input called like the marker), else an upload input for ``~``, else
        the first widget input holding a literal value, in the catalogue's order when known."""
        if self._has_input(node, marker.name):
            return marker.name
        candidates = self._literal_widgets(node)
        if marker.upload:
            uploads = [name for name in candidates if self._is_upload(node, name)]
            candidates = uploads or candidates
        return candidates[0] if candidates else None

    def _literal_widgets(self, node: dict[str, Any]) -> list[str]:
        values = node["inputs"]
        if self.catalog is None or not self.catalog.has_class(node["class_type"]):
            return [n for n, v in values.items() if not is_link(v) and not isinstance(v, (dict, list))]
        specs = self.catalog.inputs(node["class_type"])
        return [n for n, spec in specs.items() if spec.is_widget and n in values and not is_link(values[n])]

    def _is_upload(self, node: dict[str, Any], input_name: str) -> bool:
        spec = self.catalog.input(node["class_type"], input_name) if self.catalog else None
        return spec.is_upload if spec else input_name in UPLOAD_KINDS


def _inputs_hint(node: dict[str, Any]) -> str:
    names = [name for name, value in node["inputs"].items() if not is_link(value)]
    return f" (its widget inputs: {', '.join(names)})" if names else ""
