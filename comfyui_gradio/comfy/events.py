"""ComfyUI's WebSocket vocabulary, parsed once at the edge, and the job events built from it.

Two layers, kept apart (as gradio_client keeps ``ServerMessage`` apart from ``Status``):

* **Wire messages** (``WireMessage``, ``PreviewFrame``, ``TextFrame``) mirror what the server
  sends, as recorded in ``comfyui-reference/PROTOCOL.md`` for 0.3.64, plus what newer servers add
  (``comfyui-reference/TODAY.md``): ``executing.display_node``, ``notification``
  (``{"value", "id"?}``, the frontend's ``zNotificationWsMessage``) and the text frame that starts
  with its prompt id. ``parse_text``, ``parse_binary`` and ``graph_progress`` are the only places
  that know the wire names and layouts.
* **Job events** (``Queued`` … ``OutputReady``) are what a caller of ``Job.events()`` sees:
  one prompt's life in the words of a person waiting for a picture.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from ..errors import ProtocolError

__all__ = [
    "Cached",
    "JobEvent",
    "LogEntry",
    "LogLines",
    "MessageType",
    "NodeStarted",
    "Notification",
    "OutputReady",
    "Preview",
    "PreviewFrame",
    "Progress",
    "Queued",
    "Resubmitted",
    "Started",
    "TextFrame",
    "WireMessage",
    "graph_progress",
    "log_lines",
    "parse_binary",
    "parse_text",
]


class MessageType(str, Enum):
    """The JSON message types a ComfyUI 0.3.x server sends (PROTOCOL.md, "Text messages")."""

    STATUS = "status"
    FEATURE_FLAGS = "feature_flags"
    EXECUTION_START = "execution_start"
    EXECUTION_CACHED = "execution_cached"
    EXECUTING = "executing"
    PROGRESS = "progress"
    PROGRESS_STATE = "progress_state"
    EXECUTED = "executed"
    EXECUTION_SUCCESS = "execution_success"
    EXECUTION_ERROR = "execution_error"
    EXECUTION_INTERRUPTED = "execution_interrupted"
    NOTIFICATION = "notification"  # newer servers and custom nodes: a line for the user
    LOGS = "logs"  # only to a client that subscribed (PATCH /internal/logs/subscribe)
    OTHER = "other"  # anything a newer server or a custom node adds


@dataclass(frozen=True)
class WireMessage:
    """One JSON message. ``prompt_id`` is None where the server omits it (status, a reconnect's executing)."""

    type: MessageType
    data: dict[str, Any]
    raw_type: str = ""

    @property
    def prompt_id(self) -> str | None:
        return self.data.get("prompt_id")

    @property
    def node(self) -> str | None:
        """The node an ``executing``/``executed``/``progress`` message is about (None = prompt done)."""
        node = self.data.get("node", self.data.get("node_id"))
        return None if node is None else str(node)

    @property
    def display_node(self) -> str | None:
        """The node the user sees for ``node``: for a node a graph expansion made at run time, the node
        it came from (``DynamicPrompt.get_display_node_id``); None where the server omits it."""
        node = self.data.get("display_node")
        return None if node is None else str(node)


@dataclass(frozen=True)
class PreviewFrame:
    """A binary preview image: type 1 (legacy, no ids) or type 4 (with metadata)."""

    image: bytes
    mime: str
    prompt_id: str | None = None
    node_id: str | None = None


@dataclass(frozen=True)
class TextFrame:
    """Binary type 3: text sent by a node (e.g. GetImageSize). ``prompt_id`` is known only from a
    server that frames it (see ``parse_binary``)."""

    node_id: str
    text: str
    prompt_id: str | None = None


Wire = Union[WireMessage, PreviewFrame, TextFrame]

_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}


def parse_text(raw: str) -> WireMessage:
    """Parse one text frame. Unknown types become ``MessageType.OTHER``, never an error."""
    try:
        message = json.loads(raw)
        raw_type = str(message["type"])
        data = message.get("data") or {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"ComfyUI sent a WebSocket message that is not valid JSON: {raw[:200]!r}") from exc
    try:
        kind = MessageType(raw_type)
    except ValueError:
        kind = MessageType.OTHER
    return WireMessage(kind, data if isinstance(data, dict) else {"value": data}, raw_type)


def parse_binary(frame: bytes, *, text_prompt_ids: bool = False) -> PreviewFrame | TextFrame | None:
    """Parse one binary frame (4-byte big-endian event type first). Unknown types give None.

    ``text_prompt_ids``: the server said ``supports_progress_text_metadata`` in its feature flags, so
    a text frame is ``u32 len · prompt_id · u32 len · node_id · text`` (server.py
    ``send_progress_text``, when the client sent the flag too), else ``u32 len · node_id · text``.
    The frontend (``clientFeatureFlags``) decides the same way, from the server's flag.
    """
    if len(frame) < 8:
        raise ProtocolError(f"ComfyUI sent a binary WebSocket frame of only {len(frame)} bytes")
    (event,) = struct.unpack(">I", frame[:4])
    if event == 1:
        (image_type,) = struct.unpack(">I", frame[4:8])
        return PreviewFrame(frame[8:], _IMAGE_TYPES.get(image_type, "image/jpeg"))
    if event == 3:
        return _parse_text_frame(frame, text_prompt_ids)
    if event == 4:
        return _parse_metadata_preview(frame)
    return None


