"""A test double of a ComfyUI 0.3.64 server (HTTP + WebSocket) for the comfyui-gradio tests, and with
``newer=True`` of a newer one (0.38.1, see "Newer server" below).

The source of truth is the recording of a real ComfyUI 0.3.64 (commit a125cd84) in
``tests/data/comfyui-0.3.64/`` (``tests.paths.RECORDED``) (PROTOCOL.md, transcripts/*.json, object_info.json).
The double says what that server said there.

Faithful (checked against the transcripts, or mirrored from ComfyUI's own logic):

- HTTP routes, status codes, JSON bodies (``json.dumps`` spacing, ``application/json; charset=utf-8``),
  empty 200/400/404 bodies, the 500 ``text/plain`` body for a non-JSON ``POST /prompt``.
- ``POST /prompt`` validation (``validate_prompt`` / ``validate_inputs``) driven by object_info.json:
  invalid_prompt, prompt_no_outputs, no_prompt, required_input_missing, invalid_input_type (numeric strings
  are converted in place), value_smaller_than_min / value_bigger_than_max, value_not_in_list (``> 20`` options
  gives ``(list of length N)``), custom_validation_failed for LoadImage, exception_during_validation (the recorded
  KeyError traceback), exception_during_inner_validation, return_type_mismatch, node_errors with
  dependent_outputs, "one good output + one bad output" -> 200 with node_errors. ``number`` counts every
  request, ``front`` negates it, a client ``prompt_id`` / ``number`` is used.
- A priority queue (heap on ``number``) and one worker thread; ``status`` is broadcast on put, on get, on
  task done and on queue delete/clear (twice when deleting the last pending item, as ComfyUI does).
- Execution order: ComfyUI's ExecutionList (pending order of a DFS from the outputs, ``ux_friendly_pick_node``).
- WebSocket messages, fields and order per node: progress_state(running), executing, [progress_state(update),
  progress / previews], [executed], progress_state(finished); then execution_success, status, executing null.
  Routing: messages of a prompt with client_id X go only to X; without client_id only status, progress_state,
  progress, previews and execution_interrupted are broadcast. One socket per clientId (the newest wins).
- Binary frames: type 1 (legacy preview, progress first), type 4 (with metadata json, frame first) after the
  ``feature_flags`` handshake, type 3 text (GetImageSize).
- Classic cache: outputs keyed by an input signature (class, widget values, ancestors, LoadImage file hash,
  SaveImageWebsocket never cached); entries not used by the new prompt are dropped; cached output nodes re-send
  ``executed`` without ``executing``; ``execution_cached`` lists every cached node of the prompt.
- Interrupt: flag reset at prompt start, checked before each node function and at each progress step
  (KSampler); execution_interrupted then status then executing null; history status_str "error".
- Runtime error: EmptyImage bigger than ``max_pixels`` fails like c_runtime_error (RuntimeError, the alloc
  message, the recorded traceback, current_inputs wrapped in lists, executed, current_outputs).
- /upload/image renaming ("name (1).png"), hash dedup, subfolder escape -> 400, /view 400/403/404 rules,
  ``preview=`` and ``channel=`` parameters, content-disposition.
- Execution messages can reach a socket before the HTTP response of POST /prompt: the handler yields 2 ms
  after enqueuing (a fast prompt then often streams first).
- The server's log (i_logs_subscribe; ComfyUI's ``app/logger.py`` LogInterceptor and
  ``api_server/services/terminal_service.py``): ``PATCH /internal/logs/subscribe {"enabled", "clientId"}`` (empty
  200, 500 without those keys); each log record is one ``logs`` message ``{"entries": [{"t", "m"}], "size"}`` to
  every subscribed client that still has a socket (the others are dropped), ``size`` only on the first one. The
  records are ComfyUI's own: "got prompt", the validation lines and "invalid prompt: {...}", "Processing
  interrupted", "!!! Exception during processing !!! ..." with the traceback, "Prompt executed in 0.01 seconds"
  after the last message of a run, and what /interrupt logs. ``log(message)`` adds one (someone else's, say).

Knobs (attributes, read at use time): step_delay (KSampler seconds per step), node_delay (seconds per node,
cut short by an interrupt), max_pixels (EmptyImage allocation limit), checkpoints, refuse_ws (every WebSocket
upgrade is answered 403 while HTTP still works: a proxy in front that blocks WebSockets, not ComfyUI itself);
``crash()`` stops answering, ``restart(down_for)`` kills the server and starts it again on the same port with an
empty queue and history. Inspection: uploads, prompts, requests, ws_connections, queue_remaining, most_queued
(the high-water mark of the queue), base_dir / input_dir / output_dir / temp_dir. Only the routes the client uses are served (plus ``/history`` and
``/object_info/<class>``). Single dropped sockets are exercised by replaying recordings, not here.

Newer server (``FakeComfyUI(newer=True)``; read in Comfy-Org/ComfyUI ``server.py`` at 002c3fb9 (0.38.1),
``comfy_execution/jobs.py`` at 172be438, ``comfy_api/feature_flags.py`` at 1924b05e, and the
``send_progress_text`` unit test of ``tests-unit`` that pins the text frame; the 0.3.64 behaviour above stays):

- ``GET /api/jobs`` (``get_jobs`` -> ``get_all_jobs``): query ``status`` (comma-separated ``pending``,
  ``in_progress``, ``completed``, ``failed``, ``cancelled``; another value -> 400 ``{"error": "Invalid status
  value(s): ..."}``), ``workflow_id``, ``sort_by`` ``created_at``|``execution_duration``, ``sort_order``
  ``asc``|``desc`` (default desc), ``limit`` (positive, else 400), ``offset`` (negative -> 0) ->
  ``{"jobs": [...], "pagination": {"offset", "limit", "total", "has_more"}}``; running, then pending, then
  history jobs, sorted by ``create_time``.
- ``GET /api/jobs/{id}`` (``get_job``): the history item if finished (``normalize_history_item`` with
  ``include_outputs``: ``id, status, priority, create_time, execution_start_time, execution_end_time,
  execution_error, outputs_count, preview_output, outputs, execution_status, workflow{prompt, extra_data}``;
  status ``completed`` for ``status_str`` success, ``cancelled`` for an error with ``execution_interrupted``,
  else ``failed``), else the queue item (``normalize_queue_item``: ``in_progress`` or ``pending``,
  ``outputs_count`` 0, ``workflow``); 404 ``{"error": "Job not found"}``. ``None`` values are pruned.
- ``POST /api/jobs/{id}/cancel`` -> ``{"cancelled": bool}`` (``cancel_job``: pending -> dequeued, running ->
  interrupted if still running, finished or unknown -> false); ``POST /api/jobs/cancel {"job_ids"}`` -> 400
  ``{"error": "job_ids must be a list"}`` or ``{"error": "job_ids contains invalid id(s)", "invalid_ids"}``
  for a non-canonical id, else ``{"cancelled": any}``.
- ``POST /prompt``: a client ``prompt_id`` that is not a canonical UUID -> 400 ``invalid_prompt_id``
  (``validate_job_id``); ``extra_data.create_time`` (ms) is stored.
- ``/features`` and the socket's ``feature_flags`` answer: ``supports_preview_metadata``,
  ``supports_model_type_tags``, ``max_upload_size``, ``extension.manager.supports_v4``, ``node_replacements``,
  ``assets``, and ``supports_progress_text_metadata`` (asserted by that unit test's ``get_server_features``).
  ``/system_stats`` adds ``comfy_package_versions`` and ``deploy_environment``.
- Text frames (type 3) to a client that sent ``supports_progress_text_metadata: true``:
  ``u32 len, prompt_id, u32 len, node_id, text``; others get the 0.3.64 layout.
- ``/object_info`` entries add ``has_intermediate_output`` and ``search_aliases`` (every class),
  ``essentials_category`` (LoadImage, SaveImage: "Basics") and ``dev_only`` (none here).
- ``/upload/image`` adds ``asset {id, name, asset_hash, size, mime_type, tags}`` while ``assets`` is on
  (``asset_manager.register_upload``); the hash is a stand-in (no blake3 here), the tags a guess.
- ``notify(value, id, sid)`` sends ``{"type": "notification", "data": {"value", "id"?}}`` as a custom node
  would (no core node does; the frontend's ``zNotificationWsMessage`` is ``{value, id?}``).

Simplified (known gaps):

- The HTTP/WebSocket server is a small asyncio implementation (no uvicorn: the venv has neither
  ``websockets`` nor ``wsproto``). HTTP/1.1 with keep-alive; WebSocket without extensions/compression.
- Nodes really executed with Pillow: LoadImage, ImageInvert, ImageBlur, EmptyImage, ImageScale, SaveImage,
  PreviewImage, SaveImageWebsocket, GetImageSize, PreviewAny, Primitive*. The SD1.5 graph is faked:
  CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage, KSampler, VAEEncode, VAEDecode (solid colour
  from a hash of checkpoint, seed, texts, sampler settings and size; img2img blends with the source).
  Any other class: outputs are passed through from the first input of the same type, else NotImplementedError
  (reported as an execution_error).
- Sets in ComfyUI (validation order of inputs, output order, ``executed`` lists) are random per process;
  here inputs are validated in alphabetical order (matches the recording) and lists follow prompt/execution order.
- GetImageSize's text frame goes to the prompt's client (broadcast when there is none).
- Hidden inputs are not listed in ``current_inputs``; tracebacks of other errors are the fake's own.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import email.message
import email.utils
import hashlib
import heapq
import http
import io
import json
import mimetypes
import os
import random
import shutil
import string
import struct
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from PIL import Image, ImageFilter, ImageOps
from PIL.PngImagePlugin import PngInfo

from tests.paths import OBJECT_INFO

DEFAULT_OBJECT_INFO = OBJECT_INFO

MAX_UPLOAD_SIZE = 104857600
FEATURES: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
SERVER_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
PREVIEW_SIZE = 512
BIN_PREVIEW, BIN_TEXT, BIN_PREVIEW_META = 1, 3, 4
TERMINAL_SIZE = {"cols": 80, "rows": 24}  # what ComfyUI without a terminal reports (shutil's fallback)

FEATURES_NEWER: dict[str, Any] = {
    "supports_preview_metadata": True, "supports_model_type_tags": True, "max_upload_size": MAX_UPLOAD_SIZE,
    "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": True,
    "supports_progress_text_metadata": True,
}
JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
SYSTEM_STATS: dict[str, Any] = {
    "system": {
        "os": "posix", "ram_total": 25276502016, "ram_free": 24479645696, "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95",
        "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "pytorch_version": "2.13.0+cpu", "embedded_python": False,
        "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188", "--disable-auto-launch",
                 "--preview-method", "latent2rgb"],
    },
    "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 25276502016,
                 "vram_free": 24479645696, "torch_vram_total": 25276502016, "torch_vram_free": 24479645696}],
}

KEYERROR_TRACEBACK = [
    '  File "ComfyUI/execution.py", line 1010, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n',
    '  File "ComfyUI/execution.py", line 788, in validate_inputs\n    o_class_type = prompt[o_id][\'class_type\']\n                   ~~~~~~^^^^^^\n',
]
ALLOC_TRACEBACK = [
    '  File "ComfyUI/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n                                                              ' + "^" * 163 + "\n",
    '  File "ComfyUI/execution.py", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n                    ' + "^" * 209 + "\n",
    '  File "ComfyUI/execution.py", line 289, in _async_map_node_over_list\n    await process_inputs(input_dict, i)\n',
    '  File "ComfyUI/execution.py", line 277, in process_inputs\n    result = f(**inputs)\n             ^^^^^^^^^^^\n',
    '  File "ComfyUI/nodes.py", line 1877, in generate\n    r = torch.full([batch_size, height, width, 1], ((color >> 16) & 0xFF) / 0xFF)\n        ' + "^" * 73 + "\n",
]

SYSTEM_STATS_NEWER: dict[str, Any] = {
    "system": {**SYSTEM_STATS["system"], "comfyui_version": "0.38.1", "required_frontend_version": "1.58.1",
               "installed_templates_version": "0.11.97", "required_templates_version": "0.11.97",
               "comfy_package_versions": {"comfyui-frontend-package": "1.58.1",
                                          "comfyui-workflow-templates": "0.11.97"},
               "deploy_environment": "local"},
    "devices": SYSTEM_STATS["devices"],
}

Images = list[Image.Image]
NodeResult = tuple[tuple[Any, ...], dict[str, Any] | None]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


@lru_cache(maxsize=4)
def _load_object_info(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------------
# HTTP / WebSocket plumbing (asyncio streams)
# --------------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj).encode(), [("Content-Type", "application/json; charset=utf-8")])


def empty_response(status: int = 200) -> Response:
    return Response(status)


def text_response(text: str, status: int) -> Response:
    return Response(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])


def server_error() -> Response:
    return text_response(SERVER_ERROR_TEXT, 500)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    url = urlsplit(target)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    body = await _read_body(reader, headers)
    return Request(method.upper(), unquote(url.path), query, headers, body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


def _encode_response(resp: Response, keep_alive: bool) -> bytes:
    phrase = http.HTTPStatus(resp.status).phrase
    lines = [f"HTTP/1.1 {resp.status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    lines.append(f"Content-Length: {len(resp.body)}")
    lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    lines.append("Server: FakeComfyUI (ComfyUI 0.3.64 test double)")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class _WebSocket:
    """One accepted server-side WebSocket connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sid: str) -> None:
        self.reader, self.writer, self.sid = reader, writer, sid
        self.closed = False
        self.feature_flags: dict[str, Any] = {}

    async def send(self, opcode: int, payload: bytes) -> bool:
        if self.closed:
            return False
        try:
            self.writer.write(_ws_frame(opcode, payload))
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self.abort()
            return False
        return True

    async def read_message(self) -> tuple[int, bytes] | None:
        opcode, buf = 0, b""
        while True:
            frame = await self._read_frame()
            if frame is None:
                return None
            fin, op, payload = frame
            if op == 8:
                await self.send(8, payload[:2])
                return None
            if op == 9:
                await self.send(10, payload)
                continue
            if op == 10:
                continue
            opcode, buf = (opcode, buf + payload) if op == 0 else (op, payload)
            if fin:
                return opcode, buf

    async def _read_frame(self) -> tuple[bool, int, bytes] | None:
        try:
            b1, b2 = await self.reader.readexactly(2)
            n = b2 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            mask = await self.reader.readexactly(4) if b2 & 0x80 else b""
            payload = await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return bool(b1 & 0x80), b1 & 0x0F, _unmask(payload, mask) if mask else payload

    def abort(self) -> None:
        self.closed = True
        try:
            self.writer.transport.abort()
        except Exception:  # noqa: BLE001 - already gone
            pass


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split a multipart/form-data body into text fields and file parts {name: (filename, bytes)}."""
    holder = email.message.Message()
    holder["content-type"] = content_type
    boundary = holder.get_param("boundary")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not boundary or not isinstance(boundary, str):
        return fields, files
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        _add_part(head.decode("utf-8", "replace"), data.removesuffix(b"\r\n"), fields, files)
    return fields, files


def _add_part(head: str, data: bytes, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> None:
    part = email.message.Message()
    for line in head.split("\r\n"):
        if ":" in line:
            key, value = line.split(":", 1)
            part[key.strip()] = value.strip()
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        return
    filename = part.get_filename()
    if filename is not None:
        files.setdefault(name, (filename, data))
    else:
        fields.setdefault(name, data.decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------------
# Validation (mirrors execution.validate_prompt / validate_inputs of ComfyUI 0.3.64)
# --------------------------------------------------------------------------------------------------


class _MissingLinkedNode(KeyError):
    """KeyError raised on prompt[o_id] for a link to a node that is not in the prompt."""


def _error(type_: str, message: str, details: str, extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


def _types_match(received: Any, expected: Any) -> bool:
    if not received != expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _spec_parts(spec: list[Any]) -> tuple[Any, dict[str, Any]]:
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0], extra


def _convert(input_type: Any, value: Any) -> Any:
    if input_type == "INT":
        return int(value)
    if input_type == "FLOAT":
        return float(value)
    if input_type == "STRING":
        return str(value)
    if input_type == "BOOLEAN":
        return bool(value)
    return value


def _range_or_combo_error(name: str, value: Any, input_type: Any, extra: dict[str, Any]) -> dict[str, Any] | None:
    config = [input_type, extra]
    if "min" in extra and value < extra["min"]:
        return _error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name,
                      {"input_name": name, "input_config": config, "received_value": value})
    if "max" in extra and value > extra["max"]:
        return _error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name,
                      {"input_name": name, "input_config": config, "received_value": value})
    if isinstance(input_type, list) or input_type == "COMBO":
        options = extra.get("options", []) if input_type == "COMBO" else input_type
        if value not in options:
            listing, shown = (f"(list of length {len(options)})", None) if len(options) > 20 else (str(options), config)
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}",
                          {"input_name": name, "input_config": shown, "received_value": value})
    return None


class _Validator:
    """Validates one API-format prompt the way ComfyUI does, using object_info as the class registry."""

    CUSTOM_INPUTS = {"LoadImage": ("image",)}

    def __init__(self, prompt: dict[str, Any], info: Callable[[str], dict[str, Any] | None],
                 custom: Callable[[str, str, Any], Any]) -> None:
        self.prompt, self.info, self.custom = prompt, info, custom
        self.log: list[str] = []  # what validate_prompt logs, in order
        self.validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}
        self.visiting: set[str] = set()

    def run(self, partial: list[str] | None) -> tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]:
        outputs: list[str] = []
        for node_id, node in self.prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return False, _error("invalid_prompt", "Cannot execute because a node is missing the class_type "
                                     "property.", f"Node ID '#{node_id}'"), [], {}
            info = self.info(node["class_type"])
            if info is None:
                return False, _error("invalid_prompt", f"Cannot execute because node {node['class_type']} does "
                                     "not exist.", f"Node ID '#{node_id}'"), [], {}
            if info.get("output_node") is True and (partial is None or node_id in partial):
                outputs.append(node_id)
        if not outputs:
            return False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
        # ComfyUI keeps the outputs in a set (random order); reverse prompt order matches b3/b4.
        return self._check_outputs(outputs[::-1])

    def _check_outputs(self, outputs: list[str]) -> tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]:
        good: list[str] = []
        failed: list[tuple[str, list[dict[str, Any]]]] = []
        node_errors: dict[str, Any] = {}
        for out in outputs:
            valid, reasons = self._validate_output(out)
            if valid:
                good.append(out)
                continue
            failed.append((out, reasons))
            self.log.append(f"Failed to validate prompt for output {out}:")
            if reasons:
                self.log += ["* (prompt):", *(f"  - {r['message']}: {r['details']}" for r in reasons)]
            self._collect_node_errors(out, node_errors)
            self.log.append("Output will be ignored")
        if not good:
            details = "\n".join(f"{e['message']}: {e['details']}" for _, rs in failed for e in rs)
            return False, _error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                 details), [], node_errors
        return True, None, good, node_errors

    def _validate_output(self, out: str) -> tuple[bool, list[dict[str, Any]]]:
        try:
            valid, reasons, _ = self.validate(out)
            return valid, reasons
        except Exception as ex:  # noqa: BLE001 - reported like ComfyUI does
            tb = KEYERROR_TRACEBACK if isinstance(ex, _MissingLinkedNode) else traceback.format_tb(ex.__traceback__)
            etype = "KeyError" if isinstance(ex, KeyError) else _full_type_name(type(ex))
            reasons = [_error("exception_during_validation", "Exception when validating node", str(ex),
                              {"exception_type": etype, "traceback": tb})]
            self.validated[out] = (False, reasons, out)
            return False, reasons

    def _collect_node_errors(self, out: str, node_errors: dict[str, Any]) -> None:
        for node_id, (valid, reasons, _) in self.validated.items():
            if valid is not True and reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": reasons, "dependent_outputs": [],
                                            "class_type": self.prompt[node_id]["class_type"]}
                    self.log += [f"* {self.prompt[node_id]['class_type']} {node_id}:",
                                 *(f"  - {r['message']}: {r['details']}" for r in reasons)]
                node_errors[node_id]["dependent_outputs"].append(out)

    def validate(self, uid: str) -> tuple[bool, list[dict[str, Any]], str]:
        if uid in self.validated:
            return self.validated[uid]
        if uid in self.visiting:
            raise RecursionError("maximum recursion depth exceeded")
        self.visiting.add(uid)
        try:
            result = self._validate_node(uid)
        finally:
            self.visiting.discard(uid)
        self.validated[uid] = result
        return result

    def _validate_node(self, uid: str) -> tuple[bool, list[dict[str, Any]], str]:
        node = self.prompt[uid]
        inputs, class_type = node["inputs"], node["class_type"]
        info = self.info(class_type)
        if info is None:
            raise KeyError(class_type)
        spec_all = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        required = info["input"].get("required", {})
        custom_inputs = self.CUSTOM_INPUTS.get(class_type, ())
        errors: list[dict[str, Any]] = []
        valid = True
        for name in sorted(spec_all):
            input_type, extra = _spec_parts(spec_all[name])
            if name not in inputs:
                if name in required:
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         {"input_name": name}))
                continue
            if isinstance(inputs[name], list):
                valid = self._check_link(uid, name, input_type, extra, errors) and valid
            else:
                self._check_widget(inputs, name, input_type, extra, name in custom_inputs, errors)
        errors += self._custom_errors(class_type, inputs, custom_inputs)
        return (not errors and valid), errors, uid

    def _check_link(self, uid: str, name: str, input_type: Any, extra: dict[str, Any],
                    errors: list[dict[str, Any]]) -> bool:
        val = self.prompt[uid]["inputs"][name]
        config = [input_type, extra]
        if len(val) != 2:
            errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, "
                                 "slot_index]", name, {"input_name": name, "input_config": config,
                                                       "received_value": val}))
            return True
        o_id = val[0]
        if not isinstance(o_id, str) or o_id not in self.prompt:
            raise _MissingLinkedNode(o_id)
        o_info = self.info(self.prompt[o_id]["class_type"])
        if o_info is None:
            raise KeyError(self.prompt[o_id]["class_type"])
        received = o_info["output"][val[1]]
        if not _types_match(received, input_type):
            errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                 f"{name}, received_type({received}) mismatch input_type({input_type})",
                                 {"input_name": name, "input_config": config, "received_type": received,
                                  "linked_node": val}))
            return True
        return self._validate_inner(o_id, name, config, val)

    def _validate_inner(self, o_id: str, name: str, config: list[Any], val: list[Any]) -> bool:
        try:
            return self.validate(o_id)[0] is not False
        except Exception as ex:  # noqa: BLE001 - reported like ComfyUI does
            self.validated[o_id] = (False, [_error(
                "exception_during_inner_validation", "Exception when validating inner node", str(ex),
                {"input_name": name, "input_config": config, "exception_message": str(ex),
                 "exception_type": _full_type_name(type(ex)), "traceback": traceback.format_tb(ex.__traceback__),
                 "linked_node": val})], o_id)
            return False

    @staticmethod
    def _check_widget(inputs: dict[str, Any], name: str, input_type: Any, extra: dict[str, Any],
                      custom: bool, errors: list[dict[str, Any]]) -> None:
        val = inputs[name]
        if isinstance(val, dict) and "__value__" in val:
            val = inputs[name] = val["__value__"]
        try:
            val = inputs[name] = _convert(input_type, val)
        except Exception as ex:  # noqa: BLE001 - reported like ComfyUI does
            errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                                 f"{name}, {val}, {ex}", {"input_name": name, "input_config": [input_type, extra],
                                                          "received_value": val, "exception_message": str(ex)}))
            return
        if not custom:
            err = _range_or_combo_error(name, val, input_type, extra)
            if err is not None:
                errors.append(err)

    def _custom_errors(self, class_type: str, inputs: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
        errors = []
        for name in names:
            if name not in inputs or _is_link(inputs[name]):
                continue
            result = self.custom(class_type, name, inputs[name])
            if result is not True:
                details = name if result is False else f"{name} - {result}"
                errors.append(_error("custom_validation_failed", "Custom validation failed for node", details,
                                     {"input_name": name}))
        return errors


# --------------------------------------------------------------------------------------------------
# Execution order (mirrors comfy_execution.graph.ExecutionList)
# --------------------------------------------------------------------------------------------------


class _ExecutionList:
    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool],
                 is_output: Callable[[str], bool]) -> None:
        self.prompt, self.is_cached, self.is_output = prompt, is_cached, is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}

    def add_node(self, node_id: str) -> None:
        stack, links = [node_id], []
        while stack:
            uid = stack.pop()
            if uid in self.pending:
                continue
            self.pending[uid], self.block_count[uid], self.blocking[uid] = True, 0, {}
            for value in self.prompt[uid]["inputs"].values():
                if _is_link(value):
                    if not self.is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], uid))
        for src, dst in links:
            if not self.is_cached(src):
                self.add_node(src)
                if dst not in self.blocking[src]:
                    self.blocking[src][dst] = True
                    self.block_count[dst] += 1

    def is_empty(self) -> bool:
        return not self.pending

    def stage(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise RuntimeError("Dependency cycle detected")
        return self._pick(ready)

    def _pick(self, ready: list[str]) -> str:
        for node_id in ready:
            if self.is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self.is_output(b) for b in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(self.is_output(b2) for b in self.blocking[node_id] for b2 in self.blocking[b]):
                return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        self.pending.pop(node_id, None)
        for blocked in self.blocking.pop(node_id, {}):
            self.block_count[blocked] -= 1


# --------------------------------------------------------------------------------------------------
# Per-prompt execution
# --------------------------------------------------------------------------------------------------


class _Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException."""


