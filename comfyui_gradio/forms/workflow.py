"""Workflow files: reading them (API or UI format) and finding nodes in them.

An API-format workflow maps node ids to ``{"class_type", "inputs", "_meta": {"title"}}``; an
input is either a literal (a widget value) or a link ``[source_node_id, output_index]``.
A UI-format file (ComfyUI's plain "Save") is converted with the server's catalogue first.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, is_output_class
from ..errors import ConfigError, Problem

__all__ = ["MAX_WORKFLOW_BYTES", "Workflow", "find_node", "is_link", "load_workflow", "read_capped"]

# The largest of the 644 official UI-format templates (comfyui-workflow-templates-json 0.1.123) is 457 KiB
# and the median 12 KiB; a file many times that holds embedded data and would stall every tab while it is read.
MAX_WORKFLOW_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Workflow:
    """An API-format graph read from ``path``; ``nodes`` must not be mutated (use ``copy_nodes``)."""

    name: str
    path: Path
    nodes: dict[str, dict[str, Any]]
    source_format: str = "api"  # "api" or "ui"
    groups: dict[str, str] = field(default_factory=dict)  # subgraph instance id path -> its title (UI files)

    def copy_nodes(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.nodes)

    def title(self, node_id: str, catalog: Catalog | None = None) -> str:
        """The name a person knows the node by: its title, else the class's display name."""
        node = self.nodes.get(node_id, {})
        title = (node.get("_meta") or {}).get("title")
        if title:
            return str(title)
        class_type = str(node.get("class_type", node_id))
        return catalog.display_name(class_type) if catalog else class_type

    def output_node_ids(self, catalog: Catalog | None) -> list[str]:
        return [nid for nid, node in self.nodes.items() if is_output_class(catalog, node["class_type"])]


def is_link(value: Any) -> bool:
    """True for an input value that is a link ``["4", 0]`` rather than a literal."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def read_capped(path: Path, cap: int, setting: str) -> str:
    """The file's text, if its size (read with ``stat``, before any content) is at most ``cap`` bytes.

    Raises ``ConfigError`` naming the file, its size, the cap and ``setting`` (the ``Limits`` field
    that raises the cap), or saying why the file cannot be read.
    """
    try:
        size = path.stat().st_size
        if size > cap:
            reason = (f"is {_mib(size)}, more than the {_mib(cap)} this app reads from one file; remove what is "
                      f"embedded in it (images, long notes) or raise Limits.{setting}")
            raise ConfigError([Problem(str(path), "", reason)])
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), "", f"is not UTF-8 text ({exc}); save it again as UTF-8")]) from exc
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot be read ({exc.strerror or exc})")]) from exc


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB ({size} bytes)"


def load_workflow(path: Path, catalog: Catalog | None = None, *, max_bytes: int = MAX_WORKFLOW_BYTES) -> Workflow:
    """Read a workflow file of at most ``max_bytes``; raise ``ConfigError`` naming the file and what
    to do on any problem."""
    source = str(path)
    text = read_capped(path, max_bytes, "max_workflow_bytes")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError([Problem(source, "", f"is not valid JSON ({exc}); save it again from ComfyUI")]) from exc
    except RecursionError as exc:
        raise ConfigError([Problem(source, "", "is nested too deeply to be a ComfyUI workflow; "
                                   "save it again from ComfyUI")]) from exc
    from .convert import is_ui_format, ui_to_api  # local: the converter is only needed for UI files
    from .subgraphs import instance_titles

    if is_ui_format(data):
        if catalog is None:
            raise ConfigError([Problem(source, "", "is a UI-format workflow and converting it needs the "
                                       "server's node list; start ComfyUI (or export the workflow with "
                                       "'Export (API)') and restart the app")])
        nodes = _checked(ui_to_api(data, catalog, source=source), source)
        return Workflow(path.stem, path, nodes, "ui", instance_titles(data, source))
    return Workflow(path.stem, path, _checked(data, source))


def _checked(data: Any, source: str) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict) or not data:
        raise ConfigError([Problem(source, "", "is not a ComfyUI workflow (expected an object of nodes); "
                                   "export it from ComfyUI with 'Export (API)'")])
    problems = [
        Problem(source, str(node_id), "is not a node (expected an object with 'class_type' and 'inputs')")
        for node_id, node in data.items()
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str)
        or not isinstance(node.get("inputs", {}), dict)
    ]
    if problems:
        raise ConfigError(problems)
    return {str(k): {**v, "inputs": dict(v.get("inputs", {}))} for k, v in data.items()}


def find_node(workflow: Workflow, ref: str) -> str:
    """Resolve a node reference: an id, else a unique title, else a unique class_type.

    Raises ``LookupError`` with a message fit for a schema problem.
    """
    ref = str(ref)
    if ref in workflow.nodes:
        return ref
    for attribute in ("title", "class_type"):
        matches = [nid for nid, node in workflow.nodes.items() if _attribute(node, attribute) == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise LookupError(f"node {ref!r} is ambiguous: nodes {', '.join(sorted(matches))} match; use an id")
    raise LookupError(f"node {ref!r} does not exist in {workflow.path.name}")


def _attribute(node: dict[str, Any], attribute: str) -> Any:
    return (node.get("_meta") or {}).get("title") if attribute == "title" else node.get("class_type")
