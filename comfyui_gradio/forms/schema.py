"""Workflow schemas: the small YAML beside a workflow that turns it into a form.

``build_tab(path, catalog)`` reads ``workflows/NAME.json`` and its optional ``NAME.yaml``, checks
the whole schema against the workflow (and the server's catalogue when there is one) and returns
a ``TabSpec``: a pure description of the tab that the UI renders and the client runs. Every
problem is collected and reported together as ``ConfigError`` with file, key and reason::

    workflows/txt2img.yaml: inputs.steps: node '3' has no input 'stepz'

Without a YAML, the form saved in ComfyUI's App Mode is the schema (``appmode``), else the title
markers, else ``infer.infer_schema`` proposes one (see README, "App Mode" and "Workflows without a
schema"); ``appmode.form_schema`` holds that order.
"""

from __future__ import annotations

import hashlib
import keyword
import operator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from .catalog import Catalog, InputSpec
from ..errors import ConfigError, Problem
from .appmode import form_schema, read_app_mode
from .vocabulary import (ENDPOINT_EXTRAS, KIND_BY_WIDGET_TYPE, RANDOMIZE_SUFFIX, SEED_INPUTS, UPLOAD_CLASSES,
                         UPLOAD_KINDS)
from .workflow import MAX_WORKFLOW_BYTES, Workflow, find_node, is_link, load_workflow, read_capped

__all__ = ["KINDS", "MAX_SCHEMA_BYTES", "Output", "Param", "TabSpec", "build_tab", "schema_path", "tab_from_schema"]

TOP_KEYS = ("title", "description", "order", "inputs", "outputs")
INPUT_KEYS = ("node", "input", "label", "info", "lines", "minimum", "maximum", "step", "choices",
              "default", "randomize", "advanced", "required", "widget")  # fmt: skip
OUTPUT_KEYS = ("node", "label")
KINDS = ("text", "int", "float", "bool", "choice", *UPLOAD_KINDS)
DEFAULT_ORDER = 100  # the order of a tab whose schema gives none
WIDGETS = ("textbox", "number", "slider", "dropdown", "checkbox", *UPLOAD_KINDS)  # a schema's ``widget:``
# The kind a ``widget:`` fixes; "number" and "slider" keep the kind the catalogue or the value gives.
KIND_BY_WIDGET = {"textbox": "text", "dropdown": "choice", "checkbox": "bool", **{k: k for k in UPLOAD_KINDS}}
MAX_SCHEMA_BYTES = 256 * 2**10  # a schema of 50 inputs is about 5 KiB
MAX_ALIAS_EXPANSION = 10_000  # values YAML aliases (``*name``) may add to a schema beyond those written out


@dataclass(frozen=True)
class Param:
    """One form field / API parameter, feeding one or more node inputs."""

    name: str
    targets: tuple[tuple[str, str], ...]  # (node_id, input_name)
    kind: str  # one of KINDS
    label: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    lines: int = 1
    choices: tuple[Any, ...] = ()
    strict_choices: bool = False  # True when the schema lists the choices; the server's list may be stale
    randomize: bool = False
    advanced: bool = False
    required: bool = False  # a run needs a value from the caller (an upload, a non-empty text)
    info: str = ""
    widget: str = ""  # rendering override; "" = chosen from kind and bounds
    # A DynamicCombo (COMFY_DYNAMICCOMBO_V3): each option key with the inputs it brings (``combo.input``) and
    # their defaults (None for a socket); ``prepare`` keeps only the chosen option's inputs in the prompt.
    options: tuple[tuple[Any, tuple[tuple[str, Any], ...]], ...] = ()
    # An input an option brings: (the combo's input name, the option keys that bring it); sent only then.
    option_of: tuple[str, tuple[Any, ...]] | None = None

    @property
    def is_upload(self) -> bool:
        return self.kind in UPLOAD_KINDS

    @property
    def is_seed(self) -> bool:
        return self.kind == "int" and (self.randomize or self.targets[0][1] in SEED_INPUTS)


@dataclass(frozen=True)
class Output:
    name: str
    node_id: str
    label: str


