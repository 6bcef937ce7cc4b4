"""The one exception tree of comfyui-gradio.

Every error this package raises is a ``ComfyGradioError``; errors from httpx and
websocket-client are translated where they occur (``comfyui_gradio.client``), so
callers never need to catch a foreign exception::

    ComfyGradioError
    ├── ConfigError            a workflow file, schema or setting is wrong (lists every problem)
    ├── InputError             a value given for a run is wrong (names the field)
    ├── ServerError            ComfyUI could not be talked to properly
    │   ├── ServerUnavailable  it cannot be reached at all (down, wrong URL, proxy)
    │   ├── ProtocolError      it answered something this client cannot read
    │   └── ServiceRefused     a hosted service (RunningHub) refused the call: key, funds, queue; carries code
    ├── PromptRejected         ComfyUI refused the prompt (POST /prompt 400); carries node_errors
    ├── ExecutionFailed        a node failed while running (execution_error)
    ├── JobCancelled           the run was interrupted or removed from the queue
    └── JobTimeout             the run did not finish in the time given

Each message says what went wrong and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ComfyGradioError",
    "ConfigError",
    "ExecutionFailed",
    "InputError",
    "JobCancelled",
    "JobTimeout",
    "Problem",
    "PromptRejected",
    "ProtocolError",
    "ServerError",
    "ServerUnavailable",
    "ServiceRefused",
]


class ComfyGradioError(Exception):
    """Base of every error raised by comfyui-gradio."""


@dataclass(frozen=True)
class Problem:
    """One finding about a configuration file: where it is and what is wrong."""

    source: str  # file path, e.g. "workflows/txt2img.yaml"
    key: str  # dotted key inside it, e.g. "inputs.steps"; "" for the whole file
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.key}" if self.key else self.source
        return f"{where}: {self.reason}"


class ConfigError(ComfyGradioError):
    """A workflow, schema or setting is invalid; ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(ComfyGradioError):
    """A value given for a run is unusable; ``field`` names the form field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ServerError(ComfyGradioError):
    """Talking to the ComfyUI server failed."""


class ServerUnavailable(ServerError):
    """The server (a ComfyUI, or the hosted ``service`` a backend talks to) cannot be reached."""

    def __init__(self, url: str, detail: str, service: str = "ComfyUI") -> None:
        self.url = url
        hint = ("Start ComfyUI (python main.py --listen) or set COMFYUI_URL / --comfyui-url to its address."
                if service == "ComfyUI" else
                "Check its address in COMFYUI_URL and that this machine can reach it, then try again.")
        super().__init__(f"Cannot reach {service} at {url} ({detail}). {hint}")


class ProtocolError(ServerError):
    """The server answered with something this client does not understand."""


class ServiceRefused(ServerError):
    """A hosted service answered with an error code of its own (``code``); the message says what to do."""

    def __init__(self, service: str, code: int, message: str) -> None:
        self.service = service
        self.code = code
        super().__init__(message)


class PromptRejected(ComfyGradioError):
    """POST /prompt was refused. ``field_errors`` maps form fields to messages when known.

    ``node_errors`` is the server's own ``node_errors`` body, untouched.
    """

    def __init__(
        self,
        message: str,
        *,
        node_errors: dict[str, Any] | None = None,
        field_errors: dict[str, str] | None = None,
        error_type: str = "",
    ) -> None:
        self.node_errors = node_errors or {}
        self.field_errors = field_errors or {}
        self.error_type = error_type
        super().__init__(message)


class ExecutionFailed(ComfyGradioError):
    """A node raised while the prompt ran on the server."""

    def __init__(self, node_id: str, node_title: str, message: str, exception_type: str = "") -> None:
        self.node_id = node_id
        self.node_title = node_title
        self.exception_type = exception_type
        self.server_message = message
        where = f"{node_title} (node {node_id})" if node_id else node_title  # a cloud task may not name its node
        super().__init__(f"{where} failed: {exception_type + ': ' if exception_type else ''}{message.strip()}")


class JobCancelled(ComfyGradioError):
    """The run was interrupted or taken off the queue before it finished."""


class JobTimeout(ComfyGradioError):
    """The run did not finish within the time allowed."""
