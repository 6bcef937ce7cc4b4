"""Shared fixtures: the reference data, the node catalogue, and the ComfyUI test double."""

from __future__ import annotations

import os

# Tests never phone home: Gradio's usage reports (a thread per launch that the interpreter waits for at
# exit) and the Hugging Face hub's telemetry are off before gradio is first imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from comfyui_gradio.forms.catalog import Catalog  # noqa: E402
from comfyui_gradio.forms.loader import load_tab  # noqa: E402
from comfyui_gradio.forms.schema import TabSpec  # noqa: E402
from tests.fake_comfyui import FakeComfyUI  # noqa: E402
from tests.harness import RunningApp, one_test_on  # noqa: E402
from tests.paths import OBJECT_INFO, WORKFLOWS  # noqa: E402



@pytest.fixture(scope="session")
def object_info() -> dict:
    return json.loads(OBJECT_INFO.read_text())


@pytest.fixture(scope="session")
def catalog(object_info: dict) -> Catalog:
    return Catalog(object_info)


@pytest.fixture()
def empty_image(tmp_path: Path, catalog: Catalog) -> TabSpec:
    """EmptyImage -> SaveImage with its size on the form: a model-free job that takes no time."""
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "empty"}}}))
    path.with_suffix(".yaml").write_text("inputs:\n  width: {node: '1', input: width}\n"
                                         "  height: {node: '1', input: height}\n")
    return load_tab(path, catalog)


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


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeComfyUI, RunningApp]]:
    """One test double and one app (shipped workflows) for a whole module: a module opts in by
    overriding ``fake`` and ``running`` with ``shared_fake`` and ``shared_running``."""
    with FakeComfyUI() as server:
        app = RunningApp(server.url, WORKFLOWS, tmp_path_factory.mktemp("app"))
        yield server, app
        app.close()


@pytest.fixture()
def shared_fake(module_app: tuple[FakeComfyUI, RunningApp]) -> Iterator[FakeComfyUI]:
    """The module's test double, idle and with empty request lists; its knobs are put back after."""
    yield from one_test_on(module_app[0])


@pytest.fixture()
def shared_running(module_app: tuple[FakeComfyUI, RunningApp], shared_fake: FakeComfyUI) -> RunningApp:
    """The module's app, called by a new client: its own session, so its own runs and limits."""
    return module_app[1].with_new_client()