@dataclass(frozen=True)
class TabSpec:
    """Everything needed to render and run one workflow tab."""

    name: str
    title: str
    description: str
    workflow: Workflow
    params: tuple[Param, ...]
    outputs: tuple[Output, ...]  # empty = every output node of the workflow
    schema_file: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # non-fatal remarks shown on the tab
    order: int = DEFAULT_ORDER  # tabs are shown by order, then by name
    versions: dict[str, str | None] = field(default_factory=dict)  # sha256 prefixes of the files it was built from

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def schema_path(workflow_path: Path) -> Path | None:
    for suffix in (".yaml", ".yml"):
        candidate = workflow_path.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def build_tab(
    workflow_path: Path,
    catalog: Catalog | None = None,
    *,
    max_workflow_bytes: int = MAX_WORKFLOW_BYTES,
    max_schema_bytes: int = MAX_SCHEMA_BYTES,
) -> TabSpec:
    """Read a workflow and its schema (or its markers, or an inferred form), each refused unread
    above its size cap; raise ``ConfigError`` listing every problem found. ``loader.load_tab`` adds
    the checks and limits."""
    workflow = load_workflow(workflow_path, catalog, max_bytes=max_workflow_bytes)
    yaml_path = schema_path(workflow_path)
    app = None if yaml_path else read_app_mode(workflow, catalog, max_workflow_bytes)
    raw = form_schema(workflow, catalog, app) if yaml_path is None else _read_yaml(yaml_path, max_schema_bytes)
    tab = tab_from_schema(workflow, raw, catalog, yaml_path)
    return replace(tab, versions={"workflow_sha256": _file_hash(workflow_path), "schema_sha256": _file_hash(yaml_path)},
                   notes=app.notes if app else ())


