"""Convert ComfyUI "UI format" workflows (what the editor's Save writes) into API format.

UI format::

    {"nodes": [{"id": 3, "type": "KSampler", "mode": 0, "title": "...",
                "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                           {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": null}],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
                "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1]}, ...],
     "links": [[link_id, from_node, from_slot, to_node, to_slot, "TYPE"], ...],
     "groups": [...], "extra": {...}, "version": 0.4}

API format (the body of ``POST /prompt``)::

    {"3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 156680208700286, ...},
           "_meta": {"title": "KSampler"}}}

What a node's class looks like comes from the server's catalogue, read by ``catalog.Catalog`` (the
one reader of ``/object_info``): its inputs in ``input_order``, required then optional, with their
options. The rules follow the ComfyUI frontend (``graphToPrompt`` in ``src/utils/executionUtil.ts``
and ``ExecutableNodeDTO.resolveInput/resolveOutput`` in litegraph):

- ``widgets_values`` is positional: entry *i* belongs to the node's *i*-th widget. Widgets are the
  class's inputs the editor draws as widgets (``vocabulary.EDITOR_WIDGET_TYPES``: INT, FLOAT, STRING,
  BOOLEAN, COMBO, and the editor's MARKDOWN, WEBCAM, LOAD_3D...), without ``forceInput`` ones (a file
  from a frontend that drew those as widgets holds a value for each, recognised by its length).
  UI-only widgets take a slot but are not sent: the control value after an INT with
  ``control_after_generate`` (or, in older catalogues, named like a seed: ``"fixed"``/``"increment"``/
  ``"decrement"``/``"randomize"``, ``true`` in old files; after any other INT a control word is
  skipped only where the next widget could not hold it), the control and filter after a COMBO with
  ``control_after_generate``, and the upload button (saved as ``"image"``) added after the required
  inputs of a node with an upload combo (``vocabulary.UPLOAD_OPTIONS``). A value that plainly is not
  a UI-only widget's (a file saved before the class had it) is not skipped. A dict ``widgets_values``
  maps by name. A widget with no saved value gets the class default (a COMBO its first choice, a
  multiselect ``[]``, others 0, ``""`` or false), and is left out when that is None. List values are
  sent as ``{"__value__": [...]}``.
- A linked input (``inputs[].link``) becomes ``[origin_id, origin_slot]``, overriding a widget value
  of the same name. Links are followed through Reroutes (and other pass-through virtual nodes) and
  through bypassed nodes (mode 4: output *n* continues from the input of the same slot if its type
  fits, else the first input of exactly the target's type, else the first compatible one), and from
  a KJNodes GetNode to the input of the SetNode saved with the same name; a link that ends nowhere
  (or is missing from ``links``, with a warning) leaves the input out.
- PrimitiveNode feeds its ``widgets_values[0]`` into the widget of every input it is linked to.
- Muted nodes (mode 2), bypassed nodes and UI-only nodes (Note, MarkdownNote, PrimitiveNode,
  Reroute, ...) are not sent, and inputs linked to a node that is not sent are removed.
- ``_meta.title`` is the node's own title, else the class's display name.
- Subgraphs (``definitions.subgraphs``, instances typed by UUID) are expanded first by
  ``subgraphs.flatten`` to any depth: inner nodes get path ids (``"12:5"``, ``"12:7:3"``), links run
  through the input (-10) and output (-20) nodes to what feeds or reads the instance, an unconnected
  promoted input takes the instance's saved value, muted and bypassed instances are not expanded
  (a bypassed one passes through by the subgraph's slots). Sources: ComfyUI_frontend 1.58
  ``src/utils/executionUtil.ts`` (``graphToPrompt``), ``src/lib/litegraph/src/subgraph/
  ExecutableNodeDTO.ts`` (``resolveInput``/``resolveOutput``/``#resolveSubgraphOutput``) and
  ``SubgraphNode.getInnerNodes``.
- V3 dynamic inputs (ComfyUI ``comfy_api/latest/_io.py``; the frontend's ``dynamicWidgets.ts``): a
  ``COMFY_DYNAMICCOMBO_V3`` is a combo of its option keys followed, in the widget list, by the
  widgets of the chosen option named ``<combo>.<input>`` (nested options too); ``COMFY_AUTOGROW_V3``
  inputs are sockets (their template is forced to input) saved as ``<input>.<name>``;
  ``COMFY_MATCHTYPE_V3`` inputs are sockets. RecordAudio's recorder (``AUDIO_RECORD``) is sent, ``""``
  when nothing was recorded.
- What differs by frontend version (``ui_to_api(..., frontend=)``, default 1.58.1), as recorded with
  1.27.10 and 1.58.1 (``tests/data/frontend-*``, ``test_frontend_agreement.py``): the inputs frontend
  extensions add and send (``vocabulary.FRONTEND_EXTRAS``: SaveGLB's ``image``; in 1.27 also
  ``audioUI``, ``preview``, ``refresh``), and whether inner node ids that collide are renumbered on
  load (1.58: ``deduplicateSubgraphNodeIds``; 1.27 keeps them).
- Refused with a ``ConfigError`` naming the node: a class the server does not have ("needs node X"),
  a saved input the server's class lacks or saved values that do not fit its widgets (a word in a
  number, a number in a choice: the file is from another version of the node, and the frontend
  would send them misplaced), a
  PrimitiveNode feeding a subgraph instance, legacy ``proxyWidgets`` of unfed inner widgets with
  saved values, a subgraph that contains itself, legacy group nodes.

Not modelled (the result can differ from the frontend's): dynamic prompts (``{a|b}`` and comments in
``dynamicPrompts`` text widgets are sent as written; the frontend resolves them at random when it
queues), PrimitiveNode "Run widget replace on values", and widgets added by frontend extensions
beyond the upload button (webcam capture, 3D viewers, curves).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, Problem
from .catalog import Catalog, InputSpec
from .subgraphs import SUBGRAPH_IO, flatten
from .vocabulary import FRONTEND_EXTRAS, RENUMBERS_SUBGRAPH_NODES

__all__ = ["is_ui_format", "linear_data", "ui_to_api"]

logger = logging.getLogger(__name__)

LATEST_FRONTEND = "1.58.1"  # the frontend whose prompt ui_to_api gives by default
MODE_NEVER = 2
MODE_BYPASS = 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
UPLOAD_BUTTON_VALUE = "image"  # what the editor saves for the upload button, whatever the file kind
# A widget's value without a default; the recorder of RecordAudio is sent empty until something is recorded.
WIDGET_FALLBACKS = {"INT": 0, "FLOAT": 0, "STRING": "", "BOOLEAN": False, "AUDIO_RECORD": ""}
PRIMITIVE_CLASS = "PrimitiveNode"
PASSTHROUGH_CLASSES = frozenset({"Reroute", "Reroute (rgthree)"})
UI_ONLY_CLASSES = frozenset(
    {
        "Note",
        "MarkdownNote",
        "Note Plus (mtb)",
        "Label (rgthree)",
        "Bookmark (rgthree)",
        "Fast Groups Muter (rgthree)",
        "Fast Groups Bypasser (rgthree)",
        "Fast Muter (rgthree)",
        "Fast Bypasser (rgthree)",
        "Fast Actions Button (rgthree)",
        "Mute / Bypass Repeater (rgthree)",
        "Node Collector (rgthree)",
    }
)
SET_CLASS = "SetNode"  # KJNodes: GetNode "name" reads what SetNode "name" was given
GET_CLASS = "GetNode"
VIRTUAL_CLASSES = UI_ONLY_CLASSES | PASSTHROUGH_CLASSES | {PRIMITIVE_CLASS, SET_CLASS, GET_CLASS, SUBGRAPH_IO}
# V3 inputs whose widgets the editor builds from the chosen option or the links made (comfy_api/latest/_io.py)
DYNAMIC_TYPES = ("COMFY_DYNAMICCOMBO_V3", "COMFY_AUTOGROW_V3")
EXPORT_HINT = "open the workflow in ComfyUI and save it with Export (API)"


@dataclass(frozen=True)
class _Link:
    origin: str
    origin_slot: int
    target: str  # the target slot is not needed: an input names its link


@dataclass(frozen=True)
class _Value:
    """What an input resolves to when it is a subgraph instance's promoted widget, not a link."""

    value: Any


