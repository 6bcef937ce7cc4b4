"""Shared fixtures: the reference data, the node catalogue, and the ComfyUI test double."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyui_gradio.catalog import Catalog
from tests.replay import REFERENCE

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"


@pytest.fixture(scope="session")
def object_info() -> dict:
    return json.loads((REFERENCE / "object_info.json").read_text())


@pytest.fixture(scope="session")
def catalog(object_info: dict) -> Catalog:
    return Catalog(object_info)
