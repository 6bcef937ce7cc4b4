"""A minimal reference client: ComfyUI's ``script_examples/websockets_api_example.py`` pattern.

Connect ``/ws?clientId=...``, ``POST /prompt`` with that client id, read messages until
``executing`` with ``node: null`` for our prompt id, ``GET /history/{id}``, ``GET /view`` every
output image. Nothing else: no error handling, no events, no files written. The example opens one
socket for all its prompts; ``ws_per_job=True`` opens one per job as ``ComfyClient`` does, to show
what that costs.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import websocket


class ReferenceClient:
    def __init__(self, url: str, *, ws_per_job: bool = False) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=120)
        self.ws_per_job = ws_per_job
        self.client_id = uuid.uuid4().hex
        self.ws = None if ws_per_job else self._connect(self.client_id)

    def _connect(self, client_id: str) -> websocket.WebSocket:
        return websocket.create_connection(f"{self.url.replace('http', 'ws', 1)}/ws?clientId={client_id}")

    def run(self, prompt: dict[str, Any]) -> list[bytes]:
        """Queue ``prompt``, wait for it, return the bytes of every output image."""
        client_id = uuid.uuid4().hex if self.ws_per_job else self.client_id
        ws = self._connect(client_id) if self.ws_per_job else self.ws
        assert ws is not None
        try:
            answer = self.http.post("/prompt", json={"prompt": prompt, "client_id": client_id}).json()
            prompt_id = answer["prompt_id"]
            while True:
                frame = ws.recv()
                if isinstance(frame, str):
                    message = json.loads(frame)
                    data = message.get("data", {})
                    if message["type"] == "executing" and data.get("node") is None \
                            and data.get("prompt_id") == prompt_id:
                        break
        finally:
            if self.ws_per_job:
                ws.close()
        history = self.http.get(f"/history/{prompt_id}").json()[prompt_id]
        return [self.http.get("/view", params={"filename": image["filename"], "subfolder": image["subfolder"],
                                               "type": image["type"]}).content
                for output in history["outputs"].values() for image in output.get("images", [])]

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.http.close()
