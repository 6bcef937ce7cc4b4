"""A schema for a workflow that has none: the form a person would expect.

The main area gets the usual knobs of an image workflow (prompt, negative prompt, seed, steps,
cfg, sampler, scheduler, denoise, width, height, batch size, checkpoint, image uploads); every
other literal widget value goes under "Advanced". The result is a plain schema dict, the same
shape as a YAML file, so ``python -m comfyui_gradio schema`` can write it out for editing.

When node titles carry markers (``$prompt``, ``$~image!``, ``$output.result``; see ``markers``),
the marked inputs are the form instead of the guess, and marked outputs are the tab's outputs.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .markers import markers_schema
from .workflow import Workflow, is_link

__all__ = ["infer_schema"]

# (class_type or "*", input) -> (parameter name, label); order here is the order on the form.
MAIN_INPUTS: tuple[tuple[str, str, str, str], ...] = (
    ("LoadImage", "image", "image", "Image"),
    ("*", "seed", "seed", "Seed"),
    ("*", "noise_seed", "seed", "Seed"),
    ("*", "steps", "steps", "Steps"),
    ("*", "cfg", "cfg", "CFG scale"),
    ("*", "sampler_name", "sampler", "Sampler"),
    ("*", "scheduler", "scheduler", "Scheduler"),
    ("*", "denoise", "denoise", "Denoise"),
    ("EmptyLatentImage", "width", "width", "Width"),
    ("EmptyLatentImage", "height", "height", "Height"),
    ("EmptyLatentImage", "batch_size", "batch_size", "Batch size"),
    ("CheckpointLoaderSimple", "ckpt_name", "checkpoint", "Checkpoint"),
)
HIDDEN_INPUTS = {"filename_prefix"}
_POSITIVE = ("positive", "prompt", "Prompt")
_NEGATIVE = ("negative", "negative_prompt", "Negative prompt")


def infer_schema(workflow: Workflow, catalog: Catalog | None) -> dict[str, Any]:
    """A schema dict (``title``, ``inputs``, and ``outputs`` when marked) proposing a form for ``workflow``.

    Input markers in node titles replace the guessed inputs; output markers set ``outputs`` (else
    every output node is one). Either kind alone leaves the other to the usual defaults. Raises
    ``ConfigError`` naming every bad marker.
    """
    inferred = _guessed_schema(workflow, catalog)
    marked = markers_schema(workflow, catalog)
    if marked is None:
        return inferred
    schema = {"title": inferred["title"], "inputs": marked["inputs"] or inferred["inputs"]}
    return {**schema, "outputs": marked["outputs"]} if marked["outputs"] else schema


def _guessed_schema(workflow: Workflow, catalog: Catalog | None) -> dict[str, Any]:
    """The form a person would expect from the node classes alone (module docstring)."""
    inputs: dict[str, dict[str, Any]] = {}
    taken: set[tuple[str, str]] = set()
    _add_prompts(workflow, inputs, taken)
    _add_main(workflow, inputs, taken)
    _add_advanced(workflow, catalog, inputs, taken)
    return {"title": workflow.name.replace("_", " ").replace("-", " ").capitalize(), "inputs": inputs}


def _literal_inputs(workflow: Workflow) -> list[tuple[str, str, str, Any]]:
    """(node_id, class_type, input, value) of every literal input, in node-id order."""
    rows = []
    for node_id in sorted(workflow.nodes, key=_id_key):
        node = workflow.nodes[node_id]
        for name, value in node["inputs"].items():
            if not is_link(value):
                rows.append((node_id, node["class_type"], name, value))
    return rows


def _add_prompts(workflow: Workflow, inputs: dict[str, dict[str, Any]], taken: set[tuple[str, str]]) -> None:
    """Text encoders linked into a sampler's positive/negative become prompt / negative_prompt."""
    for role, name, label in (_POSITIVE, _NEGATIVE):
        for node_id in _encoders_for(workflow, role):
            _put(inputs, taken, name, node_id, "text", label=label, lines=3 if role == "positive" else 2)


def _encoders_for(workflow: Workflow, role: str) -> list[str]:
    found = []
    for node in workflow.nodes.values():
        link = node["inputs"].get(role)
        if is_link(link) and link[0] in workflow.nodes:
            source = workflow.nodes[link[0]]
            if isinstance(source["inputs"].get("text"), str) and link[0] not in found:
                found.append(link[0])
    return found


def _add_main(workflow: Workflow, inputs: dict[str, dict[str, Any]], taken: set[tuple[str, str]]) -> None:
    rows = _literal_inputs(workflow)
    for class_type, input_name, name, label in MAIN_INPUTS:
        for node_id, node_class, row_input, _ in rows:
            if row_input == input_name and class_type in ("*", node_class):
                extra = {"randomize": True} if name == "seed" else {}
                _put(inputs, taken, name, node_id, input_name, label=label, **extra)


def _add_advanced(
    workflow: Workflow, catalog: Catalog | None, inputs: dict[str, dict[str, Any]], taken: set[tuple[str, str]]
) -> None:
    for node_id, class_type, input_name, value in _literal_inputs(workflow):
        if (node_id, input_name) in taken or input_name in HIDDEN_INPUTS:
            continue
        if catalog and catalog.has_class(class_type) and not _is_widget(catalog, class_type, input_name):
            continue
        if isinstance(value, (dict, list)):
            continue
        label = f"{workflow.title(node_id, catalog)}: {input_name.replace('_', ' ')}"
        _put(inputs, taken, input_name, node_id, input_name, label=label, advanced=True)


def _is_widget(catalog: Catalog, class_type: str, input_name: str) -> bool:
    spec = catalog.input(class_type, input_name)
    return spec is not None and spec.is_widget


def _put(inputs: dict[str, dict[str, Any]], taken: set[tuple[str, str]], name: str, node_id: str,
         input_name: str, **settings: Any) -> None:
    """Add a parameter once per node input; a repeated name gets the node id as a suffix."""
    if (node_id, input_name) in taken:
        return
    taken.add((node_id, input_name))
    unique = name if name not in inputs else f"{name}_{_slug(node_id)}"
    inputs[unique] = {"node": node_id, "input": input_name, **settings}


def _slug(node_id: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in node_id)


def _id_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)
