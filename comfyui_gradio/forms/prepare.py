"""Pure preparation of a prompt: copy the workflow and apply the caller's values.

Values are named: either a schema parameter (``{"prompt": "a cat"}``) or a ViewComfy-style flat
key ``"<node id>-inputs-<input>"`` (``{"6-inputs-text": "a cat"}``) that sets any node input
directly. Each value is checked and converted here (INT inputs reach ComfyUI as ``int``) so a
mistake is reported with the form field's label before anything is sent. Image parameters must
already hold the server-side file name (``client`` uploads first).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InputError
from .schema import Param, TabSpec

__all__ = ["PreparedPrompt", "flat_target", "prepare", "random_seed"]

FLAT_KEY = re.compile(r"^(?P<node>.+?)-inputs-(?P<input>.+)$")
SEED_CEILING = 2**32 - 1  # random seeds stay well inside what a browser Number can hold


@dataclass(frozen=True)
class PreparedPrompt:
    prompt: dict[str, dict[str, Any]]
    values: dict[str, Any]  # the final value of every parameter, by name
    seeds: dict[str, int]  # the seed(s) actually used, by parameter name


def flat_target(key: str) -> tuple[str, str] | None:
    """``"6-inputs-text"`` -> ``("6", "text")``; None for other keys."""
    match = FLAT_KEY.match(key)
    return (match["node"], match["input"]) if match else None


def prepare(tab: TabSpec, values: Mapping[str, Any], rng: random.Random | None = None) -> PreparedPrompt:
    """Apply ``values`` to a copy of the tab's workflow; raise ``InputError`` naming the field.

    A parameter left out (or None) takes its default, or a random seed when it randomizes (drawn
    from ``rng``, else the system's). A flat key that is not a parameter's name sets its node input
    as given, unchecked.
    """
    prompt = tab.workflow.copy_nodes()
    final: dict[str, Any] = {}
    seeds: dict[str, int] = {}
    _check_names(tab, values)
    for param in [p for p in tab.params if p.option_of is None]:
        _apply(param, values, prompt, final, seeds, rng)
    for param in tab.params:
        if param.options:
            _keep_chosen_option(param, prompt)
    for param in [p for p in tab.params if p.option_of is not None and _is_chosen(p, prompt)]:
        _apply(param, values, prompt, final, seeds, rng)
    for key, value in values.items():
        target = flat_target(key)
        if target and tab.param(key) is None:
            _apply_flat(prompt, key, target, value)
            final[key] = value
    return PreparedPrompt(prompt, final, seeds)


def _apply(param: Param, values: Mapping[str, Any], prompt: dict[str, dict[str, Any]], final: dict[str, Any],
           seeds: dict[str, int], rng: random.Random | None) -> None:
    if param.required and values.get(param.name) in (None, ""):
        raise InputError(param.label, _required_reason(param))
    value = _value_for(param, values.get(param.name), rng)
    final[param.name] = value
    if param.is_seed:
        seeds[param.name] = value
    for node_id, input_name in param.targets:
        prompt[node_id]["inputs"][input_name] = value


def _keep_chosen_option(combo: Param, prompt: dict[str, dict[str, Any]]) -> None:
    """A DynamicCombo's node inputs become those of its chosen option, as the editor rebuilds its widgets
    when the option changes: other options' inputs are removed (the chosen one's widgets are fields of
    the tab, ``schema._with_option_fields``, set next)."""
    for node_id, combo_name in combo.targets:
        inputs = prompt[node_id]["inputs"]
        brought = dict(next((pairs for key, pairs in combo.options if key == inputs.get(combo_name)), ()))
        for name in [n for n in inputs if n.startswith(f"{combo_name}.") and n not in brought]:
            del inputs[name]


def _is_chosen(param: Param, prompt: dict[str, dict[str, Any]]) -> bool:
    """Whether the option that brings this input is chosen on its node (``Param.option_of``)."""
    assert param.option_of is not None
    combo_name, keys = param.option_of
    node_id = param.targets[0][0]
    return prompt[node_id]["inputs"].get(combo_name) in keys


def _required_reason(param: Param) -> str:
    if not param.is_upload:
        return "is required; give a value"
    return f"is required; upload {'an' if param.kind in ('image', 'audio') else 'a'} {param.kind}"


def _check_names(tab: TabSpec, values: Mapping[str, Any]) -> None:
    for key in values:
        if tab.param(key) is None and flat_target(key) is None:
            known = ", ".join(p.name for p in tab.params) or "(none)"
            raise InputError(key, f"this workflow has no input named {key!r}; its inputs are: {known}, "
                                  "or set any node input with a key like '6-inputs-text'")


def _apply_flat(prompt: dict[str, dict[str, Any]], key: str, target: tuple[str, str], value: Any) -> None:
    node_id, input_name = target
    if node_id not in prompt:
        raise InputError(key, f"the workflow has no node {node_id!r}; node ids are {', '.join(sorted(prompt))}")
    prompt[node_id]["inputs"][input_name] = value


def random_seed(param: Param, rng: random.Random | None = None) -> int:
    """A random seed within the parameter's bounds (and what a browser's Number can hold)."""
    low = int(param.minimum or 0)
    high = int(min(param.maximum if param.maximum is not None else SEED_CEILING, SEED_CEILING))
    return (rng or random.SystemRandom()).randint(low, max(low, high))


def _value_for(param: Param, value: Any, rng: random.Random | None) -> Any:
    if value is None and param.randomize:
        return random_seed(param, rng)
    if value is None:
        value = param.default
    converted = _convert(param, value)
    _check_range(param, converted)
    return converted


def _convert(param: Param, value: Any) -> Any:
    try:
        if param.kind == "int":
            return _to_int(value)
        if param.kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if param.kind == "bool":
            return _to_bool(value)
    except (TypeError, ValueError):
        noun = {"int": "a whole number", "float": "a number", "bool": "true or false"}[param.kind]
        raise InputError(param.label, f"expected {noun}, got {value!r}") from None
    if param.kind == "choice" and param.strict_choices and value not in param.choices:
        shown = ", ".join(map(str, param.choices[:20])) + (" ..." if len(param.choices) > 20 else "")
        raise InputError(param.label, f"{value!r} is not one of: {shown}")
    return "" if value is None and param.kind == "text" else value


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip())


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError


def _check_range(param: Param, value: Any) -> None:
    if param.kind not in ("int", "float"):
        return
    if param.minimum is not None and value < param.minimum:
        raise InputError(param.label, f"value {value} smaller than min of {_num(param.minimum)}")
    if param.maximum is not None and value > param.maximum:
        raise InputError(param.label, f"value {value} bigger than max of {_num(param.maximum)}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