_Origin = tuple[str, int] | _Value | None  # what a link delivers: an output, a promoted value, or nothing


@dataclass(frozen=True)
class _Graph:
    nodes: dict[str, dict[str, Any]]  # by str(node id), in file order
    links: dict[Any, _Link]  # by link id as written in the file
    catalog: Catalog
    extras: dict[str, dict[str, Any]]  # what the frontend's extensions send, by class (FRONTEND_EXTRAS)


@dataclass(frozen=True)
class _Slot:
    """One entry of a node's widget list: a widget that is sent (its ``spec``) or a UI-only extra."""

    kind: str = "widget"  # or "forced", "control", "filter", "upload", "maybe_control", "dynamic"
    spec: InputSpec | None = None  # the input of a "widget" or a "dynamic" combo


# ---------------------------------------------------------------------------- public API


def is_ui_format(data: object) -> bool:
    """True for an editor save (``{"nodes": [...], ...}``); False for API format or anything else."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def linear_data(workflow: dict) -> dict | None:
    """The App Mode form saved in ``extra.linearData`` as ``{"inputs": [...], "outputs": [...]}``.

    Entries are returned raw: inputs are ``[node_or_widget_id, widget_name, config?]`` lists and
    outputs are node ids, as the frontend's app builder stores them. None when there is none.
    """
    extra = workflow.get("extra") if isinstance(workflow, dict) else None
    data = extra.get("linearData") if isinstance(extra, dict) else None
    if not isinstance(data, dict):
        return None
    return {"inputs": list(data.get("inputs") or []), "outputs": list(data.get("outputs") or [])}


def ui_to_api(
    workflow: dict, catalog: Catalog, *, source: str = "<workflow>", frontend: str = LATEST_FRONTEND
) -> dict[str, dict]:
    """The API-format prompt ComfyUI's frontend (version ``frontend``) would queue for ``workflow``.

    ``catalog`` is the server's node catalogue: it gives each class's widgets, their order and
    defaults. Raises ``ConfigError`` listing every node that cannot be converted (unknown class,
    a saved input the class lacks, group node) and for malformed files; ``source`` names the file
    in its problems. The frontend version only decides which extension widgets are sent
    (``vocabulary.FRONTEND_EXTRAS``).
    """
    version = _version(frontend)
    graph = _index(workflow, catalog, source, version)
    problems = [p for node in graph.nodes.values() for p in _node_problems(node, workflow, graph, source)]
    if problems:
        raise ConfigError(problems)
    primitive_values = _primitive_values(graph, source)
    prompt = {
        node_id: _api_node(node, graph, primitive_values.get(node_id, {}), source)
        for node_id, node in graph.nodes.items()
        if _is_sent(node, graph)
    }
    _drop_dangling_links(prompt)
    return prompt


# ---------------------------------------------------------------------------- reading the file


def _version(frontend: str) -> tuple[int, int]:
    try:
        return int(frontend.split(".")[0]), int(frontend.split(".")[1])
    except (ValueError, IndexError) as exc:
        raise ValueError(f"frontend must be a version such as '1.58.1', not {frontend!r}") from exc


def _extras_of(version: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """``vocabulary.FRONTEND_EXTRAS`` of the newest recorded version at or before ``version``."""
    known = [v for v in FRONTEND_EXTRAS if v <= version]
    return FRONTEND_EXTRAS[max(known)] if known else {}


def _index(workflow: object, catalog: Catalog, source: str, version: tuple[int, int]) -> _Graph:
    """Nodes by string id and links by id; ConfigError if the file is not a UI-format workflow."""
    if not is_ui_format(workflow):
        reason = f"not a ComfyUI UI-format workflow (no 'nodes' list); {EXPORT_HINT}"
        raise ConfigError([Problem(source, "nodes", reason)])
    assert isinstance(workflow, dict)
    flat_nodes, flat_links = flatten(workflow, source, renumber=version >= RENUMBERS_SUBGRAPH_NODES)
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(flat_nodes):
        if not isinstance(node, dict) or "id" not in node or not isinstance(node.get("type"), str):
            reason = "a node must be an object with an 'id' and a 'type'"
            raise ConfigError([Problem(source, f"nodes[{index}]", reason)])
        nodes[str(node["id"])] = node
    links = dict(_parse_links(flat_links, source))
    return _Graph(nodes, links, catalog, _extras_of(version))


def _parse_links(raw_links: list, source: str) -> Iterator[tuple[Any, _Link]]:
    """Accept both ``[id, from, from_slot, to, to_slot, type]`` and the newer object form (the holes
    old files hold where links were deleted are gone: ``subgraphs.flatten`` drops them)."""
    for index, raw in enumerate(raw_links):
        if isinstance(raw, dict) and {"id", "origin_id", "origin_slot", "target_id", "target_slot"} <= raw.keys():
            raw = [raw["id"], raw["origin_id"], raw["origin_slot"], raw["target_id"], raw["target_slot"]]
        if not (isinstance(raw, list) and len(raw) >= 5 and all(isinstance(raw[i], int) for i in (2, 4))):
            raise ConfigError([Problem(source, f"links[{index}]", f"cannot read link {raw!r}; {EXPORT_HINT}")])
        link_id, origin, origin_slot, target = raw[:4]
        yield link_id, _Link(str(origin), origin_slot, str(target))


def _node_problems(node: dict, workflow: dict, graph: _Graph, source: str) -> list[Problem]:
    """Why this node cannot be converted; empty when it can (or when it would not be sent anyway)."""
    if node.get("mode") in (MODE_NEVER, MODE_BYPASS) or _is_virtual(node, graph):
        return []
    class_type = node["type"]
    key, title = f"nodes.{node['id']}", node.get("title") or class_type
    if graph.catalog.has_class(class_type):
        reason = _class_mismatch(node, graph.catalog.inputs(class_type), title)
        return [Problem(source, key, reason)] if reason else []
    if _group_name(class_type) and _is_group_node(class_type, workflow):
        reason = (
            f"'{title}' is a group node ('{_group_name(class_type)}'), "
            f"which cannot be converted here; {EXPORT_HINT}, "
            "or convert the group node back to nodes and save the workflow again"
        )
    else:
        reason = (
            f"'{title}' needs node {class_type}, which this ComfyUI server does not have: install the custom "
            f"node that provides it (or update ComfyUI) and restart ComfyUI, or {EXPORT_HINT}"
        )
    return [Problem(source, key, reason)]


def _class_mismatch(node: dict, specs: dict[str, InputSpec], title: str) -> str:
    """Why the server's class cannot be trusted to read this node's saved values; "" when it can:
    an input saved that the class lacks (V3 dynamic inputs save theirs as ``<input>.<name>``)."""
    dynamic = tuple(f"{spec.name}." for spec in specs.values() if spec.type in DYNAMIC_TYPES)
    unknown = [str(i.get("name")) for i in node.get("inputs") or []
               if i.get("name") not in specs and not str(i.get("name")).startswith(dynamic)]
    if unknown:
        return (f"'{title}' was saved with input {', '.join(unknown)}, which node {node['type']} on this ComfyUI "
                f"server does not have (the file comes from another version of the node): update ComfyUI or "
                f"the custom node, or {EXPORT_HINT}")
    misfits = _misfit_widgets(node, list(specs.values()))
    if misfits:
        return (f"'{title}' was saved with values that do not fit node {node['type']} on this ComfyUI server "
                f"({', '.join(misfits)}; the file comes from another version of the node): update ComfyUI or "
                f"the custom node, or {EXPORT_HINT}")
    return ""


def _misfit_widgets(node: dict, specs: list[InputSpec]) -> list[str]:
    """``"steps = 'randomize'"`` for every saved widget value of the wrong kind for its widget."""
    values = node.get("widgets_values")
    positional = values if isinstance(values, list) else []
    widgets, saved = _assign_values(_widget_slots(specs, positional), positional,
                                    values if isinstance(values, dict) else None)
    return [f"{spec.name} = {saved[spec.name]!r}" for spec in widgets
            if spec.name in saved and not _fits(spec, saved[spec.name])]


def _fits(spec: InputSpec, value: Any) -> bool:
    """Whether a widget of ``spec`` can hold the saved scalar ``value``: a number for INT and FLOAT, a
    value of its choices' kind for a single COMBO (text for text choices: a model may be missing
    here). Other widgets take what they are given, as the editor does."""
    if value is None or isinstance(value, (list, dict)):
        return True  # lists fill multiselects and text lists; objects are the frontend's own
    if spec.type in ("INT", "FLOAT"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.type == "COMBO" and spec.choices and not spec.options.get("multiselect"):
        return value in spec.choices or any(type(choice) is type(value) for choice in spec.choices)
    return True


def _group_name(class_type: str) -> str:
    """``Name`` of a legacy group node typed ``workflow>Name`` (older: ``workflow/Name``); else ""."""
    for prefix in ("workflow>", "workflow/"):
        if class_type.startswith(prefix):
            return class_type[len(prefix):]
    return ""


def _is_group_node(class_type: str, workflow: dict) -> bool:
    """A ``workflow>`` class defined in extra.groupNodes (or in a file that lost that table)."""
    group_nodes = (workflow.get("extra") or {}).get("groupNodes") or {}
    return _group_name(class_type) in group_nodes or not group_nodes


def _is_virtual(node: dict, graph: _Graph) -> bool:
    """A UI-only or pass-through node, unless the server has a real class of that name."""
    return node["type"] in VIRTUAL_CLASSES and not graph.catalog.has_class(node["type"])


def _is_sent(node: dict, graph: _Graph) -> bool:
    return node.get("mode") not in (MODE_NEVER, MODE_BYPASS) and not _is_virtual(node, graph)


def _title(node: dict, catalog: Catalog) -> str:
    return node.get("title") or catalog.display_name(node["type"])


# ---------------------------------------------------------------------------- one API node


def _api_node(node: dict, graph: _Graph, primitive_values: dict[str, Any], source: str) -> dict[str, Any]:
    """``{"inputs", "class_type", "_meta"}`` for one node that is sent."""
    inputs = _widget_inputs(node, list(graph.catalog.inputs(node["type"]).values()))
    inputs.update(graph.extras.get(node["type"], {}))
    inputs.update({name: _boxed(value) for name, value in primitive_values.items()})
    for slot in node.get("inputs") or []:
        if slot.get("link") is None:
            continue
        origin = _resolve_link(graph, slot["link"], slot.get("type"), set(), source)
        if isinstance(origin, _Value):
            inputs[slot["name"]] = _boxed(origin.value)
        elif origin is not None:
            inputs[slot["name"]] = [origin[0], origin[1]]
    return {"inputs": inputs, "class_type": node["type"], "_meta": {"title": _title(node, graph.catalog)}}


def _widget_inputs(node: dict, specs: list[InputSpec]) -> dict[str, Any]:
    """The node's widget values by input name, from ``widgets_values`` and the class defaults."""
    values = node.get("widgets_values")
    positional = values if isinstance(values, list) else []
    named = values if isinstance(values, dict) else None
    widgets, saved = _assign_values(_widget_slots(specs, positional), positional, named)
    result: dict[str, Any] = {}
    for spec in widgets:
        value = saved[spec.name] if spec.name in saved else _default(spec)
        if value is not None or spec.name in saved:
            result[spec.name] = _boxed(value)
    return result


