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

Gradio itself still refuses, before any app code runs, a FileData (``meta`` given) whose path is outside its
upload folder (``processing_utils._check_allowed``), with its generic error; it does not open that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping

import gradio as gr

from ..errors import InputError

__all__ = ["COPY_VALUE", "NOT_UPLOADED", "upload_value", "uploaded_file"]

NOT_UPLOADED = ("this is not a file uploaded to this app; upload the file (POST /gradio_api/upload, or "
                "handle_file() in gradio_client) and pass the path it returns")
COPY_VALUE = "(value) => value"  # the page copies a widget's value (a FileData, or null) into its endpoint input


def upload_value(elem_id: str) -> gr.JSON:
    """The endpoint's input of an upload field: the FileData as sent, unvalidated and unread."""
    return gr.JSON(None, visible=False, elem_id=elem_id)


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
