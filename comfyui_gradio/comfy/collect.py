"""Collecting a finished prompt's outputs: a ``/history`` entry in, local files out.

The history entry is authoritative (``PROTOCOL.md``, "history entry"): ``outputs`` maps a node id
to lists such as ``images``/``gifs``/``audio`` of ``{"filename", "subfolder", "type"}`` and to
``text`` (a list of strings). Files are fetched through a ``Downloader`` (``GET /view``) into the
job's folder under names made here; the server's file name is never trusted as a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from ..forms.schema import TabSpec
from .results import OutputFile, kind_of

__all__ = ["Downloader", "collect_outputs", "local_path", "node_title"]

Downloader = Callable[[str, str, str], bytes]
"""``download(filename, subfolder, type)``: the bytes of one output file (``ComfyClient.download``)."""


def node_title(prompt: Mapping[str, Mapping[str, Any]], node_id: str) -> str:
    """The node's title in the workflow, else its class, else ``node <id>`` for an unknown id."""
    node = prompt.get(node_id)
    if node is None:
        return f"node {node_id}"
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


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
    data = download(str(item["filename"]), str(item.get("subfolder", "")), str(item.get("type", "output")))
    path = local_path(job_dir, node_id, str(item["filename"]))
    path.write_bytes(data)
    return OutputFile(path, kind_of(path.name, key), node_id, name, preview=item.get("type") == "temp")


def _save_text(job_dir: Path, node_id: str, name: str, text: str, index: int) -> OutputFile:
    path = local_path(job_dir, node_id, f"text_{index}.txt")
    path.write_text(text, encoding="utf-8")
    return OutputFile(path, "text", node_id, name, text=text)


def local_path(job_dir: Path, node_id: str, server_name: str) -> Path:
    """A new path ``<node>_<name>`` inside ``job_dir``; a taken name gets ``<node>_<n>_<name>``.

    Only the last part of ``server_name`` is kept, with anything but letters, digits, ``._- ``
    replaced, so ``../../x.png`` or ``/abs/x.png`` stays inside the folder.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    base = Path(server_name.replace("\\", "/")).name
    safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in base).lstrip(".") or "output"
    path = job_dir / f"{_slug(node_id)}_{safe}"
    counter = 1
    while path.exists():
        path = job_dir / f"{_slug(node_id)}_{counter}_{safe}"
        counter += 1
    return path


def _listed(items: Any) -> list[Any]:
    return items if isinstance(items, list) else [items]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)
