"""Drop-in layers for programs written against the seed SDKs: change the import, keep the program.

    from comfyui_gradio.compat import ComfyKit           # comfykit 0.1.12's ComfyKit and ExecuteResult
    from comfyui_gradio.compat import ViewComfyClient    # ViewComfy api.py's client; infer/infer_with_logs
    from comfyui_gradio.compat.viewcomfy import infer, infer_with_logs

    comfykit.py   ComfyKit: execute / execute_json on ComfyClient (ComfyUI) and RunningHubClient
    viewcomfy.py  ViewComfy's infer / infer_with_logs on ComfyClient, outputs as base64

Each module's docstring lists where it differs from its seed, and why. This layer sits on ``comfy``
(and ``forms``) and never imports Gradio.
"""

from .comfykit import ComfyKit, ExecuteResult
from .viewcomfy import FileOutput, PromptResult, ViewComfyClient, infer, infer_with_logs

__all__ = ["ComfyKit", "ExecuteResult", "FileOutput", "PromptResult", "ViewComfyClient", "infer",
           "infer_with_logs"]
