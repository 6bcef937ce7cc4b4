"""Shared fixtures: the reference data, the node catalogue, and the ComfyUI test double."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from comfyui_gradio.forms.catalog import Catalog
from tests.fake_comfyui import FakeComfyUI
from tests.harness import RunningApp
from tests.paths import OBJECT_INFO, WORKFLOWS



@pytest.fixture(scope="session")
def object_info() -> dict:
    return json.loads(OBJECT_INFO.read_text())


@pytest.fixture(scope="session")
def catalog(object_info: dict) -> Catalog:
    return Catalog(object_info)


@pytest.fixture()
def fake() -> Iterator[FakeComfyUI]:
    """A ComfyUI test double, started for one test."""
    with FakeComfyUI() as server:
        yield server


@pytest.fixture()
def running(fake: FakeComfyUI, tmp_path: Path) -> Iterator[RunningApp]:
    """The app with the shipped workflows, in-process, on the test double."""
    app = RunningApp(fake.url, WORKFLOWS, tmp_path)
    yield app
    app.close()
