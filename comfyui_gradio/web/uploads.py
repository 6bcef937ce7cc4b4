"""Upload fields: the value a caller sends, checked by the app before anything is read or sent to ComfyUI.

Gradio's upload widgets look at a value before the app does: ``gr.Image`` validates it as ``ImageData`` (a
plain string fails) and opens it with Pillow in its ``preprocess`` (a text file, a decompression bomb, or a
path such as ``/etc/passwd`` sent without FileData's ``meta``, fail there, after the file was opened), and
every failure reaches the caller as Gradio's generic error. So a tab's endpoint takes each upload as a
hidden ``gr.JSON`` (``upload_value``: no validation, no decoding), which the visible widget fills on the
page, and ``uploaded_file`` takes only a path this app's ``POST /gradio_api/upload`` stored (Gradio keeps
them in ``Blocks.upload_file_set``), or the cached copy of one of the caller's earlier inputs that "Run
again" put back in the form; no other path is opened. Size and content are checked where the file is
uploaded to ComfyUI (``ComfyClient.upload_image``).

Gradio also checks, before any app code runs, every FileData (``meta`` given) of a call: one whose path is
outside its upload folder is refused with its generic ``{"error": null}`` (``processing_utils._check_allowed``).
``UploadGuard``, an ASGI middleware the app is launched with (FastAPI's ``middleware``, through Gradio's
``app_kwargs``), takes upload fields out of Gradio's hands: in a call's data, an upload field's FileData loses its
``meta``, so Gradio passes it on as plain JSON and ``uploaded_file`` checks it (a path this app did not store is
refused with the field's name). Nothing else in the request is changed.

A path Gradio's upload route stored is accepted from any caller: that route has no session, and the path is
made of a hash of the file's content, so whoever can name it already holds the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection, Mapping

import gradio as gr

from ..errors import InputError

__all__ = ["COPY_VALUE", "NOT_UPLOADED", "UploadGuard", "upload_value", "uploaded_file"]

NOT_UPLOADED = ("this is not a file uploaded to this app; upload the file (POST /gradio_api/upload, or "
                "handle_file() in gradio_client) and pass the path it returns")
COPY_VALUE = "(value) => value"  # the page copies a widget's value (a FileData, or null) into its endpoint input
UPLOAD_CLASS = "upload-value"  # marks an upload field's endpoint input (the guard finds them by it)
_CALL = re.compile(r"/(?:queue/join|(?:call|call/v2|run|api)/(?P<api>[^/]+))/?$")


def upload_value(elem_id: str) -> gr.JSON:
    """The endpoint's input of an upload field: the FileData as sent, unvalidated and unread."""
    return gr.JSON(None, visible=False, elem_id=elem_id, elem_classes=[UPLOAD_CLASS])


def uploaded_file(value: Any, label: str, uploaded: Collection[str], earlier: Mapping[str, Path]) -> Path:
    """The file to use for an upload field's ``value`` (a FileData dict or a path string).

    ``uploaded``: the paths this app's upload route stored. ``earlier``: the caller's own copies of its
    earlier inputs by file name; "Run again" puts one back in the form, which Gradio copies into its
    cache under the same name, and then the caller's own copy is used. Anything else is refused with
    ``NOT_UPLOADED``, the same message whether or not the path exists, and is not opened.
    """
    path = value.get("path") if isinstance(value, dict) else value
    if isinstance(path, str) and path in uploaded:
        return Path(path)
    if isinstance(path, str) and Path(path).name in earlier:
        return earlier[Path(path).name]
    raise InputError(label, NOT_UPLOADED)


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UploadGuard:
    """ASGI middleware: an upload field's FileData reaches the app as plain JSON (without ``meta``), so the
    app, not Gradio, checks it and refuses it in its own words (see the module docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], blocks: gr.Blocks) -> None:
        self.app, self.blocks = app, blocks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = _CALL.search(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if call is None:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the caller went away
                return await self.app(scope, _replay(message, receive), send)
            body, more = body + message.get("body", b""), message.get("more_body", False)
        body = self._guarded(body, call["api"], v2="/call/v2/" in scope["path"])
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app(dict(scope, headers=headers), _replay({"type": "http.request", "body": body}, receive), send)

    def _guarded(self, body: bytes, api_name: str | None, v2: bool) -> bytes:
        try:
            call = json.loads(body)
        except ValueError:
            return body  # Gradio answers a body it cannot read itself
        if not isinstance(call, dict):
            return body
        fields = self._upload_fields(api_name, call.get("fn_index"))
        if v2:  # named arguments
            changed = [self._unwrap(call, name) for name in fields.values() if name]
        elif isinstance(call.get("data"), list):
            changed = [self._unwrap(call["data"], i) for i in fields if i < len(call["data"])]
        else:
            return body
        return json.dumps(call).encode() if any(changed) else body

    def _upload_fields(self, api_name: str | None, fn_index: Any) -> dict[int, str]:
        """The called function's upload-field inputs: their positions, with their API parameter names."""
        fn = next((f for f in self.blocks.fns.values()
                   if (f.api_name == api_name if api_name else f._id == fn_index)), None)
        if fn is None:
            return {}
        names = list(fn.input_parameter_names or [])
        return {i: names[i] if i < len(names) else "" for i, c in enumerate(fn.inputs)
                if UPLOAD_CLASS in (getattr(c, "elem_classes", None) or [])}

    def _unwrap(self, data: list[Any] | dict[str, Any], key: int | str) -> bool:
        """Drop ``meta`` from ``data[key]`` if it is a FileData (``uploaded_file`` checks its path)."""
        value = data[key] if isinstance(data, list) else data.get(str(key))
        if not (isinstance(value, dict) and isinstance(value.get("meta"), dict)
                and value["meta"].get("_type") == "gradio.FileData"):
            return False
        del value["meta"]
        return True


def _replay(first: dict[str, Any], rest: Receive) -> Receive:
    """``first``, then what ``rest`` receives (e.g. the caller's disconnect)."""
    pending = [first]

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else await rest()
    return receive