def _file_hash(path: Path | None) -> str | None:
    """The first 16 hex digits of the file's sha256 (the version of a workflow or schema)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else None
    except OSError:
        return None


def tab_from_schema(
    workflow: Workflow, raw: dict[str, Any], catalog: Catalog | None, yaml_path: Path | None = None
) -> TabSpec:
    """Check a parsed schema against its workflow; raise ``ConfigError`` listing every problem."""
    checker = _SchemaChecker(workflow, catalog, str(yaml_path or workflow.path))
    tab = checker.tab(raw, yaml_path)
    if checker.problems:
        raise ConfigError(checker.problems)
    return tab


def _read_yaml(path: Path, max_bytes: int = MAX_SCHEMA_BYTES) -> dict[str, Any]:
    text = read_capped(path, max_bytes, "max_schema_bytes")
    try:
        raw = yaml.load(text, Loader=_SchemaLoader)  # noqa: S506 - a SafeLoader that also bounds aliases
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), "", f"is not valid YAML: {exc}")]) from exc
    except _AliasBomb as exc:
        raise ConfigError([Problem(str(path), "", str(exc))]) from exc
    except RecursionError as exc:
        raise ConfigError([Problem(str(path), "", "is nested too deeply to be a schema")]) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([Problem(str(path), "", "must be a mapping with keys " + ", ".join(TOP_KEYS))])
    return raw


class _AliasBomb(Exception):
    """YAML aliases that would multiply the document ("billion laughs")."""


class _SchemaLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses, before building anything, a document whose aliases expand it
    by more than ``MAX_ALIAS_EXPANSION`` values or refer to themselves. PyYAML shares an aliased
    node, so the bomb would only go off later, when the schema is walked."""

    def construct_document(self, node: yaml.Node) -> Any:
        written: set[int] = set()
        expanded = _expanded_size(node, {}, set(), written)
        if expanded - len(written) > MAX_ALIAS_EXPANSION:
            raise _AliasBomb(f"uses YAML aliases (*name) that expand it by more than {MAX_ALIAS_EXPANSION} "
                             "values; write the settings out instead of repeating anchors")
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], written: set[int]) -> int:
    """How many nodes ``node`` stands for once every alias is copied out (memoised by node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _AliasBomb("uses a YAML alias (*name) inside its own anchor (&name); write the settings out")
    open_nodes.add(key)
    written.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else ()
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    sizes[key] = 1 + sum(_expanded_size(child, sizes, open_nodes, written) for child in children)
    open_nodes.discard(key)
    return sizes[key]


class _SchemaChecker:
    """Builds a TabSpec from a parsed YAML while collecting every problem."""

    def __init__(self, workflow: Workflow, catalog: Catalog | None, source: str) -> None:
        self.workflow = workflow
        self.catalog = catalog
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.source, key, reason))

    def tab(self, raw: dict[str, Any], yaml_path: Path | None) -> TabSpec:
        self._unknown_keys("", raw, TOP_KEYS)  # top-level keys have no prefix
        params = self._with_option_fields([p for p in self._params(raw.get("inputs") or {}) if p])
        outputs = tuple(o for o in self._outputs(raw.get("outputs") or {}) if o)
        if not self.workflow.output_node_ids(self.catalog) and not outputs:
            self.problem("", f"{self.workflow.path.name} has no output node (SaveImage, PreviewImage, ...)")
        return TabSpec(
            name=self.workflow.name,
            title=str(raw.get("title") or self.workflow.name),
            description=str(raw.get("description") or ""),
            workflow=self.workflow,
            params=params,
            outputs=outputs,
            schema_file=yaml_path,
            order=self._order(raw.get("order", DEFAULT_ORDER)),
        )

    def _order(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.problem("order", f"must be a whole number (tabs are sorted by it), not {value!r}")
        return DEFAULT_ORDER

    def _unknown_keys(self, prefix: str, raw: dict[str, Any], allowed: tuple[str, ...]) -> None:
        """A problem at ``prefix + key`` for every key of ``raw`` not ``allowed``."""
        for name in raw:
            if name not in allowed:
                self.problem(prefix + str(name), f"unknown key; allowed keys are: {', '.join(allowed)}")

    def _mapping(self, key: str, raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict):
            return raw
        self.problem(key, f"must be a mapping of names to settings, not {type(raw).__name__}")
        return {}

    def _params(self, raw: Any) -> list[Param | None]:
        return [self._param(str(name), entry) for name, entry in self._mapping("inputs", raw).items()]

    def _param(self, name: str, entry: Any) -> Param | None:
        key = f"inputs.{name}"
        if not name.isidentifier() or keyword.iskeyword(name):
            self.problem(key, "the name must be a Python identifier (letters, digits and _, not starting "
                              "with a digit) because it is the parameter name in the API")
            return None
        if name in ENDPOINT_EXTRAS or name.startswith("_") or name.endswith(RANDOMIZE_SUFFIX):
            self.problem(key, f"the name {name!r} is reserved by the app; choose another")
            return None
        if not isinstance(entry, dict):
            self.problem(key, "must be a mapping with at least 'node' and 'input'")
            return None
        count = len(self.problems)
        self._unknown_keys(f"{key}.", entry, INPUT_KEYS)
        self._setting_types(key, entry)
        targets = self._targets(key, entry)
        if len(self.problems) > count:
            return None
        return self._typed_param(key, name, entry, targets)

    def _with_option_fields(self, params: list[Param]) -> tuple[Param, ...]:
        """Each DynamicCombo field followed by a field for every widget its options bring that no field
        sets yet (``<combo field>_<input>``, typed from the catalogue), each sent only while its option is
        chosen (``Param.option_of``)."""
        taken = {target for param in params for target in param.targets}
        names = {param.name for param in params}
        result: list[Param] = []
        for param in params:
            result.append(param)
            node_id = param.targets[0][0]
            for sub_name, default in dict(pair for _, pairs in param.options for pair in pairs).items():
                if default is None or (node_id, sub_name) in taken:  # a socket, or a field of its own
                    continue
                taken.add((node_id, sub_name))
                name = f"{param.name}_{''.join(c if c.isalnum() else '_' for c in sub_name.split('.', 1)[1])}"
                while name in names:
                    name += "_"
                names.add(name)
                label = f"{param.label}: {sub_name.split('.', 1)[1].replace('_', ' ')}"
                entry = {"node": node_id, "input": sub_name, "label": label, "advanced": param.advanced}
                sub = self._typed_param(f"inputs.{param.name}", name, entry, [(node_id, sub_name)])
                result += [sub] if sub else []
        return tuple(result)

    def _setting_types(self, key: str, entry: dict[str, Any]) -> None:
        """Each setting of an input holds the type it needs (``SETTING_TYPES``)."""
        for setting, (valid, expected) in SETTING_TYPES.items():
            if setting in entry and not valid(entry[setting]):
                self.problem(f"{key}.{setting}", f"must be {expected}, not {entry[setting]!r}")

    def _targets(self, key: str, entry: dict[str, Any]) -> list[tuple[str, str]]:
        if "node" not in entry or "input" not in entry:
            missing = [k for k in ("node", "input") if k not in entry]
            self.problem(key, f"missing required key {' and '.join(repr(m) for m in missing)}")
            return []
        refs = entry["node"] if isinstance(entry["node"], list) else [entry["node"]]
        if not refs:
            self.problem(key, "'node' must name a node (an id, a title or a class), or a list of them")
        targets = [self._target(key, str(ref), str(entry["input"])) for ref in refs]
        return [target for target in targets if target]

    def _target(self, key: str, ref: str, input_name: str) -> tuple[str, str] | None:
        try:
            node_id = find_node(self.workflow, ref)
        except LookupError as exc:
            self.problem(key, str(exc))
            return None
        node = self.workflow.nodes[node_id]
        known = input_name in node["inputs"] or _input_spec(self.catalog, node, input_name) is not None
        if not known:
            self.problem(key, f"node {ref!r} has no input {input_name!r}{self._input_hint(node)}")
            return None
        if is_link(node["inputs"].get(input_name)):
            source = node["inputs"][input_name][0]
            self.problem(key, f"input {input_name!r} of node {ref!r} is connected to node {source!r}; "
                              "only widget values can be set from the form")
            return None
        return node_id, input_name

    def _input_hint(self, node: dict[str, Any]) -> str:
        names = [n for n, v in node["inputs"].items() if not is_link(v)]
        return f" (its inputs: {', '.join(names)})" if names else ""

    def _typed_param(self, key: str, name: str, entry: dict[str, Any], targets: list[tuple[str, str]]) -> Param | None:
        node_id, input_name = targets[0]
        node = self.workflow.nodes[node_id]
        spec = _input_spec(self.catalog, node, input_name)
        current = node["inputs"].get(input_name, spec.options.get("default") if spec else None)
        param = Param(
            name=name,
            targets=tuple(targets),
            kind=_kind(spec, current, entry, node["class_type"]),
            label=str(entry.get("label") or name.replace("_", " ").capitalize()),
            default=entry.get("default", current),
            lines=int(entry.get("lines") or (3 if spec and spec.options.get("multiline") else 1)),
            choices=tuple(entry.get("choices") or (spec.choices or spec.option_keys if spec else ())),
            strict_choices="choices" in entry,
            randomize=entry.get("randomize", False),
            advanced=entry.get("advanced", False),
            required=entry.get("required", False),
            info=str(entry.get("info") or (spec.options.get("tooltip", "") if spec else "")),
            widget=str(entry.get("widget") or ""),
            options=_option_table(spec) if spec and spec.is_dynamic_combo else (),
            option_of=_option_of(self.catalog, node, input_name),
        )
        param = self._bounds(key, param, entry, spec)
        self._check_param(key, param, explicit_choices="choices" in entry)
        return param

    def _bounds(self, key: str, param: Param, entry: dict[str, Any], spec: InputSpec | None) -> Param:
        if param.kind not in ("int", "float"):
            return param
        server = spec.options if spec else {}
        bounds = {b: entry.get(b, server.get(s)) for b, s in (("minimum", "min"), ("maximum", "max"), ("step", "step"))}
        limits = (("minimum", server.get("min"), operator.lt), ("maximum", server.get("max"), operator.gt))
        for bound, limit, beyond in limits:
            if bound in entry and limit is not None and beyond(entry[bound], limit):
                self.problem(key, f"{bound} {entry[bound]} is outside the server's range for this input "
                                  f"({server.get('min')} to {server.get('max')})")
        return replace(param, **bounds)

    def _check_param(self, key: str, param: Param, *, explicit_choices: bool) -> None:
        if param.randomize and param.kind != "int":
            self.problem(key, "randomize only applies to whole-number inputs such as a seed")
        default = param.default
        if _is_number(default):  # only numbers have bounds (``_bounds``)
            if param.minimum is not None and default < param.minimum:
                self.problem(key, f"default {default} is below the minimum {param.minimum}")
            if param.maximum is not None and default > param.maximum:
                self.problem(key, f"default {default} is above the maximum {param.maximum}")
        if explicit_choices and param.kind == "choice" and default not in param.choices:
            self.problem(key, f"default {default!r} is not one of the choices {list(param.choices)}")

    def _outputs(self, raw: Any) -> list[Output | None]:
        return [self._output(str(name), entry) for name, entry in self._mapping("outputs", raw).items()]

    def _output(self, name: str, entry: Any) -> Output | None:
        key = f"outputs.{name}"
        if not isinstance(entry, dict) or "node" not in entry:
            self.problem(key, "must be a mapping with a 'node' key")
            return None
        self._unknown_keys(f"{key}.", entry, OUTPUT_KEYS)
        try:
            node_id = find_node(self.workflow, str(entry["node"]))
        except LookupError as exc:
            self.problem(key, str(exc))
            return None
        class_type = self.workflow.nodes[node_id]["class_type"]
        if self.catalog and not self.catalog.is_output_node(class_type):
            self.problem(key, f"node {entry['node']!r} ({class_type}) is not an output node; "
                              "pick a SaveImage, PreviewImage or other output node")
            return None
        return Output(name, node_id, str(entry.get("label") or name.replace("_", " ").capitalize()))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# What each input setting must hold: (test, what to write instead); node and input are read as text.
SETTING_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "label": (lambda v: isinstance(v, str), "text"),
    "info": (lambda v: isinstance(v, str), "text"),
    "lines": (lambda v: _is_number(v) and v == int(v) and v >= 1, "a whole number of lines, 1 or more"),
    "minimum": (_is_number, "a number"),
    "maximum": (_is_number, "a number"),
    "step": (lambda v: _is_number(v) and v > 0, "a number above 0"),
    "choices": (lambda v: isinstance(v, list), "a list of choices"),
    "randomize": (lambda v: isinstance(v, bool), "true or false"),
    "advanced": (lambda v: isinstance(v, bool), "true or false"),
    "required": (lambda v: isinstance(v, bool), "true or false"),
    "widget": (lambda v: v in WIDGETS, "one of: " + ", ".join(WIDGETS)),
}


def _kind(spec: InputSpec | None, current: Any, entry: dict[str, Any], class_type: str) -> str:
    """The value kind of an input: from the schema's widget, else the catalogue, else the value."""
    widget = entry.get("widget")
    if widget in KIND_BY_WIDGET:
        return KIND_BY_WIDGET[widget]
    if spec is not None:
        if spec.is_upload:
            return spec.upload_kind
        if spec.is_dynamic_combo:
            return "choice"
        if spec.type in KIND_BY_WIDGET_TYPE:
            return KIND_BY_WIDGET_TYPE[spec.type]
    if entry.get("choices"):
        return "choice"
    if spec is None and (class_type, entry.get("input")) in UPLOAD_CLASSES:
        return UPLOAD_CLASSES[class_type, entry.get("input")]
    return _kind_of_value(current)


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "text"


