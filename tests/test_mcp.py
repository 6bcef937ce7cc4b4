"""Every tab as an MCP tool (opt in: needs requirements-mcp.txt, which CI installs in .venv-mcp)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from comfyui_gradio.web.app import create_app, launch
from comfyui_gradio.web.config import load_settings
from tests.fake_comfyui import FakeComfyUI
from tests.harness import free_port

pytestmark = pytest.mark.mcp
mcp = pytest.importorskip("mcp", reason="the MCP packages are optional: pip install -r requirements-mcp.txt")


async def tools_and_call(url: str) -> tuple[dict, object]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            result = await session.call_tool("txt2img", {"prompt": "a fox", "steps": 2, "width": 64, "height": 64,
                                                         "seed": 7, "seed_randomize": False,
                                                         "checkpoint": "tiny-random-sd15.safetensors"})
            return tools, result


def test_every_workflow_is_an_mcp_tool_described_by_its_schema(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = load_settings(["--comfyui-url", fake.url, "--outputs", str(tmp_path / "o"), "--port",
                              str(free_port()), "--mcp"], env={"CACHE_DIR": str(tmp_path / "c")})
    app, pool = create_app(settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        tools, result = asyncio.run(tools_and_call(app.local_url + "gradio_api/mcp/"))
    finally:
        app.close()
        pool.close()
    assert sorted(tools) == ["blur", "img2img", "invert", "invert_and_blur", "txt2img"]  # no Cancel endpoints
    txt2img = tools["txt2img"]
    assert txt2img.description == "Describe a picture and Stable Diffusion 1.5 paints it."
    props = txt2img.inputSchema["properties"]
    assert props["prompt"]["description"] == "Prompt (text). What to draw: subject, style, light, mood."
    assert props["steps"]["description"] == "Steps (int, min 1, max 50). More steps: finer detail, slower."
    assert not result.isError and "seed 7" in result.content[0].text
    assert fake.prompts[-1]["prompt"]["6"]["inputs"]["text"] == "a fox"
