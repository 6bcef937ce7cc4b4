"""The Gradio app: one tab per workflow, built at start-up so every tab is in the API.

Each tab is built in two steps (facefusion's render/listen): ``TabView.render`` lays out the
components from a ``TabSpec``; ``TabView.listen`` wires Generate and Cancel. Generate streams
job events into a status line, Gradio's progress bar and the gallery (live previews, then the
results). Values travel as a dict by parameter name; the API names are the schema's names.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from PIL import Image

from .catalog import Catalog
from .client import Job
from .config import Settings
from .errors import ComfyGradioError, ConfigError, JobCancelled
from .events import Cached, JobEvent, NodeStarted, Preview, Progress, Queued, Started
from .results import RunResult
from .pool import ComfyPool
from .schema import Param, TabSpec, load_tab

__all__ = ["TabLoad", "build_app", "discover_tabs", "servers_panel"]

log = logging.getLogger(__name__)

PREVIEW_INTERVAL = 0.25  # seconds between preview frames pushed to the browser
PANEL_REFRESH = 5.0  # seconds between refreshes of the servers panel (reads the pool's state only)
VIDEO_CLASSES = ("SaveVideo", "SaveWEBM", "VHS_VideoCombine", "SaveAnimatedWEBP", "SaveAnimatedPNG")
AUDIO_CLASSES = ("SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio")
TEXT_CLASSES = ("PreviewAny",)


@dataclass(frozen=True)
class TabLoad:
    """A workflow file found in the folder: its spec, or why it could not be loaded."""

    name: str
    path: Path
    spec: TabSpec | None = None
    error: ConfigError | None = None


def discover_tabs(folder: Path, catalog: Catalog | None) -> list[TabLoad]:
    """Load every ``*.json`` in ``folder``; a broken one is kept with its error, never raised."""
    loads = []
    for path in sorted(folder.glob("*.json")):
        try:
            loads.append(TabLoad(path.stem, path, spec=load_tab(path, catalog)))
        except ConfigError as exc:
            log.error("Workflow %s cannot be used:\n%s", path, exc)
            loads.append(TabLoad(path.stem, path, error=exc))
    return loads


def servers_panel(pool: ComfyPool) -> str:
    """The state of the ComfyUI server(s) for the top of the page ('' when one server is fine)."""
    statuses = pool.statuses()
    down = [s for s in statuses if not s.healthy]
    if len(statuses) == 1:
        if not down:
            return ""
        return (f"⚠️ **ComfyUI is not reachable.** {down[0].error} The tabs below will work as soon as it "
                "is up.")
    rows = "\n".join(f"| {s.url} | {'🟢 up' if s.healthy else '🔴 down'} | {s.queue_remaining} | {s.in_flight} |"
                     for s in statuses)
    note = "⚠️ **Some ComfyUI servers are down**; jobs go to the others.\n\n" if down else ""
    return f"{note}| ComfyUI server | state | queue | jobs from here |\n|---|---|---|---|\n{rows}"


class _Jobs:
    """The running job of each (browser session, tab), so Cancel stops only that person's job."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()

    def put(self, key: tuple[str, str], job: Job) -> None:
        with self._lock:
            self._jobs[key] = job

    def pop(self, key: tuple[str, str], job: Job | None = None) -> Job | None:
        with self._lock:
            if job is not None and self._jobs.get(key) is not job:
                return None
            return self._jobs.pop(key, None)


@dataclass
class _Outputs:
    status: gr.Markdown
    gallery: gr.Gallery
    info: gr.JSON
    video: gr.Video | None = None
    audio: gr.Audio | None = None
    text: gr.Textbox | None = None

    def components(self) -> list[gr.components.Component]:
        return [c for c in (self.status, self.gallery, self.info, self.video, self.audio, self.text) if c]