def _parse_text_frame(frame: bytes, with_prompt_id: bool) -> TextFrame:
    prompt_id, rest = _prefixed(frame[4:]) if with_prompt_id else (None, frame[4:])
    node_id, text = _prefixed(rest)
    return TextFrame(node_id, text.decode("utf-8", errors="replace"), prompt_id)


def _prefixed(data: bytes) -> tuple[str, bytes]:
    """``u32 big-endian length · that many UTF-8 bytes · rest`` -> (the string, the rest's bytes)."""
    length = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else -1
    if length < 0 or len(data) < 4 + length:
        raise ProtocolError("ComfyUI sent a text frame shorter than its own length field")
    return data[4 : 4 + length].decode("utf-8", errors="replace"), data[4 + length :]


def _parse_metadata_preview(frame: bytes) -> PreviewFrame:
    (meta_len,) = struct.unpack(">I", frame[4:8])
    try:
        meta = json.loads(frame[8 : 8 + meta_len])
    except ValueError as exc:
        raise ProtocolError("ComfyUI sent a preview frame with unreadable metadata") from exc
    return PreviewFrame(
        frame[8 + meta_len :],
        meta.get("image_type", "image/jpeg"),
        prompt_id=meta.get("prompt_id"),
        node_id=None if meta.get("node_id") is None else str(meta["node_id"]),
    )


def graph_progress(message: WireMessage, node_count: int, cached: frozenset[str] = frozenset()) -> float | None:
    """The share (0..1) of a prompt of ``node_count`` nodes that is done, from a ``progress_state``.

    The message carries every node that is not pending (``comfy_execution/progress.py``
    ``WebUIProgressHandler._send_progress_state``): ``{"nodes": {id: {"value", "max", "state"}}}``
    with state ``running`` or ``finished``. Nodes taken from the cache are missing from it but for
    output nodes (recorded in e_caching), so ``cached`` (``execution_cached``'s list) counts as done.
    A finished node counts 1, a running one ``value / max``; nodes a graph expansion adds at run
    time raise the count. None for a message without nodes.
    """
    nodes = message.data.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        return None
    done = sum(_node_share(entry) for entry in nodes.values() if isinstance(entry, dict))
    done += len(cached - set(nodes))
    return min(done / max(node_count, len(nodes), 1), 1.0)


def _node_share(entry: dict[str, Any]) -> float:
    if entry.get("state") == "finished":
        return 1.0
    try:
        value, maximum = float(entry.get("value", 0)), float(entry.get("max", 1))
    except (TypeError, ValueError):
        return 0.0
    return min(max(value / maximum, 0.0), 1.0) if maximum > 0 else 0.0


# ---- job events: what a caller sees ---------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """Waiting on the server. ``position`` 0 means next in line; None when unknown."""

    position: int | None


@dataclass(frozen=True)
class Started:
    """The server began executing this prompt."""


@dataclass(frozen=True)
class Cached:
    """These nodes were reused from the server's cache and will not run."""

    node_ids: tuple[str, ...]


@dataclass(frozen=True)
class NodeStarted:
    """A node began running. ``title`` names the node the user sees: ``display_node_id`` when the
    server says it is another node (a graph expansion made ``node_id`` at run time), else this one."""

    node_id: str
    title: str
    display_node_id: str | None = None


@dataclass(frozen=True)
class Progress:
    """Step ``value`` of ``max`` inside a node (sampler steps, tiles)."""

    node_id: str
    title: str
    value: int
    max: int


@dataclass(frozen=True)
class Preview:
    """A live preview image (JPEG or PNG bytes) from a running node."""

    image: bytes
    mime: str
    node_id: str | None = None


@dataclass(frozen=True)
class OutputReady:
    """A node finished and produced UI output (its raw ``output`` dict, or a text frame)."""

    node_id: str
    title: str
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resubmitted:
    """The prompt was sent again to ``server``: the server it was on lost it before it started
    (ComfyUI restarted, or stopped answering). ``reason`` is the line to show."""

    server: str
    reason: str


@dataclass(frozen=True)
class Notification:
    """A line the server (or a custom node) sent for the user, not tied to a prompt."""

    text: str
    id: str | None = None


@dataclass(frozen=True)
class LogEntry:
    """One write to the server's stdout or stderr: ``time`` as ComfyUI stamps it (ISO 8601, its local
    time), ``text`` as written (a line with its newline, part of one, or a ``\\r`` progress bar)."""

    time: str
    text: str


@dataclass(frozen=True)
class LogLines:
    """New lines of ComfyUI's own log, for a job submitted with ``logs=True``. The log is the whole
    server's (every user's prompts, node errors, file paths), not this job's alone."""

    entries: tuple[LogEntry, ...]

    @property
    def text(self) -> str:
        return "".join(entry.text for entry in self.entries)


def log_lines(data: dict[str, Any]) -> LogLines:
    """A ``logs`` message's ``{"entries": [{"t", "m"}], "size"}`` (``size``, the server's terminal, is
    dropped). ComfyUI 0.3.64: ``app/logger.py`` ``LogInterceptor``, ``api_server/services/terminal_service.py``."""
    entries = data.get("entries") if isinstance(data.get("entries"), list) else []
    return LogLines(tuple(LogEntry(str(e.get("t", "")), str(e.get("m", ""))) for e in entries if isinstance(e, dict)))


JobEvent = Union[Queued, Started, Cached, NodeStarted, Progress, Preview, OutputReady, Resubmitted, Notification,
                 LogLines]
