"""A run's job events as Gradio updates of its tab's output components: status lines, Gradio's
progress bar, live previews in the gallery, then the results.

A status line names the node the user sees (``NodeStarted.title``: the server's ``display_node``
where it differs) and, once the server has sent ``progress_state``, how much of the whole workflow
is done (``Job.graph_progress``); a server's notification is shown as it comes. ComfyUI's own log lines
(``LogLines``, when the app shows its "Server log") go to a ``ServerLog`` the panel reads instead."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gradio as gr
from PIL import Image

from ..comfy.events import JobEvent, LogLines, NodeStarted, Notification, Preview, Progress
from ..comfy.job import Job
from ..comfy.results import NO_OUTPUT, RunResult
from .widgets import describe

__all__ = ["Outputs", "RunStream", "ServerLog", "gallery_of", "status_line"]

PREVIEW_INTERVAL = 0.25  # seconds between preview frames pushed to the browser
IDLE_WAKE = 1.0  # seconds between wake-ups of a run's event loop while nothing happens
STATUS_INTERVAL = 0.5  # seconds between status lines sent to the browser
FIRST_STATUS = 1.0  # seconds into a job before its first status line
PROGRESS_INTERVAL = 0.25  # seconds between progress-bar updates


@dataclass
class Outputs:
    """A tab's output components; the optional ones exist when its workflow has such an output node."""

    status: gr.Markdown
    gallery: gr.Gallery
    info: gr.JSON
    video: gr.Video | None = None
    audio: gr.Audio | None = None
    text: gr.Textbox | None = None
    model3d: gr.Model3D | None = None

    def components(self) -> list[gr.components.Component]:
        return [c for c in (self.status, self.gallery, self.info, self.video, self.audio, self.text, self.model3d)
                if c]


@dataclass
class RunStream:
    """The updates of one click of Generate (one or more jobs) for ``outputs``. ``eta`` gives a
    job's seconds left, if known."""

    outputs: Outputs
    eta: Callable[[Job], float | None]
    previews: bool  # live previews go to browser pages only: an API caller sees just the final result
    log: "ServerLog | None" = None  # where LogLines go (the "Server log" panel), if the app shows it

    def all(self, jobs: list[Job], progress: gr.Progress) -> Iterator[dict]:
        """Every job's progress, then its results added to the gallery; returns the results."""
        out = self.outputs
        # At once: clears the last results, and Gradio can only cancel a generator that has yielded.
        yield {out.status: "⏳ Sent to ComfyUI…", out.gallery: []}
        results: list[RunResult] = []
        for index, job in enumerate(jobs):
            prefix = f"Run {index + 1} of {len(jobs)}: " if len(jobs) > 1 else ""
            yield from self.one(job, progress, prefix, results)
            results.append(job.result())
            if index < len(jobs) - 1:  # the last one's images come with the final update
                yield {out.gallery: gallery_of(results)}
        return results

    def one(self, job: Job, progress: gr.Progress, prefix: str, done: list[RunResult]) -> Iterator[dict]:
        """Status lines and previews of one job, at most a few per second (each update costs
        Gradio a pass over every output component, so a 20-step job must not send 40). Status and
        progress start a second in: a quick job needs none (Gradio shows a timer meanwhile)."""
        out = self.outputs
        quiet_until = time.monotonic() + FIRST_STATUS - STATUS_INTERVAL
        sent = {"status": quiet_until, "preview": 0.0, "progress": quiet_until, "any": time.monotonic()}
        for event in job.events(idle=IDLE_WAKE):
            now = time.monotonic()
            if isinstance(event, LogLines):
                for entry in event.entries if self.log is not None else ():
                    self.log.add(entry.text)
                continue
            if isinstance(event, Preview):
                if self.previews and _due(sent, "preview", now, PREVIEW_INTERVAL):
                    sent["any"] = now
                    yield {out.gallery: gallery_of(done) + [(_preview_image(event), "preview")]}
                continue
            if isinstance(event, Progress) and event.max and _due(sent, "progress", now, PROGRESS_INTERVAL):
                progress((event.value, event.max), desc=event.title)
            line = status_line(event, job.graph_progress, self.eta(job)) if event is not None else ""
            if line and _due(sent, "status", now, STATUS_INTERVAL):
                sent["any"] = now
                yield {out.status: prefix + line}
            elif _due(sent, "any", now, IDLE_WAKE):
                yield {out.status: gr.skip()}  # lets Gradio stop this generator if the caller cancelled

    def final(self, results: list[RunResult]) -> dict:
        """The last update: status with the time and seeds, every result in its component, the details."""
        out = self.outputs
        seeds = ", ".join(f"{k} {v}" for r in results for k, v in r.seeds.items())
        total = sum(r.duration for r in results) if len(results) == 1 else max(r.duration for r in results)
        produced = any(r.outputs for r in results)
        update: dict = {
            out.status: (f"✅ Done in {total:.1f} s" if produced else f"⚠️ {NO_OUTPUT} ({total:.1f} s)")
            + (f" · {seeds}" if seeds else ""),
            out.gallery: gallery_of(results),
            out.info: [_details(r) for r in results] if len(results) > 1 else _details(results[0]),
        }
        if out.video is not None:
            update[out.video] = next((str(v.path) for r in results for v in r.videos), None)
        if out.audio is not None:
            update[out.audio] = next((str(a.path) for r in results for a in r.audios), None)
        if out.text is not None:
            update[out.text] = "\n\n".join(t for r in results for t in r.texts)
        if out.model3d is not None:
            update[out.model3d] = next((str(m.path) for r in results for m in r.models3d), None)
        return update


