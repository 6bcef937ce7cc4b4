"""Subgraphs flattened into one UI-format graph, the way ComfyUI's frontend expands them to queue.

A subgraph is defined once in ``definitions.subgraphs[]`` (``{"id": UUID, "nodes", "links" (objects
``{id, origin_id, origin_slot, target_id, target_slot, type}``), "inputs"/"outputs" (``name``,
``type``, ``linkIds``)}``) and used by nodes whose ``type`` is its UUID. Inside, links leave the input
node (id -10) and enter the output node (id -20). The frontend (``SubgraphNode.getInnerNodes`` and
``ExecutableNodeDTO.resolveInput/resolveOutput``, ComfyUI_frontend ``src/lib/litegraph/src/subgraph/``)
gives every inner node the id of its path of instances joined by ``:`` (``"12:5"``, ``"12:7:3"``) and
resolves a link from the input node to whatever feeds the instance's matching input, else to the
instance's promoted widget value.

Here each expanded instance becomes two pass-through nodes of class ``SUBGRAPH_IO``: one with the
instance's own id whose inputs are the links into the output node (so links leaving the instance
continue inside it), and one with id ``"<instance>:-10"`` whose inputs are the instance's own input
links and whose ``promoted`` map holds the values of unconnected promoted widgets (the instance's
``widgets_values``, one per subgraph input that feeds an inner widget, in the order of the
subgraph's inputs; an empty list keeps the inner widgets' own values, which is what legacy
``properties.proxyWidgets`` instances save). Inner link ids become ``"<instance>:<id>"``. Muted and
bypassed instances are not expanded (``graphToPrompt``'s ``isExcludedFromPrompt``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, Problem

__all__ = ["SUBGRAPH_IO", "flatten", "subgraph_definitions"]

SUBGRAPH_IO = "<subgraph io>"  # the class of the pass-through nodes standing for an instance's borders
INPUT_NODE_ID = -10
OUTPUT_NODE_ID = -20
SKIPPED_MODES = (2, 4)  # muted, bypassed: the instance is kept whole, as one node that is not sent


def subgraph_definitions(workflow: dict) -> dict[str, dict]:
    """The file's subgraph definitions by UUID."""
    definitions = workflow.get("definitions") or {}
    subgraphs = (definitions.get("subgraphs") or []) if isinstance(definitions, dict) else []
    return {str(s.get("id")): s for s in subgraphs if isinstance(s, dict)}


def flatten(workflow: dict, source: str) -> tuple[list[dict], list[list]]:
    """The workflow's nodes and links with every active subgraph instance expanded, to any depth.

    Links come back as ``[id, origin, origin_slot, target, target_slot]`` lists. Raises
    ``ConfigError`` for a subgraph that contains itself or a malformed definition.
    """
    definitions = subgraph_definitions(workflow)
    nodes: list[dict] = []
    links: list[list] = [raw for raw in workflow.get("links") or [] if raw is not None]
    if not definitions:
        return list(workflow["nodes"]), links
    _expand_level(workflow["nodes"], "", definitions, (), nodes, links, source)
    return nodes, links


def _expand_level(level_nodes: list, prefix: str, definitions: dict[str, dict], stack: tuple[str, ...],
                  nodes: list[dict], links: list[list], source: str) -> None:
    for node in level_nodes:
        if not isinstance(node, dict) or "id" not in node:
            nodes.append(node)  # convert._index reports it
            continue
        definition = definitions.get(str(node.get("type")))
        if definition is None:
            nodes.append(_renamed(node, prefix))
            continue
        if node.get("mode") in SKIPPED_MODES:
            nodes.append(_renamed(_with_definition_slots(node, definition), prefix))
            continue
        if definition["id"] in stack:
            reason = f"subgraph '{_title({}, definition)}' contains itself"
            raise ConfigError([Problem(source, f"nodes.{prefix}{node['id']}", reason)])
        _expand_instance(node, definition, prefix, definitions, (*stack, definition["id"]), nodes, links, source)


