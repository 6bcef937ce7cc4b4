"""comfyui-gradio: ComfyUI workflows as Gradio tabs, and the Python client behind them.

    from comfyui_gradio import ComfyClient
    with ComfyClient("http://127.0.0.1:8188") as client:
        result = client.run("workflows/txt2img.json", {"prompt": "a cat"})
        print(result.images[0].path, result.seeds)

The package has three layers (each folder's docstring says more): ``forms`` turns workflow files
and schemas into tab specs and prepared prompts (pure), ``comfy`` talks to ComfyUI servers, and
``web`` is the Gradio app. This module is the public surface; everything else may change.
"""

from .comfy.aio import AsyncComfyClient, AsyncComfyPool, AsyncJob
from .comfy.batch import BatchItem
from .comfy.client import ComfyClient, LocalFile
from .comfy.events import (Cached, JobEvent, NodeStarted, OutputReady, Preview, Progress, Queued, Resubmitted,
                           Started)
from .comfy.events import LogEntry, LogLines
from .comfy.job import Job, JobHooks
from .comfy.server import JobServer
from .comfy.pool import ComfyPool, Durations, ServerStatus
from .comfy.results import OutputFile, RunResult
from .comfy.transport import WebSocketConnection, WebSocketConnector
from .errors import (ComfyGradioError, ConfigError, ExecutionFailed, InputError, JobCancelled, JobTimeout,
                     Problem, PromptRejected, ProtocolError, ServerError, ServerUnavailable)
from .forms.catalog import Catalog, InputSpec
from .forms.prepare import PreparedPrompt
from .forms.loader import Limits, load_tab
from .forms.schema import Output, Param, TabSpec
from .forms.workflow import Workflow

__all__ = [
    "AsyncComfyClient", "AsyncComfyPool", "AsyncJob", "BatchItem", "LogEntry", "LogLines",
    "Cached", "Catalog", "ComfyClient", "ComfyGradioError", "ComfyPool", "ConfigError", "Durations",
    "ExecutionFailed", "InputError", "InputSpec", "Job", "JobCancelled", "JobEvent", "JobHooks", "JobServer", "JobTimeout", "Limits", "LocalFile",
    "NodeStarted", "Output", "OutputFile", "OutputReady", "Param", "PreparedPrompt", "Preview", "Problem",
    "Progress", "PromptRejected", "ProtocolError", "Queued", "Resubmitted", "RunResult", "ServerError", "ServerStatus",
    "ServerUnavailable", "Started", "TabSpec", "WebSocketConnection", "WebSocketConnector", "Workflow", "load_tab",
]  # fmt: skip
