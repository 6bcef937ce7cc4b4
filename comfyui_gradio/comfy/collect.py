"""Collecting a finished prompt's outputs: a ``/history`` entry in, local files out.

The history entry is authoritative (``PROTOCOL.md``, "history entry"): ``outputs`` maps a node id
to lists such as ``images``/``gifs``/``audio`` of ``{"filename", "subfolder", "type"}`` and to
``text`` (a list of strings). Files are fetched through a ``Downloader`` (``GET /view``) into the
job's folder under names made here; the server's file name is never trusted as a path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import Image, UnidentifiedImageError

from ..forms.schema import TabSpec
from .results import OutputFile, kind_of

__all__ = ["Downloader", "collect_outputs", "local_path", "node_title"]

Downloader = Callable[[str, str, str], bytes]
"""``download(filename, subfolder, type)``: the bytes of one output file (``ComfyClient.download``)."""


def node_title(prompt: Mapping[str, Mapping[str, Any]], node_id: str,
               groups: Mapping[str, str] | None = None) -> str:
    """The node's title in the workflow, else its class, else ``node <id>`` for an unknown id. With
    ``groups`` (``Workflow.groups``), a node inside a subgraph (``"12:5"``) is shown as the instance a
    person sees in the graph, then the node: ``"Invert and blur › Blur Image"``."""
    node = prompt.get(node_id)
    if node is None:
        return f"node {node_id}"
    title = str((node.get("_meta") or {}).get("title") or node.get("class_type"))
    outer = (groups or {}).get(node_id.split(":", 1)[0]) if ":" in node_id else None
    return f"{outer} › {title}" if outer else title


def collect_outputs(outputs: Mapping[str, Any], tab: TabSpec, prompt: Mapping[str, Mapping[str, Any]],
                    download: Downloader, job_dir: Path) -> list[OutputFile]:
    """Download every output the tab asks for (all outputs if it names none) into ``job_dir``.

    Each file is named after its output name: the schema's, else the node's title.
    """
    wanted = {o.node_id: o.name for o in tab.outputs}
    files: list[OutputFile] = []
    for node_id, output in outputs.items():
        if wanted and node_id not in wanted:
            continue
        name = wanted.get(node_id) or node_title(prompt, node_id)
        files += _node_outputs(node_id, name, output, download, job_dir)
    return files


def _node_outputs(node_id: str, name: str, output: Mapping[str, Any], download: Downloader,
                  job_dir: Path) -> list[OutputFile]:
    files = []
    for key, items in output.items():
        if key == "text":
            files += [_save_text(job_dir, node_id, name, str(text), i) for i, text in enumerate(_listed(items))]
            continue
        for item in _listed(items):
            if isinstance(item, dict) and "filename" in item:
                files.append(_save_file(job_dir, node_id, name, key, item, download))
    return files


def _save_file(job_dir: Path, node_id: str, name: str, key: str, item: Mapping[str, Any],
               download: Downloader) -> OutputFile:
    filename = str(item["filename"])
    data = download(filename, str(item.get("subfolder", "")), str(item.get("type", "output")))
    sniff = key == "images" and not _base_split(filename)[1]  # Pillow opens the bytes only for a name without one
    path = local_path(job_dir, node_id, filename, _image_suffix(data) if sniff else "")
    path.write_bytes(data)
    return OutputFile(path, kind_of(path.name, key), node_id, name, preview=item.get("type") == "temp")


def _save_text(job_dir: Path, node_id: str, name: str, text: str, index: int) -> OutputFile:
    path = local_path(job_dir, node_id, f"text_{index}.txt")
    path.write_text(text, encoding="utf-8")
    return OutputFile(path, "text", node_id, name, text=text)


MAX_STEM = 100  # characters kept of a server's file name (file systems allow 255 bytes in all)
MAX_SUFFIX = 8  # a longer "extension" is part of the name, not a file type


def local_path(job_dir: Path, node_id: str, server_name: str, fallback_suffix: str = "") -> Path:
    """A new path ``<node>_<name><suffix>`` inside ``job_dir``; a taken name gets ``<node>_<n>_<name>``.

    Whatever the server calls the file, the name is never empty, never a path and never long:
    only the last part of ``server_name`` is kept, anything but letters, digits, ``._- `` is
    replaced, leading dots go, the stem is cut to ``MAX_STEM`` characters, and an empty one is
    ``output``. So ``""``, ``..``, ``../../x.png``, ``/abs/x.png`` and a 300-character name all
    stay inside the folder. ``fallback_suffix`` (e.g. ``.png`` sniffed from the bytes) is used when
    the server's name has no usable suffix.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    stem, suffix = _base_split(server_name)
    safe = _clean(stem)[:MAX_STEM].strip() or "output"
    name = f"{safe}{suffix or fallback_suffix}"
    node = _slug(node_id)[:40]
    path = job_dir / f"{node}_{name}"
    counter = 1
    while path.exists():
        path = job_dir / f"{node}_{counter}_{name}"
        counter += 1
    return path


def _base_split(server_name: str) -> tuple[str, str]:
    """``_split`` of the last part of a server's file name (``/`` or ``\\`` separated)."""
    return _split(Path(server_name.replace("\\", "/")).name)


def _split(base: str) -> tuple[str, str]:
    """(stem, suffix) of a file name; a suffix that is long or not alphanumeric stays in the stem."""
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem.strip(".") or not suffix.isalnum() or len(suffix) + 1 > MAX_SUFFIX:
        return base, ""
    return stem, f".{suffix}"


def _clean(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in text).lstrip(". ")


def _image_suffix(data: bytes) -> str:
    """``.png``, ``.jpeg``, ``.webp``... from the bytes; "" if Pillow cannot tell."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f".{image.format.lower()}" if image.format else ""
    except (UnidentifiedImageError, OSError, ValueError):
        return ""


def _listed(items: Any) -> list[Any]:
    return items if isinstance(items, list) else [items]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)
