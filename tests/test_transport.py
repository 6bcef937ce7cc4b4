"""The websocket-client seam (``comfy/transport.py``) against a server that sends the frames a test gives it:
text frames arrive as ``str``, and one that is not UTF-8 ends the socket, as websocket-client's own check did."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from typing import Iterator

import pytest

from comfyui_gradio.comfy.transport import WebSocketClosed, WebSocketConnection, connect_websocket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 5.2) of under 126 bytes."""
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def _answer(listener: socket.socket, payloads: list[bytes]) -> None:
    """Accept one client, complete its handshake, send ``payloads`` as text frames, wait for it to go."""
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"".join(map(_text_frame, payloads)))
        conn.recv(4096)


@pytest.fixture()
def sending() -> Iterator[object]:
    """``sending(payloads)``: a connection to a server that sends those text frames."""
    listener = socket.create_server(("127.0.0.1", 0))
    opened: list[WebSocketConnection] = []

    def connect(payloads: list[bytes]) -> WebSocketConnection:
        threading.Thread(target=_answer, args=(listener, payloads), daemon=True).start()
        opened.append(connect_websocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", headers={}, timeout=5))
        return opened[-1]

    yield connect
    for connection in opened:
        connection.close()
    listener.close()


def test_text_frames_arrive_decoded(sending) -> None:
    ws = sending(['{"type": "status", "data": {"note": "café ✓"}}'.encode()])
    assert ws.recv() == '{"type": "status", "data": {"note": "café ✓"}}'


def test_a_text_frame_that_is_not_utf8_ends_the_socket(sending) -> None:
    ws = sending([b'{"type": "status"}', b'{"note": "caf\xe9"}'])  # Latin-1, not UTF-8
    assert ws.recv() == '{"type": "status"}'
    with pytest.raises(WebSocketClosed, match="cannot decode a text frame: 'utf-8' codec can't decode byte 0xe9"):
        ws.recv()


def test_an_encoded_surrogate_is_refused_too(sending) -> None:
    """RFC 3629 forbids UTF-8 for U+D800..U+DFFF; websocket-client's check refused it, so must ours."""
    ws = sending([b'"\xed\xa0\x80"'])
    with pytest.raises(WebSocketClosed, match="cannot decode a text frame"):
        ws.recv()