@dataclass
class TabView:
    spec: TabSpec
    backend: ComfyPool
    settings: Settings
    jobs: _Jobs
    inputs: dict[str, gr.components.Component] = field(default_factory=dict)
    outputs: _Outputs | None = None
    generate: gr.Button | None = None
    cancel: gr.Button | None = None

    # ---- render -----------------------------------------------------------------------------

    def render(self) -> None:
        if self.spec.description:
            gr.Markdown(self.spec.description)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                self._render_form()
            with gr.Column(scale=1):
                self.outputs = self._render_outputs()

    def _render_form(self) -> None:
        for param in self.spec.params:
            if not param.advanced:
                self._render_param(param)
        advanced = [p for p in self.spec.params if p.advanced]
        if advanced:
            with gr.Accordion("Advanced", open=False):
                for param in advanced:
                    self._render_param(param)
        with gr.Row():
            self.generate = gr.Button("Generate", variant="primary", elem_id=f"{self.spec.name}-generate")
            self.cancel = gr.Button("Cancel", variant="stop", elem_id=f"{self.spec.name}-cancel")

    def _render_param(self, param: Param) -> None:
        if param.is_seed:
            with gr.Row():
                self.inputs[param.name] = widget_for(param, self.spec.name)
                self.inputs[f"{param.name}_randomize"] = gr.Checkbox(
                    value=param.randomize, label="Randomize", min_width=80, scale=0,
                    elem_id=f"{self.spec.name}-{param.name}-randomize")
            return
        self.inputs[param.name] = widget_for(param, self.spec.name)

    def _render_outputs(self) -> _Outputs:
        status = gr.Markdown("", label="status", elem_id=f"{self.spec.name}-status")
        gallery = gr.Gallery(label=self._output_label(), columns=2, height="auto", format="png",
                             elem_id=f"{self.spec.name}-gallery", interactive=False)
        classes = {n["class_type"] for n in self.spec.workflow.nodes.values()}
        outputs = _Outputs(status, gallery, gr.JSON(visible=False))  # replaced below, inside its accordion
        if classes & set(VIDEO_CLASSES):
            outputs.video = gr.Video(label="Video", interactive=False)
        if classes & set(AUDIO_CLASSES):
            outputs.audio = gr.Audio(label="Audio", interactive=False, type="filepath")
        if classes & set(TEXT_CLASSES):
            outputs.text = gr.Textbox(label="Text", interactive=False, lines=4)
        with gr.Accordion("Run details", open=False):
            outputs.info = gr.JSON(label="run details", show_label=False)
        return outputs

    def _output_label(self) -> str:
        return self.spec.outputs[0].label if len(self.spec.outputs) == 1 else "Results"

    # ---- listen -----------------------------------------------------------------------------

    def listen(self) -> None:
        assert self.generate and self.cancel and self.outputs
        run = self.generate.click(self._run, inputs_kwargs=self.inputs, outputs=self.outputs.components(),
                                  api_name=self.spec.name, api_description=self.spec.description or None)
        self.cancel.click(self._cancel, outputs=[self.outputs.status], cancels=[run],
                          api_name=f"{self.spec.name}_cancel", queue=False)

    def _run(self, request: gr.Request, progress: gr.Progress = gr.Progress(), **form: Any) -> Iterator[dict]:
        key = (request.session_hash or "api", self.spec.name)
        out = self.outputs
        assert out is not None
        job_dir = self.settings.output_dir / _session_folder(request) / time.strftime("%Y%m%d-%H%M%S")
        try:
            job = self.backend.submit(self.spec, form_values(self.spec, form),
                                      timeout=self.settings.job_timeout, job_dir=job_dir)
        except ComfyGradioError as exc:
            raise gr.Error(str(exc), title="Could not start") from exc
        self.jobs.put(key, job)
        try:
            yield from self._stream(job, progress)
            result = job.result()
        except JobCancelled as exc:
            yield {out.status: f"⏹️ {exc}"}
            return
        except ComfyGradioError as exc:
            raise gr.Error(str(exc), title="The run failed") from exc
        finally:
            if not job.done:  # the browser or API client went away: stop the server-side work too
                job.cancel()
            self.jobs.pop(key, job)
        yield self._final(result)

    def _stream(self, job: Job, progress: gr.Progress) -> Iterator[dict]:
        out = self.outputs
        assert out is not None
        yield {out.status: "⏳ Sent to ComfyUI…", out.gallery: []}
        last_preview = 0.0
        for event in job.events():
            if isinstance(event, Preview):
                if time.monotonic() - last_preview >= PREVIEW_INTERVAL:
                    last_preview = time.monotonic()
                    yield {out.gallery: [_preview_image(event)]}
                continue
            line = describe(event)
            if isinstance(event, Progress) and event.max:
                progress((event.value, event.max), desc=event.title)
            if line:
                yield {out.status: line}

    def _final(self, result: RunResult) -> dict:
        out = self.outputs
        assert out is not None
        seeds = ", ".join(f"{k} {v}" for k, v in result.seeds.items())
        update: dict = {
            out.status: f"✅ Done in {result.duration:.1f} s" + (f" · {seeds}" if seeds else ""),
            out.gallery: [(str(o.path), o.output_name) for o in result.images],
            out.info: {"prompt_id": result.prompt_id, "seeds": result.seeds, "duration_s": round(result.duration, 3),
                       "values": _jsonable(result.values), "server": result.server},
        }
        if out.video is not None:
            update[out.video] = str(result.videos[0].path) if result.videos else None
        if out.audio is not None:
            update[out.audio] = str(result.audios[0].path) if result.audios else None
        if out.text is not None:
            update[out.text] = "\n\n".join(result.texts)
        return update

    def _cancel(self, request: gr.Request) -> str:
        job = self.jobs.pop((request.session_hash or "api", self.spec.name))
        if job is None:
            return "Nothing to cancel."
        job.cancel()
        return "⏹️ Cancelled."


