"""Form widgets from parameters, form values back to parameter values, and status lines."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..comfy.events import Cached, JobEvent, NodeStarted, Progress, Queued, Resubmitted, Started
from ..forms.prepare import random_seed
from ..forms.schema import Param, TabSpec
from .endpoint import randomize_name

__all__ = ["describe", "form_values", "option_combo", "option_shown", "widget_for"]


def widget_for(param: Param, tab_name: str, visible: bool = True) -> gr.components.Component:
    """The Gradio component for one parameter (element id ``<tab>-<parameter>``); ``visible`` False
    hides the field of a DynamicCombo option that is not chosen (``option_shown``)."""
    common: dict[str, Any] = {"label": param.label, "info": _short(param.info) or None,
                              "elem_id": f"{tab_name}-{param.name}", "visible": visible}
    if param.is_seed:
        return gr.Number(value=param.default, precision=0, minimum=param.minimum, maximum=param.maximum,
                         interactive=not param.randomize, **common)
    if param.kind == "image":
        return gr.Image(label=param.label, type="filepath", sources=["upload", "clipboard"],
                        elem_id=common["elem_id"], height=300)
    if param.kind == "video":
        return gr.Video(label=param.label, sources=["upload"], elem_id=common["elem_id"], height=300)
    if param.kind == "audio":
        return gr.Audio(label=param.label, type="filepath", sources=["upload", "microphone"],
                        elem_id=common["elem_id"])
    if param.kind == "bool":
        return gr.Checkbox(value=bool(param.default), **common)
    if param.kind == "choice":
        return _dropdown(param, common)
    if param.kind in ("int", "float"):
        return _number(param, common)
    return gr.Textbox(value=param.default or "", lines=param.lines, **common)


def _short(text: str, limit: int = 160) -> str:
    """Help text cut at a word boundary, with an ellipsis when shortened."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _dropdown(param: Param, common: dict[str, Any]) -> gr.Dropdown:
    choices = list(param.choices)
    if param.default is not None and param.default not in choices:
        choices = choices or [param.default]
    value = param.default if param.default in choices else (choices[0] if choices else None)
    return gr.Dropdown(choices=choices, value=value, filterable=True, allow_custom_value=not param.choices,
                       **common)


def _number(param: Param, common: dict[str, Any]) -> gr.components.Component:
    step = param.step or (1 if param.kind == "int" else 0.01)
    bounded = param.minimum is not None and param.maximum is not None
    if param.widget == "slider" or (bounded and param.widget != "number" and not param.is_seed
                                    and (param.maximum - param.minimum) / step <= 10_000):
        return gr.Slider(minimum=param.minimum, maximum=param.maximum, step=step, value=param.default, **common)
    precision = 0 if param.kind == "int" else None
    return gr.Number(value=param.default, precision=precision, minimum=param.minimum, maximum=param.maximum,
                     step=step, **common)


def option_combo(spec: TabSpec, param: Param) -> Param | None:
    """The tab's DynamicCombo field whose option brings ``param`` (``Param.option_of``), if it is a field."""
    if param.option_of is None:
        return None
    target = (param.targets[0][0], param.option_of[0])
    return next((p for p in spec.params if p.options and target in p.targets), None)


def option_shown(spec: TabSpec, param: Param, chosen: Any = None) -> bool:
    """Whether the field of a DynamicCombo option is shown: its option is chosen in the combo field
    (``chosen``, else the combo field's default), or on the node when the combo is not a field."""
    if param.option_of is None:
        return True
    combo = option_combo(spec, param)
    if combo is not None:
        return (combo.default if chosen is None else chosen) in param.option_of[1]
    return spec.workflow.nodes[param.targets[0][0]]["inputs"].get(param.option_of[0]) in param.option_of[1]


def form_values(spec: TabSpec, form: dict[str, Any]) -> dict[str, Any]:
    """Parameter values by name from the form (parameters and randomize flags, by field name): a ticked
    "Randomize" draws a new seed; no upload means the workflow's own."""
    values: dict[str, Any] = {}
    for param in spec.params:
        value = form.get(param.name)
        if param.is_seed and form.get(randomize_name(param)):
            value = random_seed(param)
        if param.is_upload and not value:
            continue
        if param.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[param.name] = value
    return values


def describe(event: JobEvent, eta: float | None = None) -> str:
    """The status line for a job event ('' for events that need no line)."""
    left = f" · about {eta:.0f} s left" if eta is not None and eta >= 1 else ""
    if isinstance(event, Queued):
        return "⏳ Next in line…" if event.position == 0 else f"⏳ Waiting in the queue: {event.position} ahead"
    if isinstance(event, Started):
        return f"▶️ Started{left}"
    if isinstance(event, NodeStarted):
        return f"▶️ {event.title}{left}"
    if isinstance(event, Progress):
        return f"▶️ {event.title}: step {event.value} of {event.max}{left}"
    if isinstance(event, Resubmitted):
        return f"🔁 {event.reason}"
    if isinstance(event, Cached):
        return ""
    return ""
