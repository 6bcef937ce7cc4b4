"""The one place a tab spec is built: file -> conversion -> schema, markers or an inferred form ->
checks against the server's catalogue -> limits.

``load_tab`` builds one tab (the client and the CLI use it); ``discover_tabs`` builds every tab of a
folder for the app, keeping a broken file as a ``TabLoad`` with its error so the other tabs start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, Problem
from .catalog import Catalog
from .check import tab_findings
from .schema import MAX_SCHEMA_BYTES, Param, TabSpec, build_tab
from .workflow import MAX_WORKFLOW_BYTES

__all__ = ["Limits", "TabLoad", "discover_tabs", "load_tab", "unique_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Guardrails an app puts on every form (for public links) and on the files it reads.

    A workflow or schema file above its cap is refused by its size before it is read, so one huge
    file in ``workflows/`` cannot hold up the other tabs.
    """

    max_batch_size: int | None = None  # cap on every ``batch_size`` input
    max_workflow_bytes: int = MAX_WORKFLOW_BYTES  # 8 MiB; the largest official template is 457 KiB
    max_schema_bytes: int = MAX_SCHEMA_BYTES  # 256 KiB


@dataclass(frozen=True)
class TabLoad:
    """A workflow file found in the folder: its spec, or why it could not be loaded."""

    name: str
    path: Path
    spec: TabSpec | None = None
    error: ConfigError | None = None


def load_tab(workflow_path: Path, catalog: Catalog | None = None, *, limits: Limits | None = None) -> TabSpec:
    """Read a workflow and its schema; raise ``ConfigError`` listing every problem found.

    The tab's notes say what the server lacks (``check``) and whether the form was built from a
    stale or missing node catalogue.
    """
    limits = limits or Limits()
    tab = build_tab(workflow_path, catalog, max_workflow_bytes=limits.max_workflow_bytes,
                    max_schema_bytes=limits.max_schema_bytes)
    notes = tab.notes + tuple(f"On this ComfyUI server: {line}. Pick another under *Advanced*, or add it to ComfyUI."
                  for line in tab_findings(tab, catalog)) + _catalog_notes(catalog)
    return replace(tab, notes=notes, params=tuple(_limited(p, limits) for p in tab.params))


def discover_tabs(folder: Path, catalog: Catalog | None, limits: Limits | None = None,
                  extra: Sequence[Path] = ()) -> list[TabLoad]:
    """Load every ``*.json`` in ``folder``, then the ``extra`` files (e.g. workflows fetched from URLs):
    the tabs by order then name, then the broken files (by name), each kept with its error and logged.
    An extra file whose name a tab already has is refused (tab names are the app's endpoint names)."""
    specs: list[tuple[TabSpec, Path]] = []
    broken: list[TabLoad] = []
    for path in [*sorted(folder.glob("*.json")), *extra]:
        try:
            if any(path.stem == known.stem for _, known in specs):
                raise ConfigError([Problem(str(path), "", f"another workflow already makes a tab named "
                                           f"{path.stem!r}; the file names of workflows must differ")])
            specs.append((load_tab(path, catalog, limits=limits), path))
        except ConfigError as exc:
            log.error("Workflow %s cannot be used:\n%s", path, exc)
            taken = {known.stem for _, known in specs} | {load.name for load in broken}
            broken.append(TabLoad(unique_name(path.stem, taken), path, error=exc))
    specs.sort(key=lambda found: (found[0].order, found[0].name))
    return [TabLoad(spec.name, path, spec=spec) for spec, path in specs] + broken


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... if it is taken (every tab needs its own id)."""
    number = 1
    candidate = name
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _catalog_notes(catalog: Catalog | None) -> tuple[str, ...]:
    if catalog is None:
        return ("ComfyUI was not reachable when the app started, so this form was built from the workflow "
                "alone: choices and limits are missing. Restart the app once ComfyUI is up.",)
    if catalog.stale:
        return ("ComfyUI was not reachable when the app started, so this form uses the node list saved "
                "earlier: choices (models, samplers) may be out of date.",)
    return ()


def _limited(param: Param, limits: Limits) -> Param:
    cap = limits.max_batch_size
    if cap is None or param.kind != "int" or not any(t[1] == "batch_size" for t in param.targets):
        return param
    return replace(param, maximum=min(param.maximum or cap, cap))
