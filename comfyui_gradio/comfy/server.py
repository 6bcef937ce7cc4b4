"""What a ``Job`` needs from a server: the narrow interface between following a prompt and HTTP.

``ComfyClient`` satisfies it; a test may hand a job anything else that does. Every method raises
the package's errors (``ServerUnavailable`` when the server cannot be reached, ``ServerError``
otherwise), never httpx's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol

from ..forms.prepare import PreparedPrompt
from ..forms.schema import TabSpec
from .transport import WebSocketConnector

if TYPE_CHECKING:
    from .client import LocalFile
    from .hub import SocketHub

__all__ = ["JobServer", "Tracker"]

Tracker = Literal["websocket", "http"]
"""How a job follows its prompt: the WebSocket (falling back to polling), or polling only."""


class JobServer(Protocol):
    """One ComfyUI server as a job sees it (``ComfyClient`` is the implementation)."""

    url: str
    headers: dict[str, str]
    tracker: Tracker
    timeout: float  # seconds, for opening the socket
    poll_interval: float  # seconds between /history and /queue polls
    connect_ws: WebSocketConnector

    def post_prompt(self, tab: TabSpec, prepared: PreparedPrompt, prompt_id: str,
                    client_id: str) -> dict[str, Any]: ...

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry; None until it has finished."""
        ...

    def queue_state(self) -> dict[str, list[Any]]:
        """``GET /queue``'s shape; items start ``[number, prompt_id, ...]`` (0.3.64 adds the prompt, its
        extra data and outputs; from ``/api/jobs`` there are just those two)."""
        ...

    def socket_hub(self) -> "SocketHub":
        """The server's one WebSocket that jobs join by prompt id (``hub.SocketHub``)."""
        ...

    def interrupt(self, prompt_id: str) -> None: ...

    def delete_from_queue(self, prompt_ids: list[str]) -> None: ...

    def download(self, filename: str, subfolder: str, kind: str) -> bytes: ...

    def upload_all(self, uploads: Mapping[str, "LocalFile"]) -> dict[str, str]:
        """Upload each file; the name the server stored it under, by value key."""
        ...

    def subscribe_logs(self, client_id: str, enabled: bool = True) -> None:
        """Have the server send its log lines to ``client_id``'s socket (or stop)."""
        ...
