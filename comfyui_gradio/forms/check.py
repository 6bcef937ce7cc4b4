"""Checking workflows against the server's node catalogue before anyone presses Generate.

``check_workflow(path, catalog)`` returns every ``Finding`` about one workflow file (and its YAML):

- the file cannot be read or converted from UI format, or its schema or title markers are wrong
  (each ``ConfigError`` problem of ``load_workflow`` / ``build_tab`` becomes an error);
- a node class the server does not have (a custom node that is not installed);
- a model file the server does not list (a COMBO input whose value, or the form's default, is
  not among the server's choices, where the choices are file names: ``ckpt_name``, ``lora_name``...);
- any other value outside the server's choices or its ``min``/``max`` range;
- a required input that is missing, or a link to a node that is not in the workflow;
- an input the class does not define (a warning: ComfyUI ignores it).

Without a catalogue only the first group can be checked; ``check_folder`` says so in a warning.
Nothing here talks to a server: the caller brings the catalogue.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .catalog import Catalog, InputSpec
from .convert import is_ui_format
from ..errors import ConfigError, Problem
from .schema import TabSpec, build_tab
from .vocabulary import UPLOAD_BUTTON
from .workflow import MAX_WORKFLOW_BYTES, Workflow, is_link, load_workflow, read_capped

__all__ = ["Finding", "Report", "check_folder", "check_workflow", "node_findings", "tab_findings"]

Severity = Literal["error", "warning"]

# Input name -> folder under ComfyUI/models (ComfyUI's folder_paths); (class, input) first.
MODEL_FOLDERS_BY_CLASS = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("CheckpointLoader", "config_name"): "configs",
}
MODEL_FOLDERS = {
    "ckpt_name": "checkpoints", "lora_name": "loras", "vae_name": "vae", "unet_name": "diffusion_models",
    "clip_name": "text_encoders", "clip_name1": "text_encoders", "clip_name2": "text_encoders",
    "clip_name3": "text_encoders", "clip_name4": "text_encoders", "control_net_name": "controlnet",
    "style_model_name": "style_models", "gligen_name": "gligen", "hypernetwork_name": "hypernetworks",
    "photomaker_model_name": "photomaker", "upscale_model": "upscale_models", "config_name": "configs",
}  # fmt: skip
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx", ".yaml")
UI_ONLY_INPUTS = {UPLOAD_BUTTON}  # older API exports carry LoadImage's upload button as an input
_SHOWN_CHOICES = 5


@dataclass(frozen=True)
class Finding:
    """One thing wrong (``error``: a run will fail) or doubtful (``warning``) about a workflow."""

    severity: Severity
    workflow: str  # the workflow file checked
    where: str  # "nodes.4.inputs.ckpt_name", a schema key ("inputs.steps"), or "" for the whole file
    message: str  # what is wrong and what to do
    file: str = ""  # the file to edit when it is not the workflow itself (its YAML)
    summary: str = ""  # one short line for the tab ("needs model x.safetensors"), or ""

    def __str__(self) -> str:
        location = ": ".join(part for part in (self.file or self.workflow, self.where) if part)
        return f"{self.severity}: {location}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """The findings about a folder; ``checked`` counts the workflows that could be read at all."""

    findings: list[Finding]
    workflows: list[str]  # every workflow file looked at, in order
    checked: int

    @property
    def exit_code(self) -> int:
        """0 without errors (warnings allowed), 1 with errors, 2 when no workflow could be checked."""
        if self.checked == 0:
            return 2
        return 1 if any(f.severity == "error" for f in self.findings) else 0


def check_folder(path: Path, catalog: Catalog | None) -> Report:
    """Check every ``*.json`` workflow of a folder (or one workflow file).

    Raises ``ConfigError`` when ``path`` does not exist. Without a catalogue, or with a cached one,
    a first warning says what could not be checked.
    """
    paths = workflow_files(path)
    findings = _catalogue_findings(path, catalog)
    for workflow_path in paths:
        findings += check_workflow(workflow_path, catalog)
    checked = sum(1 for p in paths if catalog is not None or not _needs_catalog(p))
    return Report(findings, [str(p) for p in paths], checked)


def workflow_files(path: Path) -> list[Path]:
    """``path`` itself when it is a file, else the ``*.json`` files in it, sorted."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.glob("*.json"))
    raise ConfigError([Problem(str(path), "", "does not exist; give a workflows folder or a workflow file")])