def _assign_values(slots: list[_Slot], values: list, named: dict | None) -> tuple[list[InputSpec], dict[str, Any]]:
    """Walk ``values`` along ``slots``: the widgets met and their saved values by name. UI-only
    slots swallow their value when it looks like theirs; a dynamic combo is replaced, where it
    stands, by its combo and the widgets of the option chosen (``dynamicComboWidget`` in the
    frontend's ``dynamicWidgets.ts`` inserts them right after the combo). A dict ``named`` maps
    values by name instead."""
    pending = list(slots)
    widgets: list[InputSpec] = []
    saved: dict[str, Any] = {}
    index = position = 0
    while position < len(pending):
        slot = pending[position]
        if slot.kind == "dynamic" and slot.spec:
            combo = _combo_of(slot.spec)
            chosen = (named.get(combo.name) if named is not None and combo.name in named
                      else values[index] if named is None and index < len(values) else _default(combo))
            brought = [s for sub in slot.spec.option_inputs(chosen) for s in _slots_for(sub)]
            pending = pending[:position + 1] + brought + pending[position + 1:]
            slot = _Slot(spec=combo)
        if slot.spec:
            widgets.append(slot.spec)
        if named is not None:
            if slot.spec and slot.spec.name in named:
                saved[slot.spec.name] = named[slot.spec.name]
        elif index < len(values) and slot.spec:
            saved[slot.spec.name] = values[index]
            index += 1
        elif index < len(values) and (slot.kind == "forced" or _is_extra_value(slot, values[index],
                                                                                 pending[position + 1:])):
            index += 1
        position += 1
    return widgets, saved


