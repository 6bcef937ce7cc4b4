"""App Mode: the form a person already chose in ComfyUI's app builder, read as a schema.

ComfyUI's frontend (1.41 and later) saves the app builder's choice in the workflow's
``extra.linearData`` (``extra.linearMode: true`` opens the file as the app)::

    {"inputs": [[widgetId, widgetName, {"height"?, "description"?}?], ...], "outputs": [nodeId, ...]}

Only widgets of nodes of the root graph can be picked, a subgraph instance's promoted widgets among
them. A widgetId is ``rootGraphId:nodeId:widgetName`` (the last two URI-encoded; a promoted widget
is named after the subgraph input), older files hold a plain node id, which may be the id of a node
inside a subgraph, or a node locator ``subgraphUuid:nodeId``. They are resolved as the frontend's
``appModeStore.upgradeAndValidateInput`` does (ComfyUI_frontend 1.58.1 ``src/stores/appModeStore.ts``,
``src/types/widgetId.ts``, ``src/utils/litegraphUtil.ts`` ``resolveNodeWidget``,
``src/core/graph/subgraph/resolveSubgraphInputTarget.ts``):

- a widgetId names the root node and the widget (its graph id is not compared once the node exists);
- a locator names an instance of the root graph and one of its promoted widgets;
- a plain id is a root node's widget of that name, else the one promoted widget of a root instance
  whose subgraph input feeds that inner node's widget (none or several: dropped).

Then each widget is followed to the node inputs ``convert.ui_to_api`` sends (ids ``"12:5"``): a promoted
widget to every inner widget its subgraph input feeds, to any depth; a frontend PrimitiveNode's
``value`` to the widgets it feeds. An entry that leads nowhere (a deleted, muted or bypassed node, a
widget driven by a link, a UI-only widget) is left out with a note, as the frontend drops it with a
console warning. Outputs are root node ids of output nodes; an id the frontend finds only inside a
subgraph (``resolveNode``) stands for that node in every instance, an instance for its output nodes.

The result is a plain schema dict (the shape of a ``NAME.yaml``), so ``python -m comfyui_gradio
schema`` prints it; the description becomes the field's help text (``info``); ``height`` is not used.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from .catalog import Catalog, InputSpec
from .convert import is_ui_format, linear_data
from .infer import infer_schema
from .markers import has_markers
from .subgraphs import INPUT_NODE_ID, subgraph_definitions
from .vocabulary import ENDPOINT_EXTRAS, RANDOMIZE_SUFFIX, SEED_INPUTS
from .workflow import MAX_WORKFLOW_BYTES, Workflow, is_link, read_capped

__all__ = ["AppMode", "app_mode", "form_schema", "read_app_mode"]

_WIDGET_ID = re.compile(r"^(?P<graph>[^:]+):(?P<node>[^:]+):(?P<name>[^:]+)$")
PRIMITIVE_CLASS = "PrimitiveNode"  # the frontend's; its one widget is called "value"
SKIPPED_MODES = {2: "muted", 4: "bypassed"}
# Widgets the editor adds that are never sent (see convert.py), so an App Mode entry naming one is left out.
UI_ONLY_WIDGETS: dict[str, Callable[[InputSpec], bool]] = {
    "upload": lambda spec: spec.is_upload,
    "control_after_generate": lambda spec: spec.has_control,
}


@dataclass(frozen=True)
class AppMode:
    """A workflow's App Mode form as schema entries, and a note for every saved entry left out."""

    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.inputs and not self.outputs


def read_app_mode(workflow: Workflow, catalog: Catalog | None,
                  max_bytes: int = MAX_WORKFLOW_BYTES) -> AppMode | None:
    """The App Mode form of a UI-format workflow file; None for an API-format file or one saved without it."""
    if workflow.source_format != "ui":
        return None
    ui = json.loads(read_capped(workflow.path, max_bytes, "max_workflow_bytes"))  # load_workflow read it already
    return app_mode(ui, workflow, catalog) if is_ui_format(ui) else None


def app_mode(ui: dict, workflow: Workflow, catalog: Catalog | None) -> AppMode | None:
    """The App Mode form saved in ``ui`` (the file), resolved against ``workflow`` (its conversion)."""
    data = linear_data(ui)
    if data is None or not (data["inputs"] or data["outputs"]):
        return None
    reader = _Reader(ui, workflow, catalog)
    for index, entry in enumerate(data["inputs"]):
        reader.add_input(index, entry)
    for entry in data["outputs"]:
        reader.add_output(entry)
    return AppMode(reader.inputs, reader.outputs, tuple(reader.notes))