def _catalogue_findings(path: Path, catalog: Catalog | None) -> list[Finding]:
    if catalog is None:
        return [Finding("warning", str(path), "", "no node catalogue: ComfyUI could not be reached and no "
                        "node list is cached, so node classes, model files and value ranges were not checked; "
                        "start ComfyUI (or pass --comfyui-url), or pass --catalog FILE with a saved "
                        "GET /object_info")]
    if catalog.stale:
        return [Finding("warning", str(path), "", "checked against the cached node list because ComfyUI "
                        "could not be reached; models or custom nodes may have changed since")]
    return []


def check_workflow(path: Path, catalog: Catalog | None) -> list[Finding]:
    """Every finding about one workflow file and its schema (module docstring); never raises
    ``ConfigError``: its problems become error findings."""
    source = str(path)
    if catalog is None and _needs_catalog(path):
        return [Finding("warning", source, "", "is a UI-format workflow, which cannot be read or checked "
                        "without the server's node list; start ComfyUI or pass --catalog FILE")]
    try:
        workflow = load_workflow(path, catalog)
    except ConfigError as exc:
        return _problem_findings(source, exc.problems)
    try:
        tab: TabSpec | None = build_tab(path, catalog)
        findings = [Finding("warning", source, "", note) for note in tab.notes]
    except ConfigError as exc:
        tab, findings = None, _problem_findings(source, exc.problems)
    return findings + (node_findings(workflow, catalog, tab) if catalog is not None else [])


def _needs_catalog(path: Path) -> bool:
    """A UI-format file: it can only be read with the server's node list."""
    try:
        return is_ui_format(json.loads(read_capped(path, MAX_WORKFLOW_BYTES, "max_workflow_bytes")))
    except (ConfigError, ValueError, RecursionError):  # load_workflow reports it
        return False


def _problem_findings(source: str, problems: list[Problem]) -> list[Finding]:
    return [Finding("error", source, p.key, p.reason, file=p.source if p.source != source else "")
            for p in problems]


def tab_findings(tab: TabSpec, catalog: Catalog | None) -> list[str]:
    """Short lines for a loaded tab, one per thing that will make a run fail on this server
    (``needs model v1-5-pruned-emaonly-fp16.safetensors``); [] without a catalogue."""
    if catalog is None:
        return []
    summaries = [f.summary for f in node_findings(tab.workflow, catalog, tab) if f.severity == "error"]
    return list(dict.fromkeys(s for s in summaries if s))


def node_findings(workflow: Workflow, catalog: Catalog, tab: TabSpec | None = None) -> list[Finding]:
    """Findings about the nodes against the catalogue; a form field's default stands for the
    node's value when ``tab`` is given (that is what a run sends unless the user changes it)."""
    defaults = _form_defaults(tab)
    findings: list[Finding] = []
    for node_id in workflow.nodes:
        findings += _NodeCheck(workflow, catalog, node_id, defaults).findings()
    return findings


def _form_defaults(tab: TabSpec | None) -> dict[tuple[str, str], Any]:
    if tab is None:
        return {}
    return {target: param.default for param in tab.params for target in param.targets}


