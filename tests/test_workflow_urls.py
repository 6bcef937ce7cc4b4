"""WORKFLOW_URLS: workflows fetched at start-up become tabs next to WORKFLOWS_DIR's."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from gradio_client import Client

from comfyui_gradio.errors import ConfigError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.web.app import create_app, load_tabs
from comfyui_gradio.web.config import Settings, load_settings
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port
from tests.paths import WORKFLOWS

EMPTY = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0},
               "_meta": {"title": "Blank, $color.color"}},
         "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "blank", "images": ["1", 0]},
               "_meta": {"title": "$output.picture"}}}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[str]:
    """A plain web server (ephemeral port) serving ``blank.json`` and a copy of ``invert.json``."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "blank.json").write_text(json.dumps(EMPTY))
    (folder / "invert.json").write_text((WORKFLOWS / "invert.json").read_text())
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_workflow_urls_are_read_as_a_list_and_checked() -> None:
    settings = load_settings([], env={"WORKFLOW_URLS": "https://a.example/x.json, https://b.example/y.json\n"})
    assert settings.workflow_urls == ("https://a.example/x.json", "https://b.example/y.json")
    with pytest.raises(ConfigError) as raised:
        load_settings([], env={"WORKFLOW_URLS": "https://a.example/x.json,x.json"})
    assert str(raised.value) == "settings: WORKFLOW_URLS: 'x.json' must start with http:// or https://"


def test_url_tabs_join_the_folder_and_failures_are_broken_tabs(site: str, tmp_path: Path, catalog: Catalog) -> None:
    settings = Settings(workflows_dir=WORKFLOWS, cache_dir=tmp_path / "cache",
                        workflow_urls=(f"{site}/blank.json", f"{site}/gone.json", f"{site}/invert.json"))
    tabs = {load.name: load for load in load_tabs(settings, catalog)}
    assert tabs["blank"].spec is not None and [o.name for o in tabs["blank"].spec.outputs] == ["picture"]
    assert tabs["blank"].path.parent.parent == tmp_path / "cache" / "workflows"
    assert str(tabs["gone"].error) == f"{site}/gone.json: the server answered HTTP 404; check the address"
    assert tabs["invert"].spec is not None and tabs["invert"].path == WORKFLOWS / "invert.json"
    assert str(tabs["invert-2"].error).endswith("another workflow already makes a tab named 'invert'; the file "
                                                "names of workflows must differ")


def test_a_url_tab_runs_in_the_app(site: str, fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = Settings(comfyui_url=fake.url, workflows_dir=WORKFLOWS, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", server_port=free_port(), workflow_urls=(f"{site}/blank.json",))
    app, pool = create_app(settings)
    try:
        app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
                   allowed_paths=[str(settings.output_dir.resolve())])
        client = Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False)
        status, gallery, details = client.predict(color=255, api_name="/blank")
        assert status.startswith("✅ Done in "), status
        assert fake.prompts[-1]["prompt"]["1"]["inputs"]["color"] == 255 and len(gallery) == 1
    finally:
        app.close()
        pool.close()