def _renamed(node: dict, prefix: str) -> dict:
    """An inner node under its path id, its links under their flat ids."""
    if not prefix:
        return node
    return {
        **node,
        "id": f"{prefix}{node['id']}",
        "inputs": [{**i, "link": _flat_link(prefix, i.get("link"))} for i in node.get("inputs") or []],
        "outputs": [{**o, "links": [_flat_link(prefix, x) for x in o.get("links") or []]}
                    for o in node.get("outputs") or []],
    }


def _with_definition_slots(instance: dict, definition: dict) -> dict:
    """A bypassed instance passes its inputs on by the subgraph's own slots (the editor rebuilds the
    instance's inputs and outputs from the definition; a file may save fewer)."""
    saved = {i.get("name"): i for i in instance.get("inputs") or [] if isinstance(i, dict)}
    inputs = [{"name": e.get("name"), "type": e.get("type"), "link": (saved.get(e.get("name")) or {}).get("link")}
              for e in definition.get("inputs") or []]
    outputs = [{"name": e.get("name"), "type": e.get("type")} for e in definition.get("outputs") or []]
    return {**instance, "inputs": inputs, "outputs": outputs}


def _flat_link(prefix: str, link_id: Any) -> Any:
    return link_id if link_id is None or not prefix else f"{prefix}{link_id}"


def _expand_instance(instance: dict, definition: dict, prefix: str, definitions: dict[str, dict],
                     stack: tuple[str, ...], nodes: list[dict], links: list[list], source: str) -> None:
    instance_id = f"{prefix}{instance['id']}"
    inner = f"{instance_id}:"
    inner_links = _inner_links(definition, source, instance_id)
    if _proxies_unlinked_widgets(instance, definition, inner_links) and instance.get("widgets_values"):
        reason = (f"subgraph '{_title(instance, definition)}' saves values for legacy proxy widgets "
                  "(properties.proxyWidgets), whose order this converter cannot tell; open the workflow in "
                  "ComfyUI, save it again, or save it with Export (API)")
        raise ConfigError([Problem(source, f"nodes.{instance_id}", reason)])
    nodes.append(_input_node(instance, definition, prefix, inner_links, instance_id))
    nodes.append(_output_node(instance, definition, inner, inner_links, instance_id))
    for link_id, origin, origin_slot, target, target_slot in inner_links:
        origin_id = f"{instance_id}:{INPUT_NODE_ID}" if origin == INPUT_NODE_ID else f"{inner}{origin}"
        target_id = instance_id if target == OUTPUT_NODE_ID else f"{inner}{target}"
        links.append([f"{inner}{link_id}", origin_id, origin_slot, target_id, target_slot])
    _expand_level(definition.get("nodes") or [], inner, definitions, stack, nodes, links, source)


def _inner_links(definition: dict, source: str, instance_id: str) -> list[tuple[Any, Any, int, Any, int]]:
    found = []
    for index, saved in enumerate(definition.get("links") or []):
        raw = saved
        if isinstance(saved, list) and len(saved) >= 5:
            raw = dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot"), saved))
        if not isinstance(raw, dict) or not _fits(raw, definition):
            reason = f"subgraph '{_title({}, definition)}' has an unreadable link {saved!r}"
            raise ConfigError([Problem(source, f"nodes.{instance_id}.links[{index}]", reason)])
        found.append((raw.get("id"), raw.get("origin_id"), raw["origin_slot"], raw.get("target_id"),
                      raw["target_slot"]))
    return found


