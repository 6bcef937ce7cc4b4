"""The README's API examples are generated from the schemas, and the HTTP ones really work."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.web.apidocs import BEGIN, END, api_docs
from tests.paths import OBJECT_INFO, ROOT, WORKFLOWS
from tests.harness import RunningApp, picture


@pytest.fixture()
def running(shared_running: RunningApp) -> RunningApp:
    return shared_running  # one app for the module (conftest's module_app)


def test_readme_shows_the_calls_of_every_shipped_workflow() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == api_docs(WORKFLOWS, catalog=Catalog(json.loads(OBJECT_INFO.read_text()))).strip(), (
        "README is out of date: run python -m comfyui_gradio api-docs --readme README.md "
        "--catalog tests/data/comfyui-0.3.64/object_info.json")


def test_the_documented_http_calls_run_the_workflow(running: RunningApp, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    docs = api_docs(WORKFLOWS, running.url.rstrip("/"))
    script = re.search(r"#### Invert colors.*?```bash\n(.*?)```", docs, re.S).group(1)
    Image.open(picture(tmp_path, (40, 80, 120))).save(tmp_path / "photo.png")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    complete = out.stdout.split("event: complete", 1)[1]
    status, gallery, _ = json.loads(complete.split("data:", 1)[1].strip())
    assert status.startswith("✅ Done")
    image = Image.open(io.BytesIO(httpx.get(gallery[0]["image"]["url"]).content)).convert("RGB")
    assert image.getpixel((2, 2)) == (215, 175, 135)


def test_each_tab_describes_its_parameters_for_mcp_tools(running: RunningApp) -> None:
    from gradio.utils import get_function_description

    fns = {fn.api_name: fn for fn in running.app.fns.values()}
    description, parameters, returns = get_function_description(fns["txt2img"].fn)
    assert fns["txt2img"].api_description == "Describe a picture and Stable Diffusion 1.5 paints it."
    assert parameters["prompt"] == "Prompt (text). What to draw: subject, style, light, mood."
    assert parameters["steps"] == "Steps (int, min 1, max 50). More steps: finer detail, slower."
    assert parameters["seed_randomize"] == "if true, seed is ignored and a random seed is used."
    assert parameters["runs"] == "how many times to run the workflow, 1 to 4; results add up."
    image = get_function_description(fns["invert"].fn)[1]["image"]
    assert image == "Picture (an image file)."
    assert returns == ["A status line, the result images, and the run details (seeds used, timing)."]


def test_mcp_without_its_packages_says_what_to_install(tmp_path: Path) -> None:
    from comfyui_gradio.web.app import launch
    from comfyui_gradio.web.config import load_settings
    from comfyui_gradio.errors import ConfigError

    try:
        import mcp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the optional MCP packages are installed here")
    settings = load_settings(["--mcp", "--outputs", str(tmp_path)], env={})
    with pytest.raises(ConfigError) as caught:
        launch(None, settings)  # type: ignore[arg-type]  # refused before the app is touched
    assert str(caught.value) == ("settings: GRADIO_MCP_SERVER: the MCP server needs optional packages: "
                                 "pip install 'comfyui-gradio[mcp]', or pip install -r requirements-mcp.txt in a "
                                 "checkout (they pin an older pydantic)")