def _combo_of(spec: InputSpec) -> InputSpec:
    """The plain combo a dynamic combo shows: its option keys, no control widget."""
    return InputSpec(spec.name, "COMBO", {}, spec.option_keys)


def _is_extra_value(slot: _Slot, value: Any, following: list[_Slot]) -> bool:
    """Whether ``value`` is the saved state of the UI-only widget ``slot`` (so it must be skipped).

    Declared extras are skipped unless the value plainly is not theirs (a file saved before the
    class had that extra widget); an INT without a declared control only skips a control word.
    """
    if slot.kind == "control":
        return value is None or isinstance(value, bool) or _is_control_word(value)
    if slot.kind == "filter":
        return value is None or isinstance(value, str)
    if slot.kind == "upload":
        return value is None or value == UPLOAD_BUTTON_VALUE
    next_widget = next((s.spec for s in following if s.spec), None)
    return _is_control_word(value) and not (next_widget and _accepts(next_widget, value))


def _is_control_word(value: Any) -> bool:
    """``"fixed"``, ``"increment"``, ``"decrement"`` or ``"randomize"`` (any value may be unhashable)."""
    return isinstance(value, str) and value in CONTROL_VALUES


def _accepts(spec: InputSpec, value: Any) -> bool:
    """Whether a widget of this spec could legitimately hold ``value`` (a string)."""
    return spec.type == "STRING" or (spec.type == "COMBO" and value in spec.choices)