def widget_for(param: Param, tab_name: str) -> gr.components.Component:
    """The Gradio component for one parameter (element id ``<tab>-<parameter>``)."""
    common: dict[str, Any] = {"label": param.label, "info": param.info[:200] or None,
                              "elem_id": f"{tab_name}-{param.name}"}
    if param.kind == "image":
        return gr.Image(label=param.label, type="filepath", sources=["upload", "clipboard"],
                        elem_id=common["elem_id"], height=300)
    if param.kind == "bool":
        return gr.Checkbox(value=bool(param.default), **common)
    if param.kind == "choice":
        return _dropdown(param, common)
    if param.kind in ("int", "float"):
        return _number(param, common)
    return gr.Textbox(value=param.default or "", lines=param.lines, **common)


def _dropdown(param: Param, common: dict[str, Any]) -> gr.Dropdown:
    choices = list(param.choices)
    if param.default is not None and param.default not in choices:
        choices = choices or [param.default]
    value = param.default if param.default in choices else (choices[0] if choices else None)
    return gr.Dropdown(choices=choices, value=value, filterable=True, allow_custom_value=not param.choices,
                       **common)


def _number(param: Param, common: dict[str, Any]) -> gr.components.Component:
    step = param.step or (1 if param.kind == "int" else 0.01)
    bounded = param.minimum is not None and param.maximum is not None
    if param.widget == "slider" or (bounded and param.widget != "number" and not param.is_seed
                                    and (param.maximum - param.minimum) / step <= 10_000):
        return gr.Slider(minimum=param.minimum, maximum=param.maximum, step=step, value=param.default, **common)
    precision = 0 if param.kind == "int" else None
    return gr.Number(value=param.default, precision=precision, minimum=param.minimum, maximum=param.maximum,
                     step=step, **common)


def form_values(spec: TabSpec, form: dict[str, Any]) -> dict[str, Any]:
    """Form values by parameter name: a ticked "Randomize" means no seed; no upload means the default."""
    values: dict[str, Any] = {}
    for param in spec.params:
        value = form.get(param.name)
        if param.is_seed and form.get(f"{param.name}_randomize"):
            value = None
        if param.kind == "image" and not value:
            continue
        if param.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[param.name] = value
    return values


def describe(event: JobEvent) -> str:
    """The status line for a job event ('' for events that need no line)."""
    if isinstance(event, Queued):
        return "⏳ Next in line…" if event.position == 0 else f"⏳ Waiting in the queue: {event.position} ahead"
    if isinstance(event, Started):
        return "▶️ Started"
    if isinstance(event, NodeStarted):
        return f"▶️ {event.title}"
    if isinstance(event, Progress):
        return f"▶️ {event.title}: step {event.value} of {event.max}"
    if isinstance(event, Cached):
        return ""
    return ""


def _preview_image(event: Preview) -> Image.Image:
    image = Image.open(io.BytesIO(event.image))
    image.load()
    return image


def _session_folder(request: gr.Request) -> str:
    session = request.session_hash or "api"
    return "".join(c for c in session if c.isalnum())[:32] or "api"


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in values.items()}


def build_app(settings: Settings, backend: ComfyPool, tabs: list[TabLoad]) -> gr.Blocks:
    """Lay out the page, then wire every tab."""
    jobs = _Jobs()
    views: list[TabView] = []
    with gr.Blocks(title="ComfyUI workflows") as app:
        banner = gr.Markdown(servers_panel(backend), elem_id="server-banner")
        with gr.Tabs():
            for load in tabs:
                with gr.Tab(load.spec.title if load.spec else f"⚠️ {load.name}", id=load.name):
                    if load.spec is None:
                        _render_broken(load)
                        continue
                    view = TabView(load.spec, backend, settings, jobs)
                    view.render()
                    views.append(view)
            if not tabs:
                with gr.Tab("No workflows"):
                    gr.Markdown(f"No workflow files were found in `{settings.workflows_dir}`. Put a ComfyUI "
                                "workflow (`NAME.json`, exported with *Export (API)*) there and restart.")
        for view in views:
            view.listen()
        refresh = gr.Timer(PANEL_REFRESH)
        for trigger in (app.load, refresh.tick):
            trigger(lambda: servers_panel(backend), outputs=[banner], api_visibility="private", queue=False,
                    show_progress="hidden")
    return app


def _render_broken(load: TabLoad) -> None:
    assert load.error is not None
    problems = "\n".join(f"- `{p}`" for p in load.error.problems)
    gr.Markdown(f"### This workflow cannot be used yet\n\n{problems}\n\nFix the file(s) and restart the app. "
                "The other tabs work normally.", elem_id=f"{load.name}-error")
