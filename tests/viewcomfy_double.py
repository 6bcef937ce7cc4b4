"""A ViewComfy serverless deployment, as its API guide says it answers, for ``httpx.MockTransport``.

What it follows (``ViewComfy/cloud-public``, ``ViewComfy_API/Python/api.py`` and ``README.MD``):
``POST <deployment url>`` with headers ``client_id``/``client_secret``; a multipart form with
``params`` (JSON of flat ``"<nodeId>-inputs-<name>"`` keys), ``logs``, and file parts under the
same kind of keys. With ``logs=true`` the answer is HTTP 201 ``text/event-stream`` whose events
are ``log_message`` and ``error`` (text) and ``prompt_result`` (JSON ``{prompt_id, status,
completed, execution_time_seconds, prompt, outputs: [{filename, content_type, data, size}]}``, data
in base64); any other status carries a JSON body (the guide's client prints it). The guide does not
show the credential refusal; this double answers 401 ``{"detail": ...}``, FastAPI's shape, as the
guide says the API is a FastAPI service.

The "deployment" inverts the first image it is sent (the shipped invert workflow), so a test can
check pixels.
"""

from __future__ import annotations

import base64
import io
import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
from PIL import Image, ImageOps

LOG_LINES = ("got prompt", " 50%|█████     | 1/2 [00:00<00:00, 9.00it/s]",
             "100%|██████████| 2/2 [00:00<00:00, 9.00it/s]", "Prompt executed in 0.05 seconds")


class ViewComfyDouble:
    def __init__(self, client_id: str = "vc-id", client_secret: str = "vc-secret") -> None:
        self.credentials = {"client_id": client_id, "client_secret": client_secret}
        self.requests: list[dict[str, Any]] = []  # what each POST carried: headers, params, logs, files
        self.error: str | None = None  # sent as an ``error`` event instead of a result
        self.outputs: list[dict[str, Any]] | None = None  # replaces the computed outputs

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if {k: request.headers.get(k) for k in self.credentials} != self.credentials:
            return httpx.Response(401, json={"detail": "Invalid client_id or client_secret"})
        fields, files = _form(request)
        self.requests.append({"headers": dict(request.headers), "params": json.loads(fields["params"]),
                              "logs": fields.get("logs"), "files": files})
        if fields.get("logs") != "true":
            return httpx.Response(201, json=self._result(files))
        return httpx.Response(201, headers={"content-type": "text/event-stream"}, content=self._stream(files))

    def _stream(self, files: dict[str, bytes]) -> bytes:
        frames = [f"event: log_message\ndata: {line}\n\n" for line in LOG_LINES]
        if self.error:
            frames.append(f"event: error\ndata: {self.error}\n\n")
        else:
            frames.append(f"event: prompt_result\ndata: {json.dumps(self._result(files))}\n\n")
        return "".join(frames).encode()

    def _result(self, files: dict[str, bytes]) -> dict[str, Any]:
        outputs = self.outputs
        if outputs is None:
            image = ImageOps.invert(Image.open(io.BytesIO(next(iter(files.values())))).convert("RGB"))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            outputs = [{"filename": "invert_00001_.png", "content_type": "image/png", "size": buffer.tell(),
                        "data": base64.b64encode(buffer.getvalue()).decode()}]
        return {"prompt_id": "vc-prompt-1", "status": "success", "completed": True,
                "execution_time_seconds": 0.05, "prompt": {}, "outputs": outputs}


def _form(request: httpx.Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """The text fields and file parts of a multipart/form-data body."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.read())
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is None:
            fields[name] = part.get_content()
        else:
            files[name] = part.get_payload(decode=True)
    return fields, files