# ---------------------------------------------------------------------------- the class's widgets


def _widget_slots(specs: list[InputSpec], values: list) -> list[_Slot]:
    """The node's widget list as the frontend builds it; ``forceInput`` inputs take a slot only in
    files from frontends that made them widgets, recognised by the extra length of ``values``."""
    required = [spec for spec in specs if spec.required]
    slots = [slot for spec in required for slot in _slots_for(spec)]
    if any(spec.is_upload for spec in required):
        slots.append(_Slot("upload"))
    slots += [slot for spec in specs if not spec.required for slot in _slots_for(spec)]
    without_forced = [s for s in slots if s.kind != "forced"]
    expected_with_forced = len([s for s in slots if s.kind != "maybe_control"])
    has_forced = len(without_forced) != len(slots)
    return slots if has_forced and len(values) >= expected_with_forced else without_forced


def _slots_for(spec: InputSpec) -> list[_Slot]:
    """The widget (and its UI-only companions) the frontend creates for one input; none for a socket."""
    if spec.is_dynamic_combo:
        return [_Slot("dynamic", spec)]
    if not spec.is_editor_widget:
        return []
    if spec.force_input:
        return [_Slot("forced")]
    slots = [_Slot(spec=spec)]
    if spec.type == "INT":
        slots.append(_Slot("control" if spec.has_control else "maybe_control"))
    elif spec.type == "COMBO" and spec.has_control:
        slots += [_Slot("control"), _Slot("filter")]
    return slots