class _NodeFailure(Exception):
    """A runtime failure reported with a fixed exception type and traceback (as recorded)."""

    def __init__(self, message: str, exc_type: str, tb: list[str]) -> None:
        super().__init__(message)
        self.exc_type, self.tb = exc_type, tb


def _format_value(x: Any) -> Any:
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    if isinstance(x, list) and x and all(isinstance(i, Image.Image) for i in x):
        return f"<IMAGE batch={len(x)} size={x[0].width}x{x[0].height}>"
    return str(x)


class _ProgressState:
    """The progress registry behind `progress_state` messages."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = {"value": 0.0, "max": 1.0, "state": "running"}

    def update(self, node_id: str, value: Any, maximum: Any) -> None:
        entry = self.nodes.setdefault(node_id, {"value": 0, "max": 1, "state": "running"})
        entry.update(value=value, max=maximum, state="running")

    def finish(self, node_id: str) -> None:
        entry = self.nodes.setdefault(node_id, {"value": 0, "max": 1, "state": "pending"})
        entry.update(value=entry["max"], state="finished")

    def message(self) -> dict[str, Any]:
        nodes = {nid: {**e, "node_id": nid, "prompt_id": self.prompt_id, "display_node_id": nid,
                       "parent_node_id": None, "real_node_id": nid} for nid, e in self.nodes.items()}
        return {"prompt_id": self.prompt_id, "nodes": nodes}


class _Run:
    """Executes one queue item on the worker thread, emitting messages like PromptExecutor."""

    def __init__(self, fake: FakeComfyUI, item: tuple[Any, ...]) -> None:
        self.fake = fake
        self.number, self.prompt_id, self.prompt, self.extra, self.outputs = item[:5]
        self.client_id: str | None = self.extra.get("client_id")
        self.messages: list[list[Any]] = []
        self.executed: list[str] = []
        self.success = True
        self.progress = _ProgressState(self.prompt_id)
        self.sigs: dict[str, str] = {}
        self.current_inputs: dict[str, Any] | None = None

    # -- messaging --------------------------------------------------------------------------------
    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": _now_ms()}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.fake._post(event, data, self.client_id)

    def send(self, event: str | int, data: Any) -> None:
        self.fake._post(event, data, self.client_id)

    def send_to_client(self, event: str, data: Any) -> None:
        if self.client_id is not None:
            self.fake._post(event, data, self.client_id)

    def send_progress_state(self) -> None:
        self.send("progress_state", self.progress.message())

    # -- main loop --------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        self.add_message("execution_start", {"prompt_id": self.prompt_id}, False)
        self.sigs = self.fake._prepare_cache(self.prompt)
        cached = [nid for nid in self.prompt if self.is_cached(nid)]
        self.add_message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id}, False)
        elist = _ExecutionList(self.prompt, self.is_cached, self.is_output)
        for node_id in self.outputs:
            elist.add_node(node_id)
        while not elist.is_empty():
            node_id = elist.stage()
            try:
                self.run_node(node_id)
            except Exception as ex:  # noqa: BLE001 - every failure becomes a ws message
                self.success = False
                self.report_failure(node_id, ex)
                break
            elist.complete(node_id)
        else:
            self.add_message("execution_success", {"prompt_id": self.prompt_id}, False)
        self.fake._last_node_id = None
        return self.history_outputs()

    def is_cached(self, node_id: str) -> bool:
        return self.sigs.get(node_id) in self.fake._cache

    def is_output(self, node_id: str) -> bool:
        info = self.fake._class_info(self.prompt[node_id]["class_type"])
        return bool(info and info.get("output_node") is True)

    def run_node(self, node_id: str) -> None:
        if self.is_cached(node_id):
            self.replay_cached(node_id)
            return
        self.progress.start(node_id)
        self.send_progress_state()
        if self.client_id is not None:
            self.fake._last_node_id = node_id
        self.send_to_client("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
        self.current_inputs = self.gather_inputs(node_id)
        self.check_interrupt()
        self.sleep(self.fake.node_delay)
        outputs, ui = self.call_node(node_id, self.current_inputs)
        self.store(node_id, outputs, ui)
        self.progress.finish(node_id)
        self.send_progress_state()
        self.executed.append(node_id)

    def replay_cached(self, node_id: str) -> None:
        ui = self.fake._ui_cache.get(self.sigs[node_id]) or {}
        self.send_to_client("executed", {"node": node_id, "display_node": node_id, "output": ui.get("output"),
                                         "prompt_id": self.prompt_id})
        self.progress.finish(node_id)
        self.send_progress_state()

    def gather_inputs(self, node_id: str) -> dict[str, Any]:
        values = {}
        for name, value in self.prompt[node_id]["inputs"].items():
            if _is_link(value):
                values[name] = self.fake._cache[self.sigs[value[0]]][value[1]]
            else:
                values[name] = value
        return values

    def call_node(self, node_id: str, inputs: dict[str, Any]) -> NodeResult:
        class_type = self.prompt[node_id]["class_type"]
        impl = NODE_IMPLEMENTATIONS.get(class_type)
        if impl is None:
            return _passthrough(self, node_id, class_type, inputs)
        return impl(self, node_id, **inputs)

    def store(self, node_id: str, outputs: tuple[Any, ...], ui: dict[str, Any] | None) -> None:
        sig = self.sigs[node_id]
        if ui:
            meta = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
            self.fake._ui_cache[sig] = {"meta": meta, "output": ui}
            self.send_to_client("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                             "prompt_id": self.prompt_id})
        self.fake._cache[sig] = outputs

    def report_failure(self, node_id: str, ex: Exception) -> None:
        base = {"prompt_id": self.prompt_id, "node_id": node_id,
                "node_type": self.prompt[node_id]["class_type"], "executed": list(self.executed)}
        if isinstance(ex, _Interrupted):
            self.fake.log("Processing interrupted")
            self.add_message("execution_interrupted", base, True)
            return
        if isinstance(ex, _NodeFailure):
            etype, tb = ex.exc_type, ex.tb
        else:
            etype, tb = _full_type_name(type(ex)), traceback.format_tb(ex.__traceback__)
        self.fake.log(f"!!! Exception during processing !!! {ex}")
        self.fake.log("Traceback (most recent call last):\n" + "".join(tb) + f"{etype}: {ex}\n")
        inputs = {k: [_format_value(v)] for k, v in (self.current_inputs or {}).items()}
        self.add_message("execution_error", {**base, "exception_message": f"{ex}\n", "exception_type": etype,
                                             "traceback": tb, "current_inputs": inputs,
                                             "current_outputs": list(self.prompt)}, False)

    def history_outputs(self) -> dict[str, Any]:
        outputs, meta = {}, {}
        for node_id in self.prompt:
            entry = self.fake._ui_cache.get(self.sigs.get(node_id, ""))
            if entry is not None:
                outputs[node_id], meta[node_id] = entry["output"], entry["meta"]
        return {"outputs": outputs, "meta": meta}

    # -- helpers for node implementations ------------------------------------------------------------
    def check_interrupt(self) -> None:
        if self.fake._interrupt.is_set():
            raise _Interrupted("Processing interrupted")

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.fake._interrupt.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.01))

    def report_progress(self, node_id: str, value: int, total: int,
                        preview: tuple[str, Image.Image, int | None] | None = None) -> None:
        """comfy.utils.ProgressBar hook: interrupt check, progress_state, progress and preview frames."""
        self.check_interrupt()
        self.progress.update(node_id, value, total)
        self.send_progress_state()
        frame = _encode_preview(*preview) if preview else None
        metadata = self.client_id is not None and self.fake._supports_metadata(self.client_id)
        if frame and metadata:
            self.send(BIN_PREVIEW_META, self._metadata_frame(node_id, frame))
        self.send("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id})
        if frame and not metadata:
            self.send(BIN_PREVIEW, struct.pack(">I", 1 if frame[0] == "JPEG" else 2) + frame[1])

    def _metadata_frame(self, node_id: str, frame: tuple[str, bytes]) -> bytes:
        meta = json.dumps({"node_id": node_id, "prompt_id": self.prompt_id, "display_node_id": node_id,
                           "parent_node_id": None, "real_node_id": node_id,
                           "image_type": "image/jpeg" if frame[0] == "JPEG" else "image/png"}).encode()
        return struct.pack(">I", len(meta)) + meta + frame[1]

    def send_text(self, node_id: str, text: str) -> None:
        nid = node_id.encode()
        frame = struct.pack(">I", len(nid)) + nid + text.encode()
        if self.fake.newer and self.client_id is not None and self.fake._client_flag(
                self.client_id, "supports_progress_text_metadata"):
            pid = self.prompt_id.encode()
            frame = struct.pack(">I", len(pid)) + pid + frame
        self.send(BIN_TEXT, frame)


def _encode_preview(fmt: str, image: Image.Image, max_size: int | None) -> tuple[str, bytes]:
    if max_size is not None:
        image = ImageOps.contain(image, (max_size, max_size))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt, quality=95, compress_level=1)
    return fmt, buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Node implementations: fn(run, node_id, **inputs) -> (outputs tuple, ui dict or None)
# --------------------------------------------------------------------------------------------------


def _rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def _node_empty_image(run: _Run, node_id: str, width: int, height: int, batch_size: int = 1,
                      color: int = 0, **_: Any) -> NodeResult:
    if width * height * batch_size > run.fake.max_pixels:
        nbytes = width * height * batch_size * 4
        raise _NodeFailure(f"[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           f"memory: you tried to allocate {nbytes} bytes. Error code 12 (Cannot allocate memory)",
                           "RuntimeError", ALLOC_TRACEBACK)
    return ([Image.new("RGB", (width, height), _rgb(color)) for _ in range(batch_size)],), None


def _node_load_image(run: _Run, node_id: str, image: str, **_: Any) -> NodeResult:
    path = run.fake._annotated_path(image, "input")
    if path is None or not path.is_file():
        raise FileNotFoundError(f"[Errno 2] No such file or directory: '{image}'")
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        rgb = img.convert("RGB")
        has_alpha = "A" in img.getbands()
        mask = ImageOps.invert(img.getchannel("A")) if has_alpha else Image.new("L", (64, 64), 0)
    return ([rgb], [mask]), None


def _node_invert(run: _Run, node_id: str, image: Images, **_: Any) -> NodeResult:
    return ([ImageOps.invert(i.convert("RGB")) for i in image],), None


def _node_blur(run: _Run, node_id: str, image: Images, blur_radius: int = 1, sigma: float = 1.0,
               **_: Any) -> NodeResult:
    if blur_radius == 0:
        return (image,), None
    return ([i.filter(ImageFilter.GaussianBlur(radius=sigma)) for i in image],), None


_RESAMPLE = {"nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC,
             "lanczos": Image.Resampling.LANCZOS}


def _scale(img: Image.Image, method: str, width: int, height: int, crop: str) -> Image.Image:
    if width == 0 and height == 0:
        return img
    width = width or max(1, round(img.width * height / img.height))
    height = height or max(1, round(img.height * width / img.width))
    if crop == "center":
        return ImageOps.fit(img, (width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))
    return img.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))


def _node_scale(run: _Run, node_id: str, image: Images, upscale_method: str = "nearest-exact",
                width: int = 512, height: int = 512, crop: str = "disabled", **_: Any) -> NodeResult:
    return ([_scale(i, upscale_method, width, height, crop) for i in image],), None


def _save_target(base: Path, prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
    """folder_paths.get_save_image_path: (folder, file prefix, next counter, subfolder)."""
    prefix = prefix.replace("%width%", str(width)).replace("%height%", str(height))
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    folder = Path(os.path.abspath(os.path.join(base, subfolder)))
    if os.path.commonpath((str(base), str(folder))) != str(base):
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed."
                        f"\n full_output_folder: {folder}\n         output_dir: {base}")
    folder.mkdir(parents=True, exist_ok=True)
    counters = [_file_counter(name, filename) for name in os.listdir(folder)]
    return folder, filename, max([c for c in counters if c is not None], default=0) + 1, subfolder


def _file_counter(name: str, prefix: str) -> int | None:
    head, rest = name[:len(prefix) + 1], name[len(prefix) + 1:]
    if head[:-1] != prefix or head[-1:] != "_":
        return None
    try:
        return int(rest.split("_")[0])
    except ValueError:
        return 0


def _save_images(run: _Run, images: Images, prefix: str, kind: str) -> NodeResult:
    base = run.fake.output_dir if kind == "output" else run.fake.temp_dir
    folder, filename, counter, subfolder = _save_target(base, prefix, images[0].width, images[0].height)
    info = PngInfo()
    info.add_text("prompt", json.dumps(run.prompt))
    for key, value in (run.extra.get("extra_pnginfo") or {}).items():
        info.add_text(key, json.dumps(value))
    results = []
    for batch_number, img in enumerate(images):
        file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        img.save(folder / file, pnginfo=info, compress_level=4 if kind == "output" else 1)
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return (), {"images": results}


def _node_save(run: _Run, node_id: str, images: Images, filename_prefix: str = "ComfyUI", **_: Any) -> NodeResult:
    return _save_images(run, images, filename_prefix, "output")


def _node_preview(run: _Run, node_id: str, images: Images, **_: Any) -> NodeResult:
    return _save_images(run, images, "ComfyUI" + run.fake._temp_prefix(node_id), "temp")


def _node_save_ws(run: _Run, node_id: str, images: Images, **_: Any) -> NodeResult:
    for step, img in enumerate(images):
        run.report_progress(node_id, step, len(images), ("PNG", img, None))
    return (), None


def _node_get_size(run: _Run, node_id: str, image: Images, **_: Any) -> NodeResult:
    width, height, batch = image[0].width, image[0].height, len(image)
    run.send_text(node_id, f"width: {width}, height: {height}\n batch size: {batch}")
    return (width, height, batch), None


def _node_preview_any(run: _Run, node_id: str, source: Any = None, **_: Any) -> NodeResult:
    if isinstance(source, str):
        value = source
    elif isinstance(source, (int, float, bool)):
        value = str(source)
    elif source is None:
        value = "None"
    else:
        try:
            value = json.dumps(source)
        except (TypeError, ValueError):
            value = _format_value(source)
    return (), {"text": [value]}


def _node_primitive(run: _Run, node_id: str, value: Any = None, **_: Any) -> NodeResult:
    return (value,), None


def _node_checkpoint(run: _Run, node_id: str, ckpt_name: str, **_: Any) -> NodeResult:
    if ckpt_name not in run.fake.checkpoints:
        raise FileNotFoundError(f"Model in folder 'checkpoints' with filename '{ckpt_name}' not found.")
    return ({"kind": "MODEL", "ckpt": ckpt_name}, {"kind": "CLIP", "ckpt": ckpt_name},
            {"kind": "VAE", "ckpt": ckpt_name}), None


def _node_clip_encode(run: _Run, node_id: str, text: str, clip: dict[str, Any], **_: Any) -> NodeResult:
    return ([{"text": text, "ckpt": clip.get("ckpt")}],), None


def _node_empty_latent(run: _Run, node_id: str, width: int = 512, height: int = 512, batch_size: int = 1,
                       **_: Any) -> NodeResult:
    return ({"width": width, "height": height, "batch_size": batch_size, "fingerprint": "empty"},), None


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _latent_colour(fingerprint: str, index: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{fingerprint}:{index}".encode()).digest()
    return digest[0], digest[1], digest[2]


def _node_vae_encode(run: _Run, node_id: str, pixels: Images, vae: dict[str, Any], **_: Any) -> NodeResult:
    digest = hashlib.sha256(b"".join(i.tobytes() for i in pixels)).hexdigest()
    width, height = pixels[0].width // 8 * 8, pixels[0].height // 8 * 8
    return ({"width": width, "height": height, "batch_size": len(pixels), "fingerprint": digest,
             "base": pixels},), None


def _node_ksampler(run: _Run, node_id: str, model: dict[str, Any], seed: int, steps: int, cfg: float,
                   sampler_name: str, scheduler: str, positive: list[Any], negative: list[Any],
                   latent_image: dict[str, Any], denoise: float = 1.0, **_: Any) -> NodeResult:
    fp = _fingerprint(model.get("ckpt"), seed, steps, cfg, sampler_name, scheduler,
                      [c.get("text") for c in positive], [c.get("text") for c in negative],
                      latent_image["fingerprint"], latent_image["width"], latent_image["height"], denoise)
    final = _latent_colour(fp, 0)
    size = (max(1, latent_image["width"] // 8), max(1, latent_image["height"] // 8))
    for step in range(1, steps + 1):
        run.sleep(run.fake.step_delay)
        t = step / steps
        colour = tuple(round(128 + (c - 128) * t) for c in final)
        run.report_progress(node_id, step, steps, ("JPEG", Image.new("RGB", size, colour), PREVIEW_SIZE))
    return ({**latent_image, "fingerprint": fp, "denoise": denoise},), None


def _node_vae_decode(run: _Run, node_id: str, samples: dict[str, Any], vae: dict[str, Any],
                     **_: Any) -> NodeResult:
    size = (samples["width"], samples["height"])
    images = []
    for index in range(samples["batch_size"]):
        img = Image.new("RGB", size, _latent_colour(samples["fingerprint"], index))
        base = samples.get("base")
        if base:
            source = base[index % len(base)].convert("RGB").resize(size)
            img = Image.blend(source, img, max(0.0, min(1.0, float(samples.get("denoise", 1.0)))))
        images.append(img)
    return (images,), None


def _passthrough(run: _Run, node_id: str, class_type: str, inputs: dict[str, Any]) -> NodeResult:
    info = run.fake._class_info(class_type) or {}
    specs = {**info.get("input", {}).get("required", {}), **info.get("input", {}).get("optional", {})}
    outputs = []
    for out_type in info.get("output", []):
        match = [inputs[n] for n, s in specs.items() if n in inputs and s[0] == out_type]
        if not match:
            raise NotImplementedError(f"FakeComfyUI does not implement node class {class_type}")
        outputs.append(match[0])
    return tuple(outputs), None


NODE_IMPLEMENTATIONS: dict[str, Callable[..., NodeResult]] = {
    "EmptyImage": _node_empty_image, "LoadImage": _node_load_image, "ImageInvert": _node_invert,
    "ImageBlur": _node_blur, "ImageScale": _node_scale, "SaveImage": _node_save, "PreviewImage": _node_preview,
    "SaveImageWebsocket": _node_save_ws, "GetImageSize": _node_get_size, "PreviewAny": _node_preview_any,
    "PrimitiveInt": _node_primitive, "PrimitiveFloat": _node_primitive, "PrimitiveString": _node_primitive,
    "PrimitiveStringMultiline": _node_primitive, "PrimitiveBoolean": _node_primitive,
    "CheckpointLoaderSimple": _node_checkpoint, "CLIPTextEncode": _node_clip_encode,
    "EmptyLatentImage": _node_empty_latent, "KSampler": _node_ksampler, "VAEEncode": _node_vae_encode,
    "VAEDecode": _node_vae_decode,
}


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeComfyUI:
    """A ComfyUI 0.3.64 look-alike on a background thread. See the module docstring."""

    def __init__(self, *, object_info_path: str | Path = DEFAULT_OBJECT_INFO, step_delay: float = 0.0,
                 node_delay: float = 0.0, checkpoints: list[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, max_pixels: int = 2**26, newer: bool = False) -> None:
        self._object_info = _load_object_info(str(object_info_path))
        self.newer = newer  # a newer ComfyUI (0.38.1): /api/jobs and the rest listed in the module docstring
        self.assets = newer  # /upload/image answers with an asset object
        self.step_delay, self.node_delay = step_delay, node_delay
        self.max_pixels = max_pixels
        self.refuse_ws = False
        self.checkpoints = list(checkpoints) if checkpoints is not None else ["tiny-random-sd15.safetensors"]
        self.host, self.port = host, port
        self.url = ""
        self.uploads: list[dict[str, Any]] = []
        self.prompts: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.ws_connections = 0
        self.most_queued = 0  # the most prompts it has held at once (pending + running)
        self._init_state()

    def _init_state(self) -> None:
        self._cv = threading.Condition(threading.RLock())
        self._pending: list[tuple[Any, ...]] = []
        self._running: dict[str, tuple[Any, ...]] = {}
        self._history: dict[str, dict[str, Any]] = {}
        self._number = 0
        self._interrupt = threading.Event()
        self._stopping = False
        self._crashed = False
        self._cache: dict[str, tuple[Any, ...]] = {}
        self._ui_cache: dict[str, dict[str, Any]] = {}
        self._temp_prefixes: dict[str, str] = {}
        self._client_id: str | None = None
        self._last_node_id: str | None = None
        self._sockets: dict[str, _WebSocket] = {}
        self._all_ws: set[_WebSocket] = set()
        self._log_subscribers: set[str] = set()
        self._terminal_size_sent = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeComfyUI:
        self.base_dir = Path(os.path.realpath(tempfile.mkdtemp(prefix="fake_comfyui_")))
        self.input_dir, self.output_dir, self.temp_dir = (self.base_dir / n for n in ("input", "output", "temp"))
        for d in (self.input_dir, self.output_dir, self.temp_dir):
            d.mkdir()
        Image.new("RGB", (64, 64), (128, 128, 128)).save(self.input_dir / "example.png")
        return self._launch()

    def _launch(self) -> FakeComfyUI:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="fake-comfyui-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._start_error is not None:
            raise RuntimeError(f"FakeComfyUI failed to start: {self._start_error!r}")
        self._worker = threading.Thread(target=self._worker_loop, name="fake-comfyui-worker", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._halt()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _halt(self) -> None:
        """Stop the worker (a running prompt is interrupted) and the event loop."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._interrupt.set()
        if self._worker is not None:
            self._worker.join(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def crash(self) -> None:
        """Die like a killed process: connections are cut and nothing more is sent."""
        self._crashed = True
        self.stop()

    def restart(self, down_for: float = 0.0) -> None:
        """Kill the server and start it again on the same port after ``down_for`` seconds.

        Like a restarted ComfyUI: connections are cut without a word, and the new process has an
        empty queue and history (both live in memory), a cold cache, and ``number`` from 0 again;
        the files in input/, output/ and temp/ stay. Knobs and the inspection lists are kept.
        """
        self._crashed = True
        self._halt()
        self._init_state()
        time.sleep(down_for)
        self._launch()

    def __enter__(self) -> FakeComfyUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as ex:  # noqa: BLE001 - surfaced by start()
            self._start_error = ex
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _startup(self) -> None:
        self._msgq: asyncio.Queue[tuple[Any, Any, str | None]] = asyncio.Queue()
        self._server = await asyncio.start_server(self._handle_conn, self.host, self.port, limit=2**20)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self._publisher_task = asyncio.get_running_loop().create_task(self._publisher())

    async def _shutdown(self) -> None:
        self._server.close()
        for ws in list(self._all_ws):
            ws.abort()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0.01)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inspection -------------------------------------------------------------------------------
    @property
    def queue_remaining(self) -> int:
        with self._cv:
            return len(self._pending) + len(self._running)

    # -- message bus (any thread -> event loop, FIFO like PromptServer.send_sync) ----------------------
    def _post(self, event: str | int, data: Any, sid: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._msgq.put_nowait, (event, data, sid))
        except RuntimeError:
            pass

    def _post_status(self) -> None:
        self._post("status", {"status": self._queue_info()}, None)

    def _queue_info(self) -> dict[str, Any]:
        with self._cv:
            return {"exec_info": {"queue_remaining": len(self._pending) + len(self._running)}}

    async def _publisher(self) -> None:
        while True:
            event, data, sid = await self._msgq.get()
            if self._crashed:
                continue
            targets = list(self._sockets.values()) if sid is None else [self._sockets.get(sid)]
            for ws in targets:
                if ws is not None:
                    await self._ws_send(ws, event, data)

    async def _ws_send(self, ws: _WebSocket, event: str | int, data: Any) -> None:
        if isinstance(event, str):
            await ws.send(1, json.dumps({"type": event, "data": data}).encode())
        else:
            await ws.send(2, struct.pack(">I", event) + data)

    def _supports_metadata(self, sid: str) -> bool:
        return self._client_flag(sid, "supports_preview_metadata")

    def _client_flag(self, sid: str, name: str) -> bool:
        ws = self._sockets.get(sid)
        return bool(ws is not None and ws.feature_flags.get(name) is True)

    @property
    def features(self) -> dict[str, Any]:
        return dict(FEATURES_NEWER if self.newer else FEATURES)

    def notify(self, value: str, id: str | None = None, sid: str | None = None) -> None:
        """Send a ``notification`` (to ``sid``, else to every socket) as a custom node would."""
        self._post("notification", {"value": value, **({"id": id} if id is not None else {})}, sid)

    # -- queue (PromptQueue) --------------------------------------------------------------------------
    def _put(self, item: tuple[Any, ...]) -> None:
        with self._cv:
            heapq.heappush(self._pending, item)
            self.most_queued = max(self.most_queued, len(self._pending) + len(self._running))
            self._post_status()
            self._cv.notify()

    def _get(self) -> tuple[Any, ...] | None:
        with self._cv:
            while not self._pending and not self._stopping:
                self._cv.wait()
            if self._stopping:
                return None
            item = heapq.heappop(self._pending)
            self._running[item[1]] = item
            self._post_status()
            return item

    def _task_done(self, prompt_id: str, entry: dict[str, Any]) -> None:
        with self._cv:
            self._running.pop(prompt_id, None)
            self._history[prompt_id] = entry
            while len(self._history) > 10000:
                self._history.pop(next(iter(self._history)))
            self._post_status()

    def _delete_pending(self, prompt_id: Any) -> bool:
        with self._cv:
            for index, item in enumerate(self._pending):
                if item[1] == prompt_id:
                    if len(self._pending) == 1:
                        self._wipe_queue()
                    else:
                        self._pending.pop(index)
                        heapq.heapify(self._pending)
                    self._post_status()
                    return True
            return False

    def _wipe_queue(self) -> None:
        with self._cv:
            self._pending = []
            self._post_status()

    # -- worker -------------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while True:
            item = self._get()
            if item is None:
                return
            self._execute_item(item)

    def _execute_item(self, item: tuple[Any, ...]) -> None:
        started = time.perf_counter()
        self._interrupt.clear()
        run = _Run(self, item)
        self._client_id = run.client_id
        try:
            result = run.execute()
        except Exception as ex:  # noqa: BLE001 - a bug in the fake must not kill the worker
            run.success, result = False, {"outputs": {}, "meta": {}}
            run.messages.append(["execution_error", {"exception_message": repr(ex)}])
        entry = {"prompt": list(item[:5]), "outputs": {},
                 "status": {"status_str": "success" if run.success else "error", "completed": run.success,
                            "messages": run.messages}}
        entry.update(result)
        self._task_done(run.prompt_id, entry)
        if run.client_id is not None:
            self._post("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)
        self.log(f"Prompt executed in {time.perf_counter() - started:.2f} seconds")

    # -- cache ----------------------------------------------------------------------------------------
    def _prepare_cache(self, prompt: dict[str, Any]) -> dict[str, str]:
        memo: dict[str, str] = {}
        for node_id in prompt:
            self._signature(prompt, node_id, memo, set())
        keep = set(memo.values())
        self._cache = {k: v for k, v in self._cache.items() if k in keep}
        self._ui_cache = {k: v for k, v in self._ui_cache.items() if k in keep}
        return memo

    def _signature(self, prompt: dict[str, Any], node_id: Any, memo: dict[str, str], stack: set[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt.get(node_id) if isinstance(node_id, str) else None
        if not isinstance(node, dict) or node_id in stack:
            return f"uncacheable:{uuid.uuid4()}"
        stack.add(node_id)
        parts: list[Any] = [node.get("class_type"), self._is_changed(node)]
        for key in sorted(node.get("inputs", {})):
            value = node["inputs"][key]
            if _is_link(value):
                parts.append([key, "ANCESTOR", self._signature(prompt, value[0], memo, stack), value[1]])
            else:
                parts.append([key, value])
        stack.discard(node_id)
        memo[node_id] = _fingerprint(parts)
        return memo[node_id]

    def _is_changed(self, node: dict[str, Any]) -> str:
        class_type = node.get("class_type")
        if class_type == "SaveImageWebsocket":
            return str(time.time_ns()) + uuid.uuid4().hex
        if class_type == "LoadImage":
            image = node.get("inputs", {}).get("image")
            path = self._annotated_path(image, "input") if isinstance(image, str) else None
            if path is not None and path.is_file():
                return hashlib.sha256(path.read_bytes()).hexdigest()
        return ""

    def _temp_prefix(self, node_id: str) -> str:
        if node_id not in self._temp_prefixes:
            self._temp_prefixes[node_id] = "_temp_" + "".join(random.choice(string.ascii_lowercase)
                                                                for _ in range(5))
        return self._temp_prefixes[node_id]

    # -- files ----------------------------------------------------------------------------------------
    def _dir_for(self, kind: str | None) -> Path | None:
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}.get(kind or "")

    def _annotated_path(self, name: str, default: str) -> Path | None:
        kind = default
        for tag in ("input", "output", "temp"):
            if name.endswith(f" [{tag}]"):
                name, kind = name[: -len(tag) - 3], tag
        base = self._dir_for(kind)
        assert base is not None
        path = Path(os.path.abspath(os.path.join(base, name)))
        return path if os.path.commonpath((str(base), str(path))) == str(base) else None

    def _input_files(self) -> list[str]:
        names = [p.name for p in self.input_dir.iterdir() if p.is_file()]
        return sorted(n for n in names if (mimetypes.guess_type(n)[0] or "").startswith("image"))

    def _custom_validate(self, class_type: str, name: str, value: Any) -> Any:
        if class_type == "LoadImage" and name == "image":
            path = self._annotated_path(str(value), "input")
            return True if path is not None and path.exists() else f"Invalid image file: {value}"
        return True

    # -- object_info ----------------------------------------------------------------------------------
    def _class_info(self, class_type: Any) -> dict[str, Any] | None:
        base = self._object_info.get(class_type)
        if base is None:
            return None
        if class_type == "LoadImage":
            base = self._with_choices(base, "image", self._input_files())
        elif class_type == "CheckpointLoaderSimple":
            base = self._with_choices(base, "ckpt_name", sorted(self.checkpoints))
        return self._newer_keys(class_type, base) if self.newer else base

    @staticmethod
    def _newer_keys(class_type: str, base: dict[str, Any]) -> dict[str, Any]:
        """The keys a newer server's ``node_info`` adds to every class entry (and a few to some)."""
        extra: dict[str, Any] = {"has_intermediate_output": False, "search_aliases": []}
        if class_type in ("LoadImage", "SaveImage"):
            extra["essentials_category"] = "Basics"
        if class_type == "SaveImage":
            extra["search_aliases"] = ["save", "save image", "export image"]
        return {**base, **extra}

    @staticmethod
    def _with_choices(base: dict[str, Any], name: str, choices: list[str]) -> dict[str, Any]:
        required = dict(base["input"]["required"])
        required[name] = [choices, *required[name][1:]]
        return {**base, "input": {**base["input"], "required": required}}

    def _all_object_info(self) -> dict[str, Any]:
        return {name: self._class_info(name) for name in self._object_info}

    # -- HTTP connection handling -----------------------------------------------------------------------
    async def _handle_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve_requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            req = await _read_request(reader)
            if req is None:
                return
            self.requests.append((req.method, req.path))
            if "websocket" in req.headers.get("upgrade", "").lower():
                await self._handle_ws(req, reader, writer)
                return
            try:
                resp = await self._route(req)
            except Exception:  # noqa: BLE001 - aiohttp answers 500 text/plain
                resp = server_error()
            keep_alive = req.headers.get("connection", "").lower() != "close"
            writer.write(_encode_response(resp, keep_alive))
            await writer.drain()
            if not keep_alive:
                return

    async def _route(self, req: Request) -> Response:
        routes = self._routes()
        handler = routes.get((req.method, req.path))
        if handler is None:
            for (method, prefix), prefixed in self._prefix_routes().items():
                if req.method == method and req.path.startswith(prefix) and len(req.path) > len(prefix):
                    return await prefixed(req, req.path[len(prefix):])
            if any(path == req.path for _, path in routes):
                return text_response("405: Method Not Allowed", 405)
            return text_response("404: Not Found", 404)
        return await handler(req)

    def _routes(self) -> dict[tuple[str, str], Callable[[Request], Any]]:
        newer: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "/api/jobs"): self._get_jobs, ("POST", "/api/jobs/cancel"): self._post_jobs_cancel,
        } if self.newer else {}
        return {**newer,
            ("GET", "/system_stats"): self._get_system_stats, ("GET", "/object_info"): self._get_object_info,
            ("GET", "/features"): self._get_features, ("GET", "/queue"): self._get_queue,
            ("GET", "/history"): self._get_history, ("GET", "/view"): self._get_view,
            ("POST", "/prompt"): self.post_prompt, ("POST", "/queue"): self._post_queue,
            ("POST", "/interrupt"): self._post_interrupt, ("POST", "/upload/image"): self._post_upload,
            ("PATCH", "/internal/logs/subscribe"): self._patch_logs_subscribe,
        }

    def _prefix_routes(self) -> dict[tuple[str, str], Callable[[Request, str], Any]]:
        newer: dict[tuple[str, str], Callable[[Request, str], Any]] = {
            ("GET", "/api/jobs/"): self._get_job, ("POST", "/api/jobs/"): self._post_job_cancel,
        } if self.newer else {}
        return {("GET", "/object_info/"): self._get_object_info_class, ("GET", "/history/"): self._get_history_item,
                **newer}

    # -- WebSocket --------------------------------------------------------------------------------------
    async def _handle_ws(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = req.headers.get("sec-websocket-key")
        if self.refuse_ws or req.path != "/ws" or not key:
            writer.write(_encode_response(Response(404 if req.path != "/ws" else 403), keep_alive=False))
            await writer.drain()
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        await writer.drain()
        ws = _WebSocket(reader, writer, req.query.get("clientId") or uuid.uuid4().hex)
        self._sockets[ws.sid] = ws
        self._all_ws.add(ws)
        self.ws_connections += 1
        try:
            await self._ws_session(ws)
        finally:
            if self._sockets.get(ws.sid) is ws:
                del self._sockets[ws.sid]
            self._all_ws.discard(ws)
            ws.abort()

    async def _ws_session(self, ws: _WebSocket) -> None:
        await self._ws_send(ws, "status", {"status": self._queue_info(), "sid": ws.sid})
        if self._client_id == ws.sid and self._last_node_id is not None:
            await self._ws_send(ws, "executing", {"node": self._last_node_id})
        first = True
        while True:
            message = await ws.read_message()
            if message is None:
                return
            opcode, payload = message
            if opcode != 1:
                continue
            try:
                data = json.loads(payload.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                flags = data.get("data", {})
                ws.feature_flags = flags if isinstance(flags, dict) else {}
                await self._ws_send(ws, "feature_flags", self.features)
            first = False

    # -- GET handlers ---------------------------------------------------------------------------------
    async def _get_system_stats(self, req: Request) -> Response:
        return json_response(SYSTEM_STATS_NEWER if self.newer else SYSTEM_STATS)

    async def _get_object_info(self, req: Request) -> Response:
        return json_response(self._all_object_info())

    async def _get_object_info_class(self, req: Request, class_type: str) -> Response:
        info = self._class_info(class_type)
        return json_response({class_type: info} if info is not None else {})

    async def _get_features(self, req: Request) -> Response:
        return json_response(self.features)

    async def _get_queue(self, req: Request) -> Response:
        with self._cv:
            body = json.dumps({"queue_running": [list(i[:5]) for i in self._running.values()],
                               "queue_pending": [list(i[:5]) for i in self._pending]})
        return Response(200, body.encode(), [("Content-Type", "application/json; charset=utf-8")])

    async def _get_history(self, req: Request) -> Response:
        max_items = int(req.query["max_items"]) if "max_items" in req.query else None
        offset = int(req.query["offset"]) if "offset" in req.query else -1
        with self._cv:
            keys = list(self._history)
            if offset < 0 and max_items is not None:
                offset = len(keys) - max_items
            selected = keys[max(offset, 0):]
            selected = selected[:max_items] if max_items is not None else selected
            body = json.dumps({k: self._history[k] for k in selected})
        return Response(200, body.encode(), [("Content-Type", "application/json; charset=utf-8")])

    async def _get_history_item(self, req: Request, prompt_id: str) -> Response:
        with self._cv:
            entry = self._history.get(prompt_id)
            body = json.dumps({prompt_id: entry} if entry is not None else {})
        return Response(200, body.encode(), [("Content-Type", "application/json; charset=utf-8")])

    async def _get_view(self, req: Request) -> Response:
        if "filename" not in req.query:
            return empty_response(404)
        name, kind = req.query["filename"], req.query.get("type", "output")
        for tag in ("input", "output", "temp"):
            if name.endswith(f" [{tag}]"):
                name, kind = name[: -len(tag) - 3], tag
        if not name:
            return empty_response(400)
        if name[0] == "/" or ".." in name:
            return empty_response(400)
        base = self._dir_for(kind)
        if base is None:
            return empty_response(400)
        folder = os.path.abspath(os.path.join(base, req.query.get("subfolder", "")))
        if os.path.commonpath((folder, str(base))) != str(base):
            return empty_response(403)
        filename = os.path.basename(name)
        path = Path(folder) / filename
        if not path.is_file():
            return empty_response(404)
        return self._file_response(path, filename, req.query)

    @staticmethod
    def _file_response(path: Path, filename: str, query: dict[str, str]) -> Response:
        disposition = ("Content-Disposition", f'filename="{filename}"')
        if "preview" in query or query.get("channel") in ("rgb", "a"):
            body, ctype = _converted_image(path, query)
            return Response(200, body, [("Content-Type", ctype), disposition])
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if ctype in {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}:
            ctype = "application/octet-stream"
        return Response(200, path.read_bytes(), [disposition, ("Content-Type", ctype)])

    # -- POST handlers --------------------------------------------------------------------------------
    async def post_prompt(self, req: Request) -> Response:
        self.log("got prompt")
        body = req.json()
        if not isinstance(body, dict):
            return server_error()
        received = copy.deepcopy(body)
        number = self._next_number(body)
        if "prompt" not in body:
            return json_response({"error": _error("no_prompt", "No prompt provided", "No prompt provided"),
                                  "node_errors": {}}, 400)
        prompt = body["prompt"]
        if not isinstance(prompt, dict):
            return server_error()
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        if self.newer and body.get("prompt_id") is not None and not _canonical_uuid(body["prompt_id"]):
            return json_response({"error": _error("invalid_prompt_id", "prompt_id must be a valid UUID",
                                                  "prompt_id must be a UUID string in canonical lowercase hyphenated "
                                                  "form; omit it to let the server generate one"),
                                  "node_errors": {}}, 400)
        validator = _Validator(prompt, self._class_info, self._custom_validate)
        ok, error, outputs, node_errors = validator.run(body.get("partial_execution_targets"))
        for line in validator.log:
            self.log(line)
        if not ok:
            self.log(f"invalid prompt: {error}")
            return json_response({"error": error, "node_errors": node_errors}, 400)
        self.prompts.append(received)
        extra = self._extra_data(body)
        if self.newer:
            extra["create_time"] = _now_ms()
        await self._enqueue(number, prompt_id, prompt, extra, outputs)
        return json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    def _next_number(self, body: dict[str, Any]) -> Any:
        if "number" in body:
            return float(body["number"])
        with self._cv:
            number = self._number
            self._number += 1
        return -number if body.get("front") else number

    @staticmethod
    def _extra_data(body: dict[str, Any]) -> dict[str, Any]:
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            extra.pop(key, None)
        return extra

    async def _enqueue(self, number: Any, prompt_id: str, prompt: dict[str, Any], extra: dict[str, Any],
                       outputs: list[str]) -> None:
        self._put((number, prompt_id, prompt, extra, outputs))
        await asyncio.sleep(0.002)  # let the worker start: ws messages may beat the HTTP response (b3/b4/b5)

    async def _post_queue(self, req: Request) -> Response:
        body = req.json()
        if body.get("clear"):
            self._wipe_queue()
        for prompt_id in body.get("delete", []) if "delete" in body else []:
            self._delete_pending(prompt_id)
        return empty_response()

    async def _post_interrupt(self, req: Request) -> Response:
        try:
            body = req.json() if req.body else {}
        except ValueError:
            body = {}
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        if not prompt_id:
            self.log("Global interrupt (no prompt_id specified)")
            self._interrupt.set()
            return empty_response()
        with self._cv:
            running = prompt_id in self._running
        if running:
            self.log(f"Interrupting prompt {prompt_id}")
            self._interrupt.set()
        else:
            self.log(f"Prompt {prompt_id} is not currently running, skipping interrupt")
        return empty_response()

    async def _patch_logs_subscribe(self, req: Request) -> Response:
        body = req.json()
        client_id, enabled = body["clientId"], body["enabled"]  # a KeyError is a 500, as in ComfyUI
        with self._cv:
            if enabled:
                self._log_subscribers.add(client_id)
            else:
                self._log_subscribers.discard(client_id)
        return empty_response()

    # -- the server's log ---------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """One log record, as ComfyUI's ``logging`` writes it (its text and a newline, then a flush): sent
        to every subscribed client that still has a socket; the others are unsubscribed."""
        entries = [{"t": datetime.now().isoformat(), "m": message + "\n"}]
        with self._cv:
            if not self._log_subscribers:
                return
            size = None if self._terminal_size_sent else dict(TERMINAL_SIZE)
            self._terminal_size_sent = True
            for client_id in list(self._log_subscribers):
                if client_id not in self._sockets:
                    self._log_subscribers.discard(client_id)
                    continue
                self._post("logs", {"entries": entries, "size": size}, client_id)

    async def _post_upload(self, req: Request) -> Response:
        fields, files = _parse_multipart(req.headers.get("content-type", ""), req.body)
        kind = fields.get("type", "input")
        overwrite = fields.get("overwrite") in ("true", "1")
        record: dict[str, Any] = {"filename": None, "subfolder": fields.get("subfolder", ""), "type": kind,
                                  "overwrite": overwrite, "bytes_len": 0, "sha256": None}
        self.uploads.append(record)
        if "image" in files:
            filename, data = files["image"]
            record.update(filename=filename, bytes_len=len(data), sha256=hashlib.sha256(data).hexdigest())
        base = self._dir_for(kind)
        if base is None:
            raise ValueError(f"unknown upload type {kind!r}")  # ComfyUI fails with 500 here too
        resp = self._store_upload(base, kind, fields, files, overwrite)
        record.update(status=resp.status, name=json.loads(resp.body)["name"] if resp.status == 200 else None)
        if resp.status == 200 and self.assets:
            resp = json_response({**json.loads(resp.body), "asset": _asset(json.loads(resp.body), files["image"][1])})
        return resp

    # -- /api/jobs (newer servers: server.py get_jobs / get_job_by_id / cancel_job_by_id, comfy_execution/jobs.py)
    def _snapshot(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, Any]]:
        with self._cv:
            return ([i[:5] for i in self._running.values()], [i[:5] for i in sorted(self._pending)],
                    dict(self._history))

    async def _get_jobs(self, req: Request) -> Response:
        query = req.query
        statuses = [s.strip().lower() for s in query.get("status", "").split(",") if s.strip()] or None
        invalid = [s for s in statuses or [] if s not in JOB_STATUSES]
        if invalid:
            return json_response({"error": f"Invalid status value(s): {', '.join(invalid)}. Valid values: "
                                           f"{', '.join(JOB_STATUSES)}"}, 400)
        sort_by, order = query.get("sort_by", "created_at").lower(), query.get("sort_order", "desc").lower()
        if sort_by not in ("created_at", "execution_duration"):
            return json_response({"error": "sort_by must be 'created_at' or 'execution_duration'"}, 400)
        if order not in ("asc", "desc"):
            return json_response({"error": "sort_order must be 'asc' or 'desc'"}, 400)
        limit, offset = _integer(query.get("limit")), _integer(query.get("offset", "0"))
        if "limit" in query and (limit is None or limit <= 0):
            return json_response({"error": "limit must be an integer" if limit is None else
                                  "limit must be a positive integer"}, 400)
        if offset is None:
            return json_response({"error": "offset must be an integer"}, 400)
        offset = max(offset, 0)
        jobs = _all_jobs(*self._snapshot(), statuses or list(JOB_STATUSES), query.get("workflow_id"))
        jobs.sort(key=_sort_key(sort_by), reverse=order == "desc")
        page = jobs[offset:][:limit] if limit is not None else jobs[offset:]
        return json_response({"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": len(jobs),
                                                           "has_more": offset + len(page) < len(jobs)}})

    async def _get_job(self, req: Request, job_id: str) -> Response:
        running, pending, history = self._snapshot()
        if job_id in history:
            return json_response(_history_job(job_id, history[job_id], include_outputs=True))
        for items, status in ((running, "in_progress"), (pending, "pending")):
            for item in items:
                if item[1] == job_id:
                    return json_response(_queue_job(item, status, include_workflow=True))
        return json_response({"error": "Job not found"}, 404)

    async def _post_job_cancel(self, req: Request, rest: str) -> Response:
        job_id, _, action = rest.partition("/")
        if action != "cancel" or not job_id:
            return text_response("404: Not Found", 404)
        return json_response({"cancelled": self._cancel_job(job_id)})

    async def _post_jobs_cancel(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            return json_response({"error": "Request body must be valid JSON"}, 400)
        job_ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(job_ids, list):
            return json_response({"error": "job_ids must be a list"}, 400)
        invalid = [j if isinstance(j, str) else repr(j) for j in job_ids if not _canonical_uuid(j)]
        if invalid:
            return json_response({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, 400)
        return json_response({"cancelled": any([self._cancel_job(j) for j in job_ids])})

    def _cancel_job(self, job_id: str) -> bool:
        """``cancel_job``: dequeue a pending job (or interrupt it if it started meanwhile), interrupt a running one."""
        if self._delete_pending(job_id):
            return True
        with self._cv:
            running = job_id in self._running
        if running:
            self._interrupt.set()
        return running

    @staticmethod
    def _store_upload(base: Path, kind: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]],
                      overwrite: bool) -> Response:
        if "image" not in files or not files["image"][0]:
            return empty_response(400)
        filename, data = files["image"]
        subfolder = fields.get("subfolder", "")
        folder = os.path.join(base, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((str(base), filepath)) != str(base):
            return empty_response(400)
        os.makedirs(folder, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        duplicate, i = False, 1
        while not overwrite and os.path.exists(filepath):
            if hashlib.sha256(Path(filepath).read_bytes()).digest() == hashlib.sha256(data).digest():
                duplicate = True
                break
            filename = f"{stem} ({i}){ext}"
            filepath = os.path.join(folder, filename)
            i += 1
        if not duplicate:
            Path(filepath).write_bytes(data)
        return json_response({"name": filename, "subfolder": subfolder, "type": kind})


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _canonical_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _asset(upload: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(data).hexdigest())), "name": upload["name"],
            "asset_hash": "blake3:" + hashlib.blake2b(data, digest_size=32).hexdigest(), "size": len(data),
            "mime_type": mimetypes.guess_type(upload["name"])[0] or "application/octet-stream",
            "tags": [upload["type"]]}


def _pruned(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if v is not None}


def _queue_job(item: tuple[Any, ...], status: str, include_workflow: bool = False) -> dict[str, Any]:
    """``normalize_queue_item``."""
    priority, prompt_id, prompt, extra, _ = item
    job = _pruned({"id": prompt_id, "status": status, "priority": priority, "create_time": extra.get("create_time"),
                   "outputs_count": 0, "previewable_outputs_count": 0,
                   "workflow_id": ((extra.get("extra_pnginfo") or {}).get("workflow") or {}).get("id")})
    if include_workflow:
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def _history_job(prompt_id: str, entry: dict[str, Any], include_outputs: bool = False) -> dict[str, Any]:
    """``normalize_history_item`` (outputs counted as dict items; text strings are not outputs)."""
    priority, _, prompt, extra, _ = entry["prompt"]
    status_info = entry.get("status") or {}
    times: dict[str, Any] = {}
    error, interrupted = None, False
    for name, data in status_info.get("messages", []):
        if name == "execution_start":
            times["execution_start_time"] = data.get("timestamp")
        elif name in ("execution_success", "execution_error", "execution_interrupted"):
            times["execution_end_time"] = data.get("timestamp")
            error = data if name == "execution_error" else error
            interrupted = interrupted or name == "execution_interrupted"
    status = {"success": "completed", "error": "cancelled" if interrupted else "failed"}.get(
        status_info.get("status_str"), "completed")
    outputs = entry.get("outputs") or {}
    count = sum(isinstance(i, dict) for o in outputs.values() for k, v in o.items() if k != "animated"
                and isinstance(v, list) for i in v)
    job = _pruned({"id": prompt_id, "status": status, "priority": priority, "create_time": extra.get("create_time"),
                   **times, "execution_error": error, "outputs_count": count, "previewable_outputs_count": count,
                   "workflow_id": ((extra.get("extra_pnginfo") or {}).get("workflow") or {}).get("id")})
    if include_outputs:
        job.update(outputs=outputs, execution_status=status_info, workflow={"prompt": prompt, "extra_data": extra})
    return job


def _all_jobs(running: list[Any], pending: list[Any], history: dict[str, Any], statuses: list[str],
              workflow_id: str | None) -> list[dict[str, Any]]:
    """``get_all_jobs`` before sorting and paging."""
    jobs = [_queue_job(i, "in_progress") for i in running] if "in_progress" in statuses else []
    jobs += [_queue_job(i, "pending") for i in pending] if "pending" in statuses else []
    jobs += [j for j in (_history_job(k, v) for k, v in history.items()) if j["status"] in statuses]
    return [j for j in jobs if j.get("workflow_id") == workflow_id] if workflow_id else jobs


def _sort_key(sort_by: str) -> Callable[[dict[str, Any]], Any]:
    if sort_by == "execution_duration":
        return lambda j: (j.get("execution_end_time", 0) - j.get("execution_start_time", 0)
                          if j.get("execution_end_time") and j.get("execution_start_time") else 0)
    return lambda j: j.get("create_time", 0)


def _converted_image(path: Path, query: dict[str, str]) -> tuple[bytes, str]:
    """/view with preview=format;quality or channel=rgb|a."""
    buf = io.BytesIO()
    with Image.open(path) as img:
        if "preview" in query:
            info = query["preview"].split(";")
            fmt = info[0] if info[0] in ("webp", "jpeg") and "a" not in query.get("channel", "") else "webp"
            quality = int(info[-1]) if info[-1].isdigit() else 90
            out = img.convert("RGB") if fmt == "jpeg" or query.get("channel") == "rgb" else img
            out.save(buf, format=fmt, quality=quality)
            return buf.getvalue(), f"image/{fmt}"
        if query.get("channel") == "rgb":
            img.convert("RGB").save(buf, format="PNG")
        else:
            alpha = img.getchannel("A") if "A" in img.getbands() else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size, (0, 0, 0, 0))
            out.putalpha(alpha)
            out.save(buf, format="PNG")
    return buf.getvalue(), "image/png"