# ---------------------------------------------------------------------------- DynamicCombo inputs


def _input_spec(catalog: Catalog | None, node: dict[str, Any], input_name: str) -> InputSpec | None:
    """The catalogue's input, also one a DynamicCombo option brings (``combo.input``: the node's chosen
    option's, else the first option's that has it)."""
    if catalog is None:
        return None
    spec = catalog.input(node["class_type"], input_name)
    combo = _combo(catalog, node, input_name)
    if spec is not None or combo is None:
        return spec
    keys = [node["inputs"].get(combo.name), *combo.option_keys]
    return next((s for key in keys for s in combo.option_inputs(key) if s.name == input_name), None)


def _combo(catalog: Catalog | None, node: dict[str, Any], input_name: str) -> InputSpec | None:
    """The DynamicCombo of the node that ``combo.input`` belongs to, else None."""
    combo_name, dot, _ = input_name.partition(".")
    spec = catalog.input(node["class_type"], combo_name) if catalog and dot else None
    return spec if spec is not None and spec.is_dynamic_combo else None


def _option_table(combo: InputSpec) -> tuple[tuple[Any, tuple[tuple[str, Any], ...]], ...]:
    return tuple((key, tuple((s.name, s.options.get("default", s.choices[0] if s.choices else None)
                              if s.is_editor_widget else None) for s in combo.option_inputs(key)))
                 for key in combo.option_keys)


def _option_of(catalog: Catalog | None, node: dict[str, Any], input_name: str) -> tuple[str, tuple[Any, ...]] | None:
    combo = _combo(catalog, node, input_name)
    if combo is None:
        return None
    keys = tuple(k for k in combo.option_keys if any(s.name == input_name for s in combo.option_inputs(k)))
    return combo.name, keys