def _default(spec: InputSpec) -> Any:
    """The value a freshly created widget has (the frontend's widget constructors)."""
    if spec.type == "COMBO":
        if spec.options.get("multiselect"):
            return spec.options.get("default") or []
        return spec.options.get("default") or (spec.choices[0] if spec.choices else None)
    return spec.options.get("default", WIDGET_FALLBACKS.get(spec.type))


def _boxed(value: Any) -> Any:
    """Lists are links in API format, so a list value is sent as ``{"__value__": [...]}``."""
    return {"__value__": value} if isinstance(value, list) else value


# ---------------------------------------------------------------------------- links


def _resolve_link(graph: _Graph, link_id: Any, want_type: Any, seen: set, source: str) -> _Origin:
    """The real ``(node_id, output_slot)`` a link delivers, or None when it ends nowhere."""
    link = graph.links.get(link_id)
    if link is None:
        logger.warning("%s: link %r is missing from 'links'; the input is left unconnected", source, link_id)
        return None
    return _resolve_output(graph, link.origin, link.origin_slot, want_type, seen, source)


def _resolve_output(
    graph: _Graph, node_id: str, slot: int, want_type: Any, seen: set, source: str
) -> _Origin:
    """Follow an output through bypassed and virtual nodes (``ExecutableNodeDTO.resolveOutput``)."""
    if (node_id, slot) in seen:
        reason = f"links form a loop through reroutes or bypassed nodes; {EXPORT_HINT}"
        raise ConfigError([Problem(source, f"nodes.{node_id}", reason)])
    seen.add((node_id, slot))
    node = graph.nodes.get(node_id)
    if node is None:
        return None
    if node.get("mode") == MODE_BYPASS:
        index = _bypass_input_index(node, slot, want_type)
        return None if index is None else _resolve_input(graph, node, index, None, seen, source)
    if not _is_virtual(node, graph):
        return (node_id, slot)
    if node["type"] in PASSTHROUGH_CLASSES:
        return _resolve_input(graph, node, slot, want_type, seen, source)
    if node["type"] == SUBGRAPH_IO:
        return _through_subgraph_border(graph, node, slot, want_type, seen, source)
    if node["type"] == GET_CLASS:
        setter = _setter_for(node, graph)
        return None if setter is None else _resolve_input(graph, setter, 0, want_type, seen, source)
    return None


