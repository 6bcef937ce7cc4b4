"""Servers the benchmarks start in their own processes: ``python -m benchmarks.serve fake|app|floor ...``.

Each prints its URL on one line, then serves until its stdin is closed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Iterator

FLOOR_IMAGE_SIZE = 512


def serve_fake(args: argparse.Namespace) -> None:
    from tests.fake_comfyui import FakeComfyUI

    fake = FakeComfyUI(step_delay=args.step_delay, node_delay=args.node_delay).start()
    _ready(fake.url)
    fake.stop()


def serve_app(args: argparse.Namespace) -> None:
    """The comfyui-gradio app, as ``tests/test_app.py``'s RunningApp starts it."""
    from comfyui_gradio.web.app import create_app
    from comfyui_gradio.web.config import Settings
    from tests.test_app import free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    settings = Settings(comfyui_url=args.comfyui_url, workflows_dir=Path(args.workflows), output_dir=tmp / "out",
                        cache_dir=tmp / "cache", server_port=free_port())
    app, pool = create_app(settings)
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    _ready(f"http://127.0.0.1:{settings.server_port}/")
    app.close()
    pool.close()


def serve_floor(args: argparse.Namespace) -> None:
    """A bare Gradio app. ``/floor`` returns a ready 512x512 PNG (the floor of any image endpoint);
    ``/shaped`` mimics the app's endpoint shape (txt2img's inputs; status, gallery and JSON outputs;
    ``updates`` streamed status lines) without doing anything, to tell Gradio's cost from the app's."""
    import gradio as gr
    from PIL import Image

    from tests.test_app import free_port

    tmp = Path(tempfile.mkdtemp(prefix="bench_floor_"))
    image = tmp / "ready.png"
    Image.new("RGB", (FLOOR_IMAGE_SIZE, FLOOR_IMAGE_SIZE), (200, 120, 40)).save(image)

    def floor(prompt: str) -> str:
        return str(image)

    def shaped(prompt: str, negative_prompt: str, seed: float, seed_randomize: bool, steps: float, cfg: float,
               width: float, height: float, sampler: str, checkpoint: str, updates: float) -> Iterator[dict]:
        yield {status: "⏳ Sent to ComfyUI…", gallery: []}
        for i in range(int(updates)):
            yield {status: f"▶️ KSampler: step {i} of {int(updates)}"}
        yield {status: "✅ Done", gallery: [(str(image), "image")], info: {"prompt_id": "x", "seed": seed}}

    with gr.Blocks() as app:
        text = gr.Textbox()
        fields = [gr.Textbox(), gr.Textbox(), gr.Number(), gr.Checkbox(), gr.Slider(1, 50), gr.Slider(1, 20),
                  gr.Slider(64, 1024), gr.Slider(64, 1024), gr.Textbox(), gr.Textbox(),
                  gr.Number()]
        out = gr.Image(type="filepath")
        status, gallery, info = gr.Markdown(), gr.Gallery(format="png"), gr.JSON()
        gr.Button().click(floor, [text], [out], api_name="floor")
        gr.Button().click(shaped, fields, [status, gallery, info], api_name="shaped")
    app.queue(default_concurrency_limit=16)
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, quiet=True, allowed_paths=[str(tmp)])
    _ready(f"http://127.0.0.1:{port}/")
    app.close()


def _ready(url: str) -> None:
    print(url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    sub = parser.add_subparsers(dest="kind", required=True)
    fake = sub.add_parser("fake")
    fake.add_argument("--step-delay", type=float, default=0.0)
    fake.add_argument("--node-delay", type=float, default=0.0)
    app = sub.add_parser("app")
    app.add_argument("--comfyui-url", required=True)
    app.add_argument("--workflows", required=True)
    sub.add_parser("floor")
    args = parser.parse_args()
    {"fake": serve_fake, "app": serve_app, "floor": serve_floor}[args.kind](args)


if __name__ == "__main__":
    main()
