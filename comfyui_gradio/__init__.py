"""comfyui-gradio: ComfyUI workflows as Gradio tabs, and the Python client behind them.

    from comfyui_gradio import ComfyClient
    with ComfyClient("http://127.0.0.1:8188") as client:
        result = client.run("workflows/txt2img.json", {"prompt": "a cat"})
        print(result.images[0].path, result.seeds)

The package has three layers (each folder's docstring says more): ``forms`` turns workflow files
and schemas into tab specs and prepared prompts (pure), ``comfy`` talks to ComfyUI servers, and
``web`` is the Gradio app; ``compat`` runs ComfyKit and ViewComfy programs on ``comfy``. This module is the
public surface (with ``compat``'s own); everything else may change.
"""

from .comfy.aio import AsyncComfyClient, AsyncComfyPool, AsyncJob
from .comfy.backend import Backend, JobHandle, Log
from .comfy.batch import BatchItem
from .comfy.client import ComfyClient, LocalFile
from .comfy.events import (Cached, JobEvent, LogEntry, LogLines, NodeStarted, Notification, OutputReady, Preview,
                           Progress, Queued, Resubmitted, Started)
from .comfy.hub import SocketHub
from .comfy.job import Job, JobHooks
from .comfy.jobs_api import ServerFeatures
from .comfy.server import JobServer
from .comfy.pool import ComfyPool, Durations, ServerStatus
from .comfy.results import OutputFile, RunResult
from .comfy.transport import WebSocketConnection, WebSocketConnector
from .errors import (ComfyGradioError, ConfigError, ExecutionFailed, InputError, JobCancelled, JobTimeout,
                     Problem, PromptRejected, ProtocolError, ServerError, ServerUnavailable, ServiceRefused)
from .forms.catalog import Catalog, InputSpec
from .forms.prepare import PreparedPrompt
from .forms.loader import Limits, load_tab
from .forms.schema import Output, Param, TabSpec
from .forms.workflow import Workflow

__all__ = [
    "AsyncComfyClient", "AsyncComfyPool", "AsyncJob", "Backend", "BatchItem", "Cached", "Catalog", "ComfyClient",
    "ComfyGradioError", "ComfyPool", "ConfigError", "Durations", "ExecutionFailed", "InputError", "InputSpec", "Job",
    "JobCancelled", "JobEvent", "JobHandle", "JobHooks", "JobServer", "JobTimeout", "Limits", "LocalFile", "Log",
    "LogEntry", "LogLines", "NodeStarted", "Notification", "Output", "OutputFile", "OutputReady", "Param",
    "PreparedPrompt", "Preview", "Problem", "Progress", "PromptRejected", "ProtocolError", "Queued", "Resubmitted",
    "RunResult", "ServerError", "ServerFeatures", "ServerStatus", "ServerUnavailable", "ServiceRefused", "SocketHub",
    "Started", "TabSpec", "V2Backend", "ViewComfyBackend", "WebSocketConnection", "WebSocketConnector", "Workflow",
    "load_tab",
]  # fmt: skip


_LAZY = {"V2Backend": ".comfy.v2", "ViewComfyBackend": ".comfy.viewcomfy"}  # import comfy-sdk only when used


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