def _resolve_input(
    graph: _Graph, node: dict, index: int, want_type: Any, seen: set, source: str
) -> _Origin:
    inputs = node.get("inputs") or []
    if index >= len(inputs) or inputs[index].get("link") is None:
        return None
    slot_type = want_type if want_type is not None else inputs[index].get("type")
    return _resolve_link(graph, inputs[index]["link"], slot_type, seen, source)


def _through_subgraph_border(
    graph: _Graph, node: dict, slot: int, want_type: Any, seen: set, source: str
) -> _Origin:
    """Into an instance's output (keeping the wanted type), or out of its input to what feeds the
    instance (wanting the instance input's own type), else its promoted widget's value
    (``ExecutableNodeDTO.resolveInput``: ``widgetInfo``)."""
    if "promoted" not in node:
        return _resolve_input(graph, node, slot, want_type, seen, source)
    if node["inputs"][slot].get("link") is None and slot in node["promoted"]:  # flatten checked the slot
        return _Value(node["promoted"][slot])
    return _resolve_input(graph, node, slot, None, seen, source)


def _bypass_input_index(node: dict, slot: int, want_type: Any) -> int | None:
    """Which input a bypassed node passes to output ``slot``: same index if the types fit, else the
    first input of exactly ``want_type``, else the first compatible one; None if none. A wildcard
    ``want_type`` takes the same index, else input 0."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    output_type = outputs[slot].get("type") if slot < len(outputs) else None
    if not want_type or want_type == "*":
        return slot if len(inputs) > slot else 0
    fits = [_compatible(i.get("type"), output_type) and _compatible(i.get("type"), want_type) for i in inputs]
    if slot < len(inputs) and fits[slot]:
        return slot
    exact = [i for i, entry in enumerate(inputs) if entry.get("type") == want_type]
    return exact[0] if exact else next((i for i, ok in enumerate(fits) if ok), None)


def _compatible(a: Any, b: Any) -> bool:
    """LiteGraph.isValidConnection: a missing or ``*`` type takes anything; else the comma-separated
    type lists overlap, ignoring case."""
    if not a or not b or "*" in (a, b):
        return True
    return bool(set(str(a).lower().split(",")) & set(str(b).lower().split(",")))


def _setter_for(getter: dict, graph: _Graph) -> dict | None:
    name = (getter.get("widgets_values") or [None])[0]
    return next(
        (n for n in graph.nodes.values() if n["type"] == SET_CLASS and (n.get("widgets_values") or [None])[0] == name),
        None,
    )


def _primitive_values(graph: _Graph, source: str) -> dict[str, dict[str, Any]]:
    """What each PrimitiveNode writes into its targets' widgets: ``{node_id: {widget: value}}``."""
    values: dict[str, dict[str, Any]] = {}
    for node in graph.nodes.values():
        saved = node.get("widgets_values")
        if not _is_virtual(node, graph) or node["type"] != PRIMITIVE_CLASS or not isinstance(saved, list) or not saved:
            continue
        for link_id in (node.get("outputs") or [{}])[0].get("links") or []:
            target = _widget_target(graph, link_id, source)
            if target is not None:
                values.setdefault(target[0], {})[target[1]] = saved[0]
    return values