def _proxies_unlinked_widgets(instance: dict, definition: dict, inner_links: list) -> bool:
    """Legacy ``proxyWidgets`` naming an inner widget no subgraph input feeds (the editor turns those
    into new subgraph inputs on load, which reorders the instance's promoted values)."""
    proxies = (instance.get("properties") or {}).get("proxyWidgets") or []
    by_id = {str(n.get("id")): n for n in definition.get("nodes") or [] if isinstance(n, dict)}
    fed = set()
    for _, origin, _, target, target_slot in inner_links:
        target_inputs = (by_id.get(str(target)) or {}).get("inputs") or []
        if origin == INPUT_NODE_ID and target_slot < len(target_inputs):
            fed.add((str(target), str((target_inputs[target_slot].get("widget") or {}).get("name"))))
    return any(isinstance(p, list) and len(p) == 2 and (str(p[0]), str(p[1])) not in fed
               and not str(p[1]).startswith("$$") for p in proxies)


def _fits(link: dict, definition: dict) -> bool:
    """Slots are numbers, and a link from the input node or into the output node names one of the
    subgraph's inputs or outputs (the frontend throws ``SlotIndexError`` otherwise)."""
    origin_slot, target_slot = link.get("origin_slot"), link.get("target_slot")
    if not isinstance(origin_slot, int) or not isinstance(target_slot, int):
        return False
    if link.get("origin_id") == INPUT_NODE_ID and not 0 <= origin_slot < len(definition.get("inputs") or []):
        return False
    return link.get("target_id") != OUTPUT_NODE_ID or 0 <= target_slot < len(definition.get("outputs") or [])


def _input_node(instance: dict, definition: dict, prefix: str, inner_links: list, instance_id: str) -> dict:
    """The instance's inputs, in the subgraph's order, with the values of its promoted widgets."""
    saved = {i.get("name"): i for i in instance.get("inputs") or [] if isinstance(i, dict)}
    inputs, promoted = [], {}
    values = instance.get("widgets_values") if isinstance(instance.get("widgets_values"), list) else []
    promoted_slots = [k for k, _ in enumerate(definition.get("inputs") or [])
                      if _feeds_widget(definition, k, inner_links)]
    for slot, entry in enumerate(definition.get("inputs") or []):
        own = saved.get(entry.get("name")) or {}
        inputs.append({"name": entry.get("name"), "type": entry.get("type"),
                       "link": _flat_link(prefix, own.get("link"))})
        if slot in promoted_slots and promoted_slots.index(slot) < len(values):
            promoted[slot] = values[promoted_slots.index(slot)]
    return {"id": f"{instance_id}:{INPUT_NODE_ID}", "type": SUBGRAPH_IO, "inputs": inputs, "promoted": promoted,
            "title": _title(instance, definition)}


def _title(instance: dict, definition: dict) -> str:
    return str(instance.get("title") or definition.get("name") or definition.get("id"))


def _feeds_widget(definition: dict, slot: int, inner_links: list) -> bool:
    """Whether subgraph input ``slot`` is linked to an inner widget input (so the instance shows it)."""
    by_id = {str(n.get("id")): n for n in definition.get("nodes") or [] if isinstance(n, dict)}
    for _, origin, origin_slot, target, target_slot in inner_links:
        if origin != INPUT_NODE_ID or origin_slot != slot:
            continue
        target_inputs = (by_id.get(str(target)) or {}).get("inputs") or []
        if target_slot < len(target_inputs) and target_inputs[target_slot].get("widget"):
            return True
    return False


def _output_node(instance: dict, definition: dict, inner: str, inner_links: list, instance_id: str) -> dict:
    """Stands where the instance stood: its output slot *s* continues from the link into output *s*."""
    into_output = {target_slot: link_id for link_id, _, _, target, target_slot in inner_links
                   if target == OUTPUT_NODE_ID}
    inputs = [{"name": entry.get("name"), "type": entry.get("type"),
               "link": None if slot not in into_output else f"{inner}{into_output[slot]}"}
              for slot, entry in enumerate(definition.get("outputs") or [])]
    return {"id": instance_id, "type": SUBGRAPH_IO, "inputs": inputs, "title": _title(instance, definition)}
