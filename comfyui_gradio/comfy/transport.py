"""The WebSocket seam: a tiny connector interface and its websocket-client implementation.

``ComfyClient`` opens sockets only through a ``WebSocketConnector`` so tests can script one, and
websocket-client's exceptions are translated here into ``WebSocketClosed`` / ``ServerUnavailable``.

Text frames are checked to be UTF-8 by Python's own decoder, not by websocket-client's: without the
``wsaccel`` extension its check is a Python loop over every byte (``_utils._validate_utf8``): 1 to 2 ms of CPU for the
14 frames of a trivial job, taken from the job's own threads. Both refuse the same bytes.
"""

from __future__ import annotations

from typing import Protocol

import websocket

from ..errors import ServerUnavailable

__all__ = ["WebSocketClosed", "WebSocketConnection", "WebSocketConnector", "connect_websocket"]


class WebSocketClosed(Exception):
    """The socket ended (closed by either side, or the network dropped). Internal to the client."""


class WebSocketConnection(Protocol):
    def send(self, text: str) -> None: ...
    def recv(self) -> str | bytes:
        """The next frame; raises ``WebSocketClosed`` when the socket ends."""
        ...

    def close(self) -> None: ...


class WebSocketConnector(Protocol):
    def __call__(self, url: str, *, headers: dict[str, str], timeout: float) -> WebSocketConnection: ...


class _WebSocketClientConnection:
    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            raise WebSocketClosed(str(exc)) from exc

    def recv(self) -> str | bytes:
        try:
            frame = self._ws.recv()
        except UnicodeDecodeError as exc:  # a text frame that is not UTF-8 (see the module docstring)
            raise WebSocketClosed(f"cannot decode a text frame: {exc}") from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise WebSocketClosed(str(exc) or type(exc).__name__) from exc
        if frame in ("", b""):  # websocket-client returns "" on a close frame
            raise WebSocketClosed("closed by the server")
        return frame

    def close(self) -> None:
        try:
            self._ws.close(timeout=0.5)
        except (websocket.WebSocketException, OSError):
            pass


def connect_websocket(url: str, *, headers: dict[str, str], timeout: float) -> WebSocketConnection:
    """Open ``url`` with websocket-client; errors become ``ServerUnavailable``."""
    try:
        ws = websocket.create_connection(url, header=[f"{k}: {v}" for k, v in headers.items()],
                                         timeout=timeout, enable_multithread=True, skip_utf8_validation=True)
    except (websocket.WebSocketException, OSError) as exc:
        raise ServerUnavailable(url, f"WebSocket: {exc}") from exc
    ws.settimeout(None)
    return _WebSocketClientConnection(ws)