def _widget_target(graph: _Graph, link_id: Any, source: str) -> tuple[str, str] | None:
    """``(node_id, widget_name)`` of the widget input a link ends at; None for a plain socket.

    A PrimitiveNode feeding a subgraph instance is refused: which value the editor then sends
    depends on how it syncs the promoted widget, which this converter does not model.
    """
    link = graph.links.get(link_id)
    target = graph.nodes.get(link.target) if link else None
    if link is None or target is None:
        return None
    if target["type"] == SUBGRAPH_IO:
        reason = (f"a PrimitiveNode feeds subgraph '{target.get('title') or link.target}', whose value this "
                  f"converter cannot place; connect it inside the subgraph, or {EXPORT_HINT}")
        raise ConfigError([Problem(source, f"nodes.{link.target}", reason)])
    entry = next((i for i in target.get("inputs") or [] if i.get("link") == link_id), None)
    widget = entry.get("widget") if entry else None
    return (link.target, widget["name"]) if isinstance(widget, dict) and widget.get("name") else None


def _drop_dangling_links(prompt: dict[str, dict]) -> None:
    """Remove inputs linked to nodes that are not sent (muted ones), as the frontend does."""
    for node in prompt.values():
        inputs = node["inputs"]
        for name in [n for n, v in inputs.items() if isinstance(v, list) and len(v) == 2 and v[0] not in prompt]:
            del inputs[name]