def status_line(event: JobEvent, graph_progress: float | None, eta: float | None = None) -> str:
    """The line for ``event``: ``widgets.describe``'s, with the share of the workflow done while a
    node runs, or a notification's text ('' for events that need no line)."""
    if isinstance(event, Notification):
        return f"ℹ️ {event.text}" if event.text else ""
    line = describe(event, eta)
    if line and isinstance(event, (NodeStarted, Progress)) and graph_progress is not None:
        return f"{line} · {graph_progress:.0%} of the workflow done"
    return line


def gallery_of(results: list[RunResult]) -> list[tuple[str, str]]:
    """Images of the results, captioned with their output name; previews are marked as such."""
    return [(str(o.path), f"{o.output_name} (preview)" if o.preview else o.output_name)
            for r in results for o in r.images]


def _due(sent: dict[str, float], kind: str, now: float, interval: float) -> bool:
    """True (and noted) when an update of ``kind`` may be sent ``interval`` s after the last one."""
    if now - sent[kind] < interval:
        return False
    sent[kind] = now
    return True


def _details(result: RunResult) -> dict[str, Any]:
    return {"prompt_id": result.prompt_id, "seeds": result.seeds, "duration_s": round(result.duration, 3),
            "values": {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
                       for k, v in result.values.items()}, "server": result.server}


def _preview_image(event: Preview) -> Image.Image:
    image = Image.open(io.BytesIO(event.image))
    image.load()
    return image


class ServerLog:
    """The tail of ComfyUI's log as one person's "Server log" panel shows it: at most ``limit``
    characters, and a write starting with ``\\r`` (a progress bar) replaces the unfinished line before
    it, as ComfyUI's own log buffer does (``app/logger.py``). Written by a run, read by the panel."""

    def __init__(self, limit: int = 20_000) -> None:
        self._text = ""
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        """One write to the server's stdout or stderr (a ``LogEntry``'s text)."""
        with self._lock:
            if text.startswith("\r") and not self._text.endswith("\n"):
                self._text = self._text[: self._text.rfind("\n") + 1]
            self._text = (self._text + text.lstrip("\r"))[-self._limit:]

    def text(self) -> str:
        with self._lock:
            return self._text