class _NodeCheck:
    """The findings about one node of a workflow."""

    def __init__(self, workflow: Workflow, catalog: Catalog, node_id: str,
                 defaults: dict[tuple[str, str], Any]) -> None:
        self.workflow = workflow
        self.catalog = catalog
        self.node_id = node_id
        self.node = workflow.nodes[node_id]
        self.class_type = str(self.node["class_type"])
        self.defaults = defaults
        self.label = f"{self.class_type} '{workflow.title(node_id, catalog)}'"

    def finding(self, severity: Severity, input_name: str, message: str, summary: str = "") -> Finding:
        where = f"nodes.{self.node_id}" + (f".inputs.{input_name}" if input_name else "")
        return Finding(severity, str(self.workflow.path), where, message, summary=summary)

    def findings(self) -> list[Finding]:
        if not self.catalog.has_class(self.class_type):
            return [self._missing_class()]
        specs = self.catalog.inputs(self.class_type)
        found = [f for name, value in self.node["inputs"].items() for f in self._input(name, value, specs)]
        return found + self._missing_inputs(specs)

    def _missing_class(self) -> Finding:
        return self.finding(
            "error", "",
            f"node '{self.node_id}' ('{self.workflow.title(self.node_id)}') uses node class "
            f"'{self.class_type}', which this ComfyUI does not have; install the custom node that provides "
            "it (ComfyUI-Manager: Install Missing Custom Nodes) and restart ComfyUI",
            summary=f"needs custom node class {self.class_type}",
        )

    def _input(self, name: str, value: Any, specs: dict[str, InputSpec]) -> list[Finding]:
        spec = specs.get(name)
        if spec is None:
            return [] if name in UI_ONLY_INPUTS else [self._unknown_input(name, specs)]
        if is_link(value):
            return self._link(name, value)
        value = self.defaults.get((self.node_id, name), value)
        if spec.type == "COMBO":
            return self._choice(name, value, spec)
        if spec.type in ("INT", "FLOAT"):
            return self._range(name, value, spec)
        return []

    def _unknown_input(self, name: str, specs: dict[str, InputSpec]) -> Finding:
        return self.finding("warning", name, f"{self.label} has no input {name!r} on this server (its inputs: "
                            f"{', '.join(specs) or 'none'}); ComfyUI ignores it. Remove it, or update the "
                            f"custom node that provides {self.class_type}")

    def _link(self, name: str, value: list[Any]) -> list[Finding]:
        if value[0] in self.workflow.nodes:
            return []
        return [self.finding("error", name, f"input {name} of {self.label} is connected to node '{value[0]}', "
                             "which is not in the workflow; reconnect it in ComfyUI and export again")]

    def _missing_inputs(self, specs: dict[str, InputSpec]) -> list[Finding]:
        """Required inputs that are absent: ComfyUI refuses the node, and skips it if it is an output."""
        missing = [name for name, spec in specs.items() if spec.required and name not in self.node["inputs"]
                   and (self.node_id, name) not in self.defaults]
        if self.catalog.is_output_node(self.class_type):
            return [self.finding("warning", name, f"{self.label} misses its required input {name!r}, so ComfyUI "
                                 "skips this output; connect it in ComfyUI and export again") for name in missing]
        return [self.finding("error", name, f"{self.label} misses its required input {name!r}; connect or set "
                             "it in ComfyUI and export the workflow again") for name in missing]

    def _choice(self, name: str, value: Any, spec: InputSpec) -> list[Finding]:
        if not isinstance(value, (str, int, float)) or value in spec.choices:
            return []
        if spec.is_upload:
            if (self.node_id, name) in self.defaults:
                return []  # a form upload replaces it on every run
            return [self.finding("warning", name, f"{self.label} reads input file {value!r}, which is not in "
                                 "ComfyUI/input; upload it there, or make the input a form field")]
        if _is_model_input(self.class_type, name, spec):
            return [self._missing_model(name, value, spec)]
        return [self.finding("error", name, f"value {value!r} of input {name} ({self.label}) is not one of the "
                             f"server's choices ({_shown(spec.choices)}); pick one of them",
                             summary=f"{name} {value!r} is not available on the server")]

    def _missing_model(self, name: str, value: Any, spec: InputSpec) -> Finding:
        folder = MODEL_FOLDERS_BY_CLASS.get((self.class_type, name)) or MODEL_FOLDERS.get(name)
        place = f"ComfyUI/models/{folder}" if folder else f"the ComfyUI/models folder {self.class_type} reads"
        return self.finding("error", name, f"needs model {value} ({self.label}, input {name}); put it in "
                            f"{place} or pick another (this server has: {_shown(spec.choices)})",
                            summary=f"needs model {value}")

    def _range(self, name: str, value: Any, spec: InputSpec) -> list[Finding]:
        if not _is_number(value):
            return []
        low, high = spec.options.get("min"), spec.options.get("max")
        if _is_number(low) and value < low:
            return [self._out_of_range(name, value, "below", "minimum", low)]
        if _is_number(high) and value > high:
            return [self._out_of_range(name, value, "above", "maximum", high)]
        return []

    def _out_of_range(self, name: str, value: float, side: str, bound: str, limit: float) -> Finding:
        return self.finding("error", name, f"value {value} of input {name} ({self.label}) is {side} the server's "
                            f"{bound} {limit}; change it in the workflow or in the schema's default",
                            summary=f"{name} {value} is {side} the {bound} {limit}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_model_input(class_type: str, name: str, spec: InputSpec) -> bool:
    """Whether an input's choices are file names: a known model input, or choices that look like files."""
    known = (class_type, name) in MODEL_FOLDERS_BY_CLASS or name in MODEL_FOLDERS
    return known or any(str(choice).lower().endswith(MODEL_EXTENSIONS) for choice in spec.choices)


def _shown(choices: tuple[Any, ...]) -> str:
    if not choices:
        return "none"
    shown = ", ".join(str(c) for c in choices[:_SHOWN_CHOICES])
    return shown + (f" and {len(choices) - _SHOWN_CHOICES} more" if len(choices) > _SHOWN_CHOICES else "")
