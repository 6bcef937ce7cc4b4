"""The converter against the real frontend: for every judged template, the API prompt the frontend
queued (recorded in headless Chromium on a real ComfyUI, ``tests/data/frontend-<version>/``) and
ours must agree on every node's class_type and inputs, or ours must be refused with a reason.

A version folder (recorded by ``tools/frontend_reference.py``) holds the server's
``object_info.json.gz``, a ``manifest.json`` and pairs of files of the same name: the template in
``workflows/`` and the frontend's prompt in ``prompts/``; a template is judged when the server has
every class it uses.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from comfyui_gradio.errors import ConfigError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.convert import ui_to_api
from tests.paths import DATA

VERSIONS = ("1.58.1", "1.27.10")
TARGET = 0.97  # the share of judged templates converted exactly


@dataclass
class Agreement:
    identical: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # template -> the reason given
    different: dict[str, list[str]] = field(default_factory=dict)  # template -> the node ids that differ

    @property
    def judged(self) -> int:
        return len(self.identical) + len(self.refused) + len(self.different)


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    templates = next((folder / name for name in ("templates", "workflows") if (folder / name).is_dir()), None)
    if templates is None or not (folder / "prompts").is_dir():
        return []
    return [(t, folder / "prompts" / t.name) for t in sorted(templates.glob("*.json"))
            if (folder / "prompts" / t.name).exists()]


def shape(prompt: dict) -> dict[str, tuple[str, dict]]:
    return {str(k): (v.get("class_type"), v.get("inputs")) for k, v in prompt.items()}


def agreement(folder: Path, frontend: str) -> Agreement:
    catalog = Catalog(json.loads(gzip.decompress((folder / "object_info.json.gz").read_bytes())))
    found = Agreement()
    for template, recorded in pairs(folder):
        expected = json.loads(recorded.read_text())
        expected = expected.get("output", expected) if isinstance(expected, dict) else expected
        try:
            ours = shape(ui_to_api(json.loads(template.read_text()), catalog, source=template.name,
                                   frontend=frontend))
        except ConfigError as exc:
            found.refused[template.name] = str(exc)
            continue
        theirs = shape(expected)
        if ours == theirs:
            found.identical.append(template.name)
        else:
            found.different[template.name] = sorted(set(ours) ^ set(theirs)
                                                    | {k for k in set(ours) & set(theirs) if ours[k] != theirs[k]})
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_judged_template_is_converted_as_the_frontend_does_or_refused_with_a_reason(version: str) -> None:
    folder = DATA / f"frontend-{version}"
    if not (folder / "object_info.json.gz").exists() or not pairs(folder):
        pytest.skip(f"no recordings of frontend {version} in {folder}")
    found = agreement(folder, version)
    print(f"frontend {version}: {len(found.identical)} identical of {found.judged} judged, "
          f"{len(found.refused)} refused with a reason, {len(found.different)} silent differences")
    assert found.different == {}
    assert all(reason for reason in found.refused.values())
    assert len(found.identical) >= TARGET * found.judged
