"""comfyui-gradio: ComfyUI workflows as Gradio tabs, and the Python client behind them.

    from comfyui_gradio import ComfyClient
    with ComfyClient("http://127.0.0.1:8188") as client:
        result = client.run("workflows/txt2img.json", {"prompt": "a cat"})
        print(result.images[0].path, result.seeds)
"""

from .client import ComfyClient
from .job import Job
from .pool import ComfyPool
from .errors import (ComfyGradioError, ConfigError, ExecutionFailed, InputError, JobCancelled, JobTimeout,
                     Problem, PromptRejected, ProtocolError, ServerError, ServerUnavailable)
from .events import Cached, JobEvent, NodeStarted, OutputReady, Preview, Progress, Queued, Started
from .results import OutputFile, RunResult
from .schema import Output, Param, TabSpec, load_tab

__all__ = [
    "Cached", "ComfyClient", "ComfyGradioError", "ComfyPool", "ConfigError", "ExecutionFailed", "InputError", "Job",
    "JobCancelled", "JobEvent", "JobTimeout", "NodeStarted", "Output", "OutputFile", "OutputReady", "Param",
    "Preview", "Problem", "Progress", "PromptRejected", "ProtocolError", "Queued", "RunResult", "ServerError",
    "ServerUnavailable", "Started", "TabSpec", "load_tab",
]  # fmt: skip
