"""A tab's endpoint as one ordered list of named fields, built once from its ``TabSpec``.

The page's inputs, the Gradio/MCP endpoint's parameters (with the tool description), and the API
docs' positional ``data`` list all come from ``endpoint_fields``: every schema parameter in the
schema's order (a seed followed by its ``<seed>_randomize`` flag), then ``runs`` and, for a tab
with a seed, ``seed_mode``. Nothing else matches these by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..forms.schema import Param, TabSpec
from ..forms.vocabulary import ENDPOINT_EXTRAS, RANDOMIZE_SUFFIX

__all__ = ["RUNS", "SEED_MODE", "SEED_MODES", "EndpointField", "FieldKind", "endpoint_fields", "randomize_name",
           "split_values", "tool_docstring"]

RUNS, SEED_MODE = ENDPOINT_EXTRAS
SEED_MODES = ("random", "increment")  # a new random seed each further run, or seed+1, seed+2, ...

# What a field is: a schema parameter, the randomize flag of a seed parameter, or one of the extras.
FieldKind = Literal["param", "randomize", "runs", "seed_mode"]

_FILE_KINDS = {"image": "an image file", "video": "a video file", "audio": "an audio file"}


@dataclass(frozen=True)
class EndpointField:
    name: str
    kind: FieldKind
    default: Any  # what the endpoint uses when a caller leaves the field out (an upload: None)
    description: str  # one line for the MCP tool and the docstring's Args
    param: Param | None = None  # the schema parameter of a "param" or "randomize" field

    @property
    def advanced(self) -> bool:
        """Shown under *Advanced* on the page: advanced parameters (with their flags), runs and seed_mode."""
        return self.param is None or self.param.advanced


def randomize_name(param: Param) -> str:
    """The name of a seed parameter's "Randomize" flag."""
    return param.name + RANDOMIZE_SUFFIX


def endpoint_fields(spec: TabSpec, max_runs: int) -> list[EndpointField]:
    """The fields of ``spec``'s endpoint, in the endpoint's order."""
    fields: list[EndpointField] = []
    for param in spec.params:
        fields.append(EndpointField(param.name, "param", None if param.is_upload else param.default,
                                    _param_description(param), param))
        if param.is_seed:
            fields.append(EndpointField(randomize_name(param), "randomize", param.randomize,
                                        f"if true, {param.name} is ignored and a random seed is used.", param))
    fields.append(EndpointField(RUNS, "runs", 1,
                                f"how many times to run the workflow, 1 to {max_runs}; results add up."))
    if any(p.is_seed for p in spec.params):
        fields.append(EndpointField(SEED_MODE, "seed_mode", SEED_MODES[0],
                                    f"{SEED_MODES[0]!r} (a new seed each run) or {SEED_MODES[1]!r} "
                                    "(seed, seed+1, ...)."))
    return fields


def _param_description(param: Param) -> str:
    kind = _FILE_KINDS.get(param.kind, param.kind)
    limits = "".join(f", {b} {v:g}" for b, v in (("min", param.minimum), ("max", param.maximum)) if v is not None)
    info = f" {param.info.strip()}" if param.info.strip() else ""
    return f"{param.label} ({kind}{limits}).{info}".replace("\n", " ")


def split_values(fields: list[EndpointField], values: dict[str, Any]) -> tuple[dict[str, Any], int, str]:
    """A call's values as (the form: parameters and randomize flags by name, runs, seed_mode); an
    empty runs or seed_mode takes its default."""
    form = {f.name: values.get(f.name) for f in fields if f.kind in ("param", "randomize")}
    runs = values.get(RUNS) or 1
    return form, int(runs), str(values.get(SEED_MODE) or SEED_MODES[0])


def tool_docstring(spec: TabSpec, fields: list[EndpointField]) -> str:
    """A Google-style docstring for a tab's endpoint (description, Args, Returns): Gradio's MCP server
    turns it into the tool's description and its parameters' descriptions."""
    lines = [f"{spec.title}. {spec.description}".strip(), "", "Args:"]
    lines += [f"    {f.name}: {f.description}" for f in fields]
    lines += ["", "Returns:", "    A status line, the result images, and the run details (seeds used, timing)."]
    return "\n".join(lines)
