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
bypassed instances of the root graph are not expanded (``graphToPrompt``); nested instances are,
whatever their mode (``getInnerNodes`` does not look at it): a muted one is read through as if
active and a bypassed one passes its inputs on. Inner node ids are first made unique as the editor
does on load (``subgraph_definitions``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, Problem

__all__ = ["SUBGRAPH_IO", "flatten", "instance_titles", "subgraph_definitions"]

SUBGRAPH_IO = "<subgraph io>"  # the class of the pass-through nodes standing for an instance's borders
INPUT_NODE_ID = -10
OUTPUT_NODE_ID = -20
BYPASS = 4
# Muted and bypassed instances of the root graph are kept whole, as one node that is not sent
# (``graphToPrompt``); nested ones are expanded whatever their mode (``SubgraphNode.getInnerNodes``).
SKIPPED_MODES = (2, BYPASS)


def subgraph_definitions(workflow: dict, renumber: bool = True) -> dict[str, dict]:
    """The file's subgraph definitions by UUID, their node ids made unique as the editor makes them
    on load (``deduplicateSubgraphNodeIds``, ``subgraph/subgraphDeduplication.ts``): in file order,
    an inner node whose id a root node or an earlier definition already holds gets the next free id
    after the graph's ``lastNodeId``, and the definition's links follow it."""
    definitions = workflow.get("definitions") or {}
    subgraphs = (definitions.get("subgraphs") or []) if isinstance(definitions, dict) else []
    used = {str(n.get("id")) for n in workflow.get("nodes") or [] if isinstance(n, dict)}
    last = [_last_node_id(workflow)]
    return {str(s.get("id")): _unique_ids(s, used, last) if renumber else s for s in subgraphs if isinstance(s, dict)}


def _last_node_id(workflow: dict) -> int:
    state = workflow.get("state") if isinstance(workflow.get("state"), dict) else {}
    last = state.get("lastNodeId", workflow.get("last_node_id"))
    return last if isinstance(last, int) else 0


def _unique_ids(definition: dict, used: set[str], last: list[int]) -> dict:
    """A copy of ``definition`` whose node ids are not in ``used`` (which it then joins)."""
    remapped: dict[str, int] = {}
    nodes = []
    for node in definition.get("nodes") or []:
        if not isinstance(node, dict):
            nodes.append(node)
            continue
        key = str(node.get("id"))
        if key in used:
            while str(last[0] + 1) in used:
                last[0] += 1
            last[0] += 1
            remapped[key] = last[0]
            node = {**node, "id": last[0]}
        elif isinstance(node.get("id"), int):
            last[0] = max(last[0], node["id"])
        used.add(str(node.get("id")))
        nodes.append(node)
    if not remapped:
        return definition
    links = [_relinked(raw, remapped) for raw in definition.get("links") or []]
    return {**definition, "nodes": nodes, "links": links}


def _relinked(raw: Any, remapped: dict[str, int]) -> Any:
    if isinstance(raw, dict):
        return {**raw, **{end: remapped.get(str(raw.get(end)), raw.get(end)) for end in ("origin_id", "target_id")}}
    if isinstance(raw, list) and len(raw) >= 5:
        return [raw[0], remapped.get(str(raw[1]), raw[1]), raw[2], remapped.get(str(raw[3]), raw[3]), *raw[4:]]
    return raw


def flatten(workflow: dict, source: str, *, renumber: bool = True) -> tuple[list[dict], list[list]]:
    """The workflow's nodes and links with every active subgraph instance expanded, to any depth.

    Links come back as ``[id, origin, origin_slot, target, target_slot]`` lists; ``renumber`` makes
    inner node ids unique first (``subgraph_definitions``), as frontends since 1.58 do. Raises
    ``ConfigError`` for a subgraph that contains itself or a malformed definition.
    """
    definitions = subgraph_definitions(workflow, renumber)
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
        if node.get("mode") in SKIPPED_MODES and not prefix:
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
    if instance.get("mode") == BYPASS:  # nested: expanded all the same, its outputs pass its inputs on
        nodes.append({**_renamed(_with_definition_slots(instance, definition), prefix), "type": SUBGRAPH_IO})
    else:
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


def instance_titles(workflow: dict, source: str) -> dict[str, str]:
    """The title of every subgraph instance, by its id path in the flattened prompt (``"12"``, ``"12:7"``):
    the node a person sees in the graph while the nodes inside it (``"12:5"``) run."""
    nodes, _ = flatten(workflow, source)
    return {str(n["id"]): str(n["title"]) for n in nodes
            if n.get("type") == SUBGRAPH_IO and not str(n["id"]).endswith(f":{INPUT_NODE_ID}")}


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