def form_schema(workflow: Workflow, catalog: Catalog | None, app: AppMode | None) -> dict[str, Any]:
    """The schema of a workflow that has no YAML: App Mode first, then title markers, then a guess.

    App Mode inputs replace the marked or inferred ones and App Mode outputs the marked ones (or
    every output node); a part App Mode leaves empty falls back to markers, then to the defaults.
    """
    proposed = infer_schema(workflow, catalog)
    if app is None or app.empty:
        return proposed
    schema: dict[str, Any] = {"title": proposed["title"], "inputs": app.inputs or proposed["inputs"]}
    outputs = app.outputs or proposed.get("outputs")
    return {**schema, "outputs": outputs} if outputs else schema


class _Reader:
    """Resolves saved App Mode entries one by one into schema entries, noting what is left out."""

    def __init__(self, ui: dict, workflow: Workflow, catalog: Catalog | None) -> None:
        self.workflow = workflow
        self.catalog = catalog
        self.root = {str(n["id"]): n for n in ui.get("nodes") or [] if isinstance(n, dict) and "id" in n}
        self.definitions = subgraph_definitions(ui)
        self.links = dict(_root_links(ui))
        self.inputs: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self._taken: set[tuple[str, str]] = set()

    def note(self, what: str, reason: str) -> None:
        self.notes.append(f"App Mode {what} is left out of the form: {reason}.")

    # ---- inputs -------------------------------------------------------------------------------

    def add_input(self, index: int, entry: Any) -> None:
        if not isinstance(entry, list) or len(entry) < 2 or not isinstance(entry[1], str):
            self.note(f"input {index + 1}", f"{entry!r} is not a [widget id, widget name] pair")
            return
        config = entry[2] if len(entry) > 2 and isinstance(entry[2], dict) else {}
        found = self._widget(entry[0], entry[1])
        if isinstance(found, str):
            self.note(f"input {entry[1]!r}", found)
            return
        node_id, widget = found
        targets = self._targets(node_id, widget)
        if isinstance(targets, str):
            self.note(f"input {widget!r} of node {node_id}", targets)
            return
        self._add_param(node_id, widget, targets, str(config.get("description") or "").strip())

    def _widget(self, stored: Any, name: str) -> tuple[str, str] | str:
        """The root node and widget an entry names (module docstring), or why it names none."""
        text = str(stored)
        match = _WIDGET_ID.match(text) if isinstance(stored, str) else None
        if match:
            node_id = unquote(match["node"])
            if node_id not in self.root:
                return f"node {node_id} is not in the workflow"
            return node_id, unquote(match["name"])
        if isinstance(stored, str) and ":" in stored:
            local = stored.split(":")[-1]
            host = self.root.get(local)
            if host is not None and host.get("type") in self.definitions and name in self._promoted(host):
                return local, name
            return f"{stored!r} is not a subgraph instance of the root graph with a widget {name!r}"
        node = self.root.get(text)
        if node is not None and name in self._widget_names(node):
            return text, name
        matches = [(instance_id, input_name) for instance_id, node in self.root.items()
                   if node.get("type") in self.definitions
                   for input_name in self._promoted(node) if self._first_target(node, input_name) == (text, name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            return f"several subgraph instances show widget {name!r} of node {text}"
        return f"no node of the root graph shows a widget {name!r} of node {text}"

    def _widget_names(self, node: dict) -> list[str]:
        if node.get("type") == PRIMITIVE_CLASS:
            return ["value"]
        if node.get("type") in self.definitions:
            return self._promoted(node)
        api = self.workflow.nodes.get(str(node["id"]))
        specs = list(self.catalog.inputs(node["type"]).values()) if self.catalog else []
        ui_only = [name for name, present in UI_ONLY_WIDGETS.items() if any(present(spec) for spec in specs)]
        return [spec.name for spec in specs] + list((api or {}).get("inputs") or {}) + ui_only

    def _promoted(self, instance: dict) -> list[str]:
        """The names of an instance's promoted widgets: its subgraph inputs that feed an inner widget."""
        definition = self.definitions[instance["type"]]
        return [entry.get("name") for slot, entry in enumerate(definition.get("inputs") or [])
                if any(widget for _, widget in _fed(definition, slot, self.definitions))]

    def _first_target(self, instance: dict, input_name: str) -> tuple[str, str] | None:
        """``resolveSubgraphInputTarget``: the inner node (local id) and widget the input feeds first."""
        definition = self.definitions[instance["type"]]
        slot = _slot_of(definition, input_name)
        fed = _fed(definition, slot, self.definitions) if slot is not None else []
        return next(((str(node["id"]), widget) for node, widget in fed if widget), None)

    def _targets(self, node_id: str, widget: str) -> list[tuple[str, str]] | str:
        """The API node inputs the widget sets, or why it sets none."""
        node = self.root[node_id]
        if node.get("mode") in SKIPPED_MODES:
            return f"the node is {SKIPPED_MODES[node['mode']]}, so nothing of it is sent"
        if node.get("type") in self.definitions:
            candidates = self._through_instance(node, widget, f"{node_id}:")
        elif node.get("type") == PRIMITIVE_CLASS:
            candidates = self._primitive_targets(node) if widget == "value" else []
        else:
            candidates = [(node_id, widget)]
        if isinstance(candidates, str):
            return candidates
        return self._sent(candidates)

    def _through_instance(self, instance: dict, input_name: str, prefix: str) -> list[tuple[str, str]] | str:
        definition = self.definitions[instance["type"]]
        slot = _slot_of(definition, input_name)
        if slot is None:
            return f"its subgraph has no input {input_name!r}"
        own = next((i for i in instance.get("inputs") or [] if isinstance(i, dict) and i.get("name") == input_name), {})
        if own.get("link") is not None and prefix.count(":") == 1:
            return "the subgraph input is connected to another node, which sets its value"
        targets: list[tuple[str, str]] = []
        for inner, widget in _fed(definition, slot, self.definitions):
            inner_id = f"{prefix}{inner['id']}"
            if inner.get("type") in self.definitions:
                nested = self._through_instance(inner, widget or "", f"{inner_id}:")
                targets += [] if isinstance(nested, str) else nested
            elif widget:
                targets.append((inner_id, widget))
        return targets

    def _primitive_targets(self, primitive: dict) -> list[tuple[str, str]]:
        """The widgets a frontend PrimitiveNode writes its value into (``convert._primitive_values``)."""
        found = []
        for link_id in ((primitive.get("outputs") or [{}])[0] or {}).get("links") or []:
            target = self.links.get(link_id)
            node = self.root.get(target[0]) if target else None
            entries = (node or {}).get("inputs") or []
            entry = entries[target[1]] if node and target[1] < len(entries) else {}
            widget = (entry.get("widget") or {}).get("name") if isinstance(entry, dict) else None
            if node is not None and widget:
                found.append((str(node["id"]), widget))
        return found

    def _sent(self, candidates: list[tuple[str, str]]) -> list[tuple[str, str]] | str:
        """The candidates that are literal inputs of the prompt; else why none is."""
        sent = [(n, i) for n, i in candidates if n in self.workflow.nodes and i in self.workflow.nodes[n]["inputs"]]
        literal = [(n, i) for n, i in sent if not is_link(self.workflow.nodes[n]["inputs"][i])]
        if literal:
            return literal
        if sent:
            node_id, input_name = sent[0]
            source = self.workflow.nodes[node_id]["inputs"][input_name][0]
            return f"it is connected to node {source}, which sets its value"
        if candidates:
            return "the node input it sets is not sent to ComfyUI (a muted or bypassed node, or a UI-only widget)"
        return "it feeds no widget that is sent to ComfyUI"

    def _add_param(self, root_id: str, widget: str, targets: list[tuple[str, str]], description: str) -> None:
        targets = [t for t in targets if t not in self._taken]
        if not targets:
            self.note(f"input {widget!r} of node {root_id}", "an earlier App Mode input already sets it")
            return
        input_name = targets[0][1]
        others = [t for t in targets if t[1] != input_name]
        if others:
            where = ", ".join(f"{n}.{i}" for n, i in others)
            self.notes.append(f"App Mode input {widget!r} of node {root_id} also feeds {where}, which a field setting "
                              f"{input_name!r} cannot reach; those keep the workflow's value.")
        nodes = [n for n, i in targets if i == input_name]
        self._taken.update((n, input_name) for n in nodes)
        entry: dict[str, Any] = {"node": nodes[0] if len(nodes) == 1 else nodes, "input": input_name,
                                 "label": self._label(root_id, widget)}
        if description:
            entry["info"] = description
        if self._is_seed(nodes[0], input_name):
            entry["randomize"] = True
        self.inputs[_unique(_identifier(widget), root_id, self.inputs)] = entry

    def _label(self, root_id: str, widget: str) -> str:
        node = self.root[root_id]
        own = next((i for i in node.get("inputs") or [] if isinstance(i, dict) and i.get("name") == widget), {})
        text = str(own.get("label") or widget).replace("_", " ").replace(".", " ")
        label = text[:1].upper() + text[1:]
        if any(entry["label"] == label for entry in self.inputs.values()):
            return f"{label} ({self._node_title(root_id)})"
        return label

    def _node_title(self, root_id: str) -> str:
        node = self.root[root_id]
        definition = self.definitions.get(node.get("type"), {})
        return str(node.get("title") or definition.get("name") or
                   (self.catalog.display_name(node["type"]) if self.catalog else node.get("type")))

    def _is_seed(self, node_id: str, input_name: str) -> bool:
        if input_name in SEED_INPUTS:
            return True
        spec = self.catalog.input(self.workflow.nodes[node_id]["class_type"], input_name) if self.catalog else None
        return bool(spec and spec.type == "INT" and spec.has_control)

    # ---- outputs ------------------------------------------------------------------------------

    def add_output(self, stored: Any) -> None:
        node_id = str(stored)
        found = [n for n in self._output_nodes(node_id) if n not in {o["node"] for o in self.outputs.values()}]
        if not found and any(o["node"] in self._output_nodes(node_id) for o in self.outputs.values()):
            return  # saved twice
        if not found:
            reason = "no output node (SaveImage, PreviewImage, ...) of that id is sent to ComfyUI"
            self.note(f"output {node_id}", reason)
        for api_id in found:
            label = self.workflow.title(api_id, self.catalog)
            if has_markers(label):  # a title marker names it only where markers make the form
                class_type = self.workflow.nodes[api_id]["class_type"]
                label = self.catalog.display_name(class_type) if self.catalog else class_type
            self.outputs[_unique(_identifier(label.lower()), api_id, self.outputs)] = {"node": api_id, "label": label}

    def _output_nodes(self, node_id: str) -> list[str]:
        """The output nodes of the prompt an App Mode output id stands for (module docstring)."""
        is_output = self.workflow.output_node_ids(self.catalog)
        if node_id in self.workflow.nodes:
            return [node_id] if node_id in is_output else []
        if node_id in self.root:
            return [n for n in is_output if n.startswith(f"{node_id}:")]
        return [n for n in is_output if n.rsplit(":", 1)[-1] == node_id and ":" in n]


def _root_links(ui: dict) -> Any:
    """Root links by id: ``(target node id, target slot)``."""
    for raw in ui.get("links") or []:
        if isinstance(raw, dict):
            raw = [raw.get("id"), raw.get("origin_id"), raw.get("origin_slot"), raw.get("target_id"),
                   raw.get("target_slot")]
        if isinstance(raw, list) and len(raw) >= 5 and isinstance(raw[4], int):
            yield raw[0], (str(raw[3]), raw[4])


def _slot_of(definition: dict, input_name: str) -> int | None:
    names = [entry.get("name") for entry in definition.get("inputs") or []]
    return names.index(input_name) if input_name in names else None


def _fed(definition: dict, slot: int, subgraph_types: Any) -> list[tuple[dict, str | None]]:
    """The inner nodes subgraph input ``slot`` is linked to, each with the widget it feeds there (for
    an inner instance, ``subgraph_types``, the name of its input; a plain socket: None), in link order."""
    by_id = {str(n.get("id")): n for n in definition.get("nodes") or [] if isinstance(n, dict)}
    found = []
    for raw in definition.get("links") or []:
        link = raw if isinstance(raw, dict) else dict(zip(("id", "origin_id", "origin_slot", "target_id",
                                                           "target_slot"), raw if isinstance(raw, list) else []))
        node = by_id.get(str(link.get("target_id")))
        if link.get("origin_id") != INPUT_NODE_ID or link.get("origin_slot") != slot or node is None:
            continue
        inputs = node.get("inputs") or []
        target_slot = link.get("target_slot")
        entry = inputs[target_slot] if isinstance(target_slot, int) and 0 <= target_slot < len(inputs) else {}
        widget = (entry.get("widget") or {}).get("name")
        found.append((node, entry.get("name") if node.get("type") in subgraph_types else widget))
    return found


def _identifier(text: str) -> str:
    """A parameter name made from a widget name or a title: ``model.resolution`` -> ``model_resolution``."""
    name = re.sub(r"\W+", "_", text).strip("_") or "input"
    if name[0].isdigit() or keyword.iskeyword(name) or name in ENDPOINT_EXTRAS or name.endswith(RANDOMIZE_SUFFIX):
        name = f"input_{name}"
    return name


def _unique(name: str, node_id: str, taken: dict[str, Any]) -> str:
    """``name``, else ``name_<node id>`` (``12:5`` -> ``12_5``), else with a counter."""
    if name not in taken:
        return name
    slug = re.sub(r"\W", "_", node_id)
    candidate, count = f"{name}_{slug}", 2
    while candidate in taken:
        candidate, count = f"{name}_{slug}_{count}", count + 1
    return candidate
