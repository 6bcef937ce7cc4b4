"""The Gradio app: one tab per workflow, built at start-up so every tab is in the API.

Each tab is built in two steps (facefusion's render/listen): ``TabView.render`` lays out the
components from a ``TabSpec``; ``TabView.listen`` wires the events. Generate streams job events
into a status line, Gradio's progress bar and the gallery (live previews, then the results).
Values travel as a dict by parameter name; the API names are the schema's names.

Who owns a run: a browser keeps a random owner id in its local storage (``gr.BrowserState``).
A run started from a page keeps going if the page is reloaded or the connection drops, and is
listed again under "Your recent runs"; only its Cancel button stops it. A run started through
the API (no owner id) is stopped when its caller cancels (``job.cancel()``) or goes away.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from PIL import Image

from ..forms.catalog import Catalog
from .config import Settings
from ..errors import ComfyGradioError, ConfigError, JobCancelled
from ..comfy.events import Preview, Progress
from ..comfy.job import Job
from ..comfy.pool import ComfyPool
from ..forms.prepare import random_seed
from ..comfy.results import RunResult
from .runs import RunBook, RunRecord, owner_folder
from ..forms.loader import TabLoad
from ..forms.schema import Param, TabSpec
from ..forms.vocabulary import OUTPUT_CLASSES_BY_KIND
from .widgets import describe, form_values, widget_for

__all__ = ["build_app", "servers_panel"]

log = logging.getLogger(__name__)

PREVIEW_INTERVAL = 0.25  # seconds between preview frames pushed to the browser
IDLE_WAKE = 1.0  # seconds between wake-ups of a run's event loop while nothing happens
STATUS_INTERVAL = 0.5  # seconds between status lines sent to the browser
FIRST_STATUS = 1.0  # seconds into a job before its first status line
PROGRESS_INTERVAL = 0.25  # seconds between progress-bar updates
PANEL_REFRESH = 5.0  # seconds between refreshes of the servers panel (reads the pool's state only)
OWNER_KEY = "comfyui-gradio-owner"


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


class _Active:
    """Runs going on, by caller (browser page or API session), for Cancel and the in-flight limit."""

    def __init__(self) -> None:
        self._jobs: dict[str, list[tuple[str, Job]]] = {}  # caller -> [(tab, job)]
        self._lock = threading.Lock()

    def add(self, caller: str, tab: str, job: Job) -> None:
        with self._lock:
            self._jobs.setdefault(caller, []).append((tab, job))
        job.add_done_callback(lambda j: self._remove(caller, j))

    def _remove(self, caller: str, job: Job) -> None:
        with self._lock:
            self._jobs[caller] = [(t, j) for t, j in self._jobs.get(caller, []) if j is not job]

    def count(self, caller: str) -> int:
        with self._lock:
            return len(self._jobs.get(caller, []))

    def of(self, caller: str, tab: str) -> list[Job]:
        with self._lock:
            return [j for t, j in self._jobs.get(caller, []) if t == tab]


@dataclass
class _Outputs:
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
class _History:
    picker: gr.Dropdown
    detail: gr.Markdown
    gallery: gr.Gallery
    again: gr.Button
    timer: gr.Timer


@dataclass
class _Shared:
    """What every tab of one app shares."""

    settings: Settings
    backend: ComfyPool
    runs: RunBook
    active: _Active = field(default_factory=_Active)
    owners: dict[str, str] = field(default_factory=dict)  # browser session -> owner id, set on page load

    def welcome(self, owner: str | None, request: gr.Request) -> str:
        """On page load: the browser's owner id (a new one the first time), remembered for its session."""
        owner = owner or uuid.uuid4().hex
        if request.session_hash:
            self.owners[request.session_hash] = owner
        return owner

    def goodbye(self, request: gr.Request) -> None:
        self.owners.pop(request.session_hash or "", None)


@dataclass
class TabView:
    spec: TabSpec
    shared: _Shared
    owner: gr.BrowserState
    inputs: dict[str, gr.components.Component] = field(default_factory=dict)
    outputs: _Outputs | None = None
    history: _History | None = None
    generate: gr.Button | None = None
    cancel: gr.Button | None = None

    # ---- render -----------------------------------------------------------------------------

    def render(self) -> None:
        if self.spec.description:
            gr.Markdown(self.spec.description)
        if self.spec.notes:
            gr.Markdown("\n".join(f"- ⚠️ {note}" for note in self.spec.notes), elem_id=f"{self.spec.name}-notes")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                self._render_form()
            with gr.Column(scale=1):
                self.outputs = self._render_outputs()
        self.history = self._render_history()

    def _render_form(self) -> None:
        for param in self.spec.params:
            if not param.advanced:
                self._render_param(param)
        with gr.Accordion("Advanced", open=False, elem_id=f"{self.spec.name}-advanced"):
            for param in self.spec.params:
                if param.advanced:
                    self._render_param(param)
            self._render_runs()
        with gr.Row():
            self.generate = gr.Button("Generate", variant="primary", elem_id=f"{self.spec.name}-generate")
            self.cancel = gr.Button("Cancel", variant="secondary", elem_id=f"{self.spec.name}-cancel")

    def _render_param(self, param: Param) -> None:
        if param.is_seed:
            with gr.Row():
                self.inputs[param.name] = widget_for(param, self.spec.name)
                self.inputs[f"{param.name}_randomize"] = gr.Checkbox(
                    value=param.randomize, label="Randomize", min_width=80, scale=0,
                    elem_id=f"{self.spec.name}-{param.name}-randomize")
            return
        self.inputs[param.name] = widget_for(param, self.spec.name)

    def _render_runs(self) -> None:
        limit = self.shared.settings.max_runs
        self.inputs["runs"] = gr.Slider(1, limit, value=1, step=1, label="Runs", elem_id=f"{self.spec.name}-runs",
                                        info=f"Run the workflow up to {limit} times; results add to the gallery")
        if any(p.is_seed for p in self.spec.params):
            self.inputs["seed_mode"] = gr.Radio(["random", "increment"], value="random", label="Seeds of the runs",
                                                elem_id=f"{self.spec.name}-seed_mode",
                                                info="random: a new seed each run; increment: seed, seed+1, ...")

    def _render_outputs(self) -> _Outputs:
        status = gr.Markdown("", label="status", elem_id=f"{self.spec.name}-status")
        gallery = gr.Gallery(label=self._output_label(), columns=2, height="auto", format="png", object_fit="contain",
                             elem_id=f"{self.spec.name}-gallery", interactive=False)
        classes = {n["class_type"] for n in self.spec.workflow.nodes.values()}
        outputs = _Outputs(status, gallery, gr.JSON(visible=False))  # replaced below, inside its accordion
        if classes & set(OUTPUT_CLASSES_BY_KIND["video"]):
            outputs.video = gr.Video(label="Video", interactive=False)
        if classes & set(OUTPUT_CLASSES_BY_KIND["audio"]):
            outputs.audio = gr.Audio(label="Audio", interactive=False, type="filepath")
        if classes & set(OUTPUT_CLASSES_BY_KIND["text"]):
            outputs.text = gr.Textbox(label="Text", interactive=False, lines=4)
        if classes & set(OUTPUT_CLASSES_BY_KIND["model3d"]):
            outputs.model3d = gr.Model3D(label="3D model", interactive=False)
        with gr.Accordion("Run details", open=False):
            outputs.info = gr.JSON(label="run details", show_label=False)
        return outputs

    def _render_history(self) -> _History:
        with gr.Accordion("Your recent runs", open=False, elem_id=f"{self.spec.name}-history"):
            picker = gr.Dropdown(label="Run", choices=[], value=None, elem_id=f"{self.spec.name}-history-pick")
            detail = gr.Markdown("")
            gallery = gr.Gallery(label="Its results", columns=4, height=220, object_fit="contain", interactive=False)
            again = gr.Button("Run again with these settings", elem_id=f"{self.spec.name}-again")
        return _History(picker, detail, gallery, again, gr.Timer(2.0, active=False))

    def _output_label(self) -> str:
        return self.spec.outputs[0].label if len(self.spec.outputs) == 1 else "Results"

    # ---- listen -----------------------------------------------------------------------------

    def listen(self, page_load: Any) -> None:
        assert self.generate and self.cancel and self.outputs and self.history
        run = self.generate.click(self._endpoint(), inputs_kwargs=self.inputs,
                                  outputs=self.outputs.components(), api_name=self.spec.name,
                                  api_description=self.spec.description or None,
                                  show_progress_on=[self.outputs.status])  # keeps live previews visible
        # Cancel stops this person's jobs on ComfyUI and ends the streaming run at once.
        self.cancel.click(self._cancel, outputs=[self.outputs.status], api_name=f"{self.spec.name}_cancel",
                          queue=False, cancels=[run], api_visibility="undocumented")  # not an MCP tool
        for param in self.spec.params:
            if param.is_seed:
                randomize = self.inputs[f"{param.name}_randomize"]
                randomize.change(lambda on: gr.update(interactive=not on), inputs=[randomize],
                                 outputs=[self.inputs[param.name]], api_visibility="private", queue=False)
        self._listen_history(run, page_load)

    def _listen_history(self, run: Any, page_load: Any) -> None:
        h = self.history
        assert h is not None
        listing = dict(fn=self._list_runs, inputs=[self.owner, h.picker],
                       outputs=[h.picker, h.timer, h.detail, h.gallery], api_visibility="private", queue=False,
                       show_progress="hidden")
        for trigger in (page_load.then, self.generate.click, run.then, h.timer.tick):
            trigger(**listing)
        h.picker.change(self._show_run, inputs=[self.owner, h.picker], outputs=[h.detail, h.gallery],
                        api_visibility="private", queue=False)
        h.again.click(self._fill_form, inputs=[self.owner, h.picker], outputs=list(self.inputs.values()),
                      api_visibility="private", queue=False)

    def _endpoint(self) -> Any:
        """``_run`` under the tab's name, with a docstring describing every parameter: Gradio's
        MCP server turns it into the tool's parameter descriptions."""

        def endpoint(request: gr.Request, progress: gr.Progress = gr.Progress(), runs: float = 1,
                     seed_mode: str = "random", **form: Any) -> Iterator[dict]:
            yield from self._run(request, progress, runs, seed_mode, **form)

        endpoint.__name__ = endpoint.__qualname__ = self.spec.name
        endpoint.__doc__ = tool_docstring(self.spec, self.shared.settings.max_runs)
        fixed = list(inspect.signature(endpoint).parameters.values())[:2]  # request, progress
        named = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in self.inputs]
        endpoint.__signature__ = inspect.Signature(fixed + named)  # type: ignore[attr-defined]
        return endpoint

    # ---- generate ---------------------------------------------------------------------------

    def _run(self, request: gr.Request, progress: gr.Progress = gr.Progress(), runs: float = 1,
             seed_mode: str = "random", **form: Any) -> Iterator[dict]:
        owner = self.shared.owners.get(request.session_hash or "")  # None for API callers
        caller = owner or request.session_hash or "api"
        jobs = self._submit(caller, int(runs or 1), seed_mode, form)
        out = self.outputs
        assert out is not None
        finished = False
        try:
            results = yield from self._stream_all(jobs, progress, previews=owner is not None)
            finished = True
        except JobCancelled as exc:
            yield {out.status: f"⏹️ {exc}"}
            return
        except ComfyGradioError as exc:
            raise gr.Error(str(exc), title="The run failed") from exc
        finally:
            if not finished and not owner:  # an API caller cancelled or went away: stop the work too
                for job in jobs:
                    job.cancel()
        yield self._final(results)

    def _submit(self, caller: str, runs: int, seed_mode: str, form: dict[str, Any]) -> list[Job]:
        settings = self.shared.settings
        if not 1 <= runs <= settings.max_runs:
            raise gr.Error(f"Runs: choose between 1 and {settings.max_runs}.", title="Could not start")
        going = self.shared.active.count(caller)
        if going + runs > settings.max_in_flight:
            raise gr.Error(f"You already have {going} run(s) going and may have at most {settings.max_in_flight} "
                           "at once. Wait for one to finish, or cancel it.", title="Too many runs")
        jobs: list[Job] = []
        for values in self._batch(form_values(self.spec, form), runs, seed_mode):
            try:
                job = self.shared.backend.submit(self.spec, values, timeout=settings.job_timeout,
                                                 output_dir=self.shared.runs.root / owner_folder(caller))
            except ComfyGradioError as exc:
                for started in jobs:
                    started.cancel()
                raise gr.Error(str(exc), title="Could not start") from exc
            self.shared.active.add(caller, self.spec.name, job)
            self.shared.runs.start(caller, self.spec, {**form, **_uploaded(job)}, job)
            jobs.append(job)
        return jobs

    def _batch(self, values: dict[str, Any], runs: int, seed_mode: str) -> Iterator[dict[str, Any]]:
        """The values of each run: the form's seed first, then a new random seed for each further run
        ("random"), or seed+1, seed+2, ... ("increment")."""
        seeds = [p for p in self.spec.params if p.is_seed]
        for index in range(runs):
            run_values = dict(values)
            for param in seeds:
                if index and seed_mode == "increment":
                    run_values[param.name] = int(values[param.name]) + index
                elif index:
                    run_values[param.name] = random_seed(param)
            yield run_values

    def _stream_all(self, jobs: list[Job], progress: gr.Progress, previews: bool) -> Iterator[dict]:
        """Every job's progress, then its results added to the gallery. Live previews go to browser
        pages only: an API caller sees just the final result, so streaming them would be waste."""
        out = self.outputs
        assert out is not None
        # At once: clears the last results, and Gradio can only cancel a generator that has yielded.
        yield {out.status: "⏳ Sent to ComfyUI…", out.gallery: []}
        results: list[RunResult] = []
        for index, job in enumerate(jobs):
            prefix = f"Run {index + 1} of {len(jobs)}: " if len(jobs) > 1 else ""
            yield from self._stream(job, progress, prefix, results, previews)
            results.append(job.result())
            if index < len(jobs) - 1:  # the last one's images come with the final update
                yield {out.gallery: _gallery(results)}
        return results

    def _stream(self, job: Job, progress: gr.Progress, prefix: str, done: list[RunResult],
                previews: bool) -> Iterator[dict]:
        """Status lines and previews of one job, at most a few per second (each update costs
        Gradio a pass over every output component, so a 20-step job must not send 40). Status and
        progress start a second in: a quick job needs none (Gradio shows a timer meanwhile)."""
        out = self.outputs
        assert out is not None
        quiet_until = time.monotonic() + FIRST_STATUS - STATUS_INTERVAL
        sent = {"status": quiet_until, "preview": 0.0, "progress": quiet_until, "any": time.monotonic()}
        for event in job.events(idle=IDLE_WAKE):
            now = time.monotonic()
            if isinstance(event, Preview):
                if previews and _due(sent, "preview", now, PREVIEW_INTERVAL):
                    sent["any"] = now
                    yield {out.gallery: _gallery(done) + [(_preview_image(event), "preview")]}
                continue
            if isinstance(event, Progress) and event.max and _due(sent, "progress", now, PROGRESS_INTERVAL):
                progress((event.value, event.max), desc=event.title)
            line = describe(event, self._eta(job)) if event is not None else ""
            if line and _due(sent, "status", now, STATUS_INTERVAL):
                sent["any"] = now
                yield {out.status: prefix + line}
            elif _due(sent, "any", now, IDLE_WAKE):
                yield {out.status: gr.skip()}  # lets Gradio stop this generator if the caller cancelled

    def _eta(self, job: Job) -> float | None:
        if job.started_at is None:
            return None
        return self.shared.backend.durations.remaining(self.spec.name, time.monotonic() - job.started_at)

    def _final(self, results: list[RunResult]) -> dict:
        out = self.outputs
        assert out is not None
        seeds = ", ".join(f"{k} {v}" for r in results for k, v in r.seeds.items())
        total = sum(r.duration for r in results) if len(results) == 1 else max(r.duration for r in results)
        update: dict = {
            out.status: f"✅ Done in {total:.1f} s" + (f" · {seeds}" if seeds else ""),
            out.gallery: _gallery(results),
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

    def _cancel(self, request: gr.Request) -> Any:
        session = request.session_hash or "api"
        caller = self.shared.owners.get(session, session)
        jobs = self.shared.active.of(caller, self.spec.name)
        for job in jobs:
            job.cancel()
        return "⏹️ Cancelled: the run was stopped on ComfyUI." if jobs else "Nothing to cancel."

    # ---- recent runs ------------------------------------------------------------------------

    def _list_runs(self, owner: str | None, selected: str | None) -> tuple[Any, ...]:
        """The picker's runs (newest first), the shown run, and a timer kept on while any is running."""
        runs = self.shared.runs.recent(owner, self.spec.name) if owner else []
        choices = [(r.label(), r.run_id) for r in runs]
        value = selected if any(r.run_id == selected for r in runs) else (runs[0].run_id if runs else None)
        running = any(r.status == "running" for r in runs)
        return (gr.update(choices=choices, value=value), gr.Timer(active=running), *self._show_run(owner, value))

    def _show_run(self, owner: str | None, run_id: str | None) -> tuple[str, list]:
        record = self.shared.runs.get(owner, run_id) if owner and run_id else None
        if record is None:
            return "", []
        return _record_text(record), [(o["path"], o["output_name"]) for o in record.outputs if o["kind"] == "image"]

    def _fill_form(self, owner: str | None, run_id: str | None) -> list[Any]:
        record = self.shared.runs.get(owner, run_id) if owner and run_id else None
        if record is None:
            return [gr.update() for _ in self.inputs]
        form = {**record.form, **{f"{k}_randomize": False for k in record.seeds}, **record.seeds}
        return [form.get(name, gr.update()) if name in form else gr.update() for name in self.inputs]


def tool_docstring(spec: TabSpec, max_runs: int) -> str:
    """A Google-style docstring for a tab's endpoint (description, Args, Returns)."""
    lines = [f"{spec.title}. {spec.description}".strip(), "", "Args:"]
    for param in spec.params:
        kind = {"image": "an image file", "video": "a video file", "audio": "an audio file"}.get(param.kind, param.kind)
        limits = "".join(f", {b} {v:g}" for b, v in (("min", param.minimum), ("max", param.maximum)) if v is not None)
        info = f" {param.info.strip()}" if param.info.strip() else ""
        lines.append(f"    {param.name}: {param.label} ({kind}{limits}).{info}".replace("\n", " "))
        if param.is_seed:
            lines.append(f"    {param.name}_randomize: if true, {param.name} is ignored and a random seed is used.")
    lines.append(f"    runs: how many times to run the workflow, 1 to {max_runs}; results add up.")
    if any(p.is_seed for p in spec.params):
        lines.append("    seed_mode: 'random' (a new seed each run) or 'increment' (seed, seed+1, ...).")
    lines += ["", "Returns:", "    A status line, the result images, and the run details (seeds used, timing)."]
    return "\n".join(lines)


def _due(sent: dict[str, float], kind: str, now: float, interval: float) -> bool:
    """True (and noted) when an update of ``kind`` may be sent ``interval`` s after the last one."""
    if now - sent[kind] < interval:
        return False
    sent[kind] = now
    return True


def _uploaded(job: Job) -> dict[str, str]:
    """A copy of each of the job's input files, for "Run again": one per content in the person's
    ``inputs/`` folder, so the runs of one click (or a reused picture) share it."""
    folder = job.job_dir.parent / "inputs"
    paths = {}
    for key, local in job.uploads.items():
        path = folder / f"{hashlib.sha256(local.data).hexdigest()[:24]}{Path(local.filename).suffix or '.png'}"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(local.data)
        paths[key] = str(path)
    return paths


def _record_text(record: RunRecord) -> str:
    lines = [f"**{record.status}**" + (f" in {record.duration:.1f} s" if record.duration else "")]
    if record.error:
        lines.append(record.error)
    settings = {**record.form, **record.seeds}  # the seed actually used, not the form's
    lines.append(", ".join(f"{k}: {v}" for k, v in settings.items() if not k.endswith("_randomize")))
    return "\n\n".join(lines)


def _gallery(results: list[RunResult]) -> list[tuple[str, str]]:
    """Images of the results, captioned with their output name; previews are marked as such."""
    return [(str(o.path), f"{o.output_name} (preview)" if o.preview else o.output_name)
            for r in results for o in r.images]


def _details(result: RunResult) -> dict[str, Any]:
    return {"prompt_id": result.prompt_id, "seeds": result.seeds, "duration_s": round(result.duration, 3),
            "values": {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
                       for k, v in result.values.items()}, "server": result.server}


def _preview_image(event: Preview) -> Image.Image:
    image = Image.open(io.BytesIO(event.image))
    image.load()
    return image


def build_app(settings: Settings, backend: ComfyPool, tabs: list[TabLoad], runs: RunBook | None = None) -> gr.Blocks:
    """Lay out the page, then wire every tab."""
    shared = _Shared(settings, backend, runs or RunBook(settings.output_dir).load())
    views: list[TabView] = []
    with gr.Blocks(title="ComfyUI workflows") as app:
        owner = gr.BrowserState(None, storage_key=OWNER_KEY)
        banner = gr.Markdown(servers_panel(backend), elem_id="server-banner")
        with gr.Tabs():
            for load in tabs:
                with gr.Tab(load.spec.title if load.spec else f"⚠️ {load.name}", id=load.name):
                    if load.spec is None:
                        _render_broken(load)
                        continue
                    view = TabView(load.spec, shared, owner)
                    view.render()
                    views.append(view)
            if not tabs:
                _render_empty(settings)
        page_load = app.load(shared.welcome, inputs=[owner], outputs=[owner], api_visibility="private", queue=False)
        app.unload(shared.goodbye)
        for view in views:
            view.listen(page_load)
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


def _render_empty(settings: Settings) -> None:
    with gr.Tab("No workflows"):
        gr.Markdown(f"No workflow files were found in `{settings.workflows_dir}`. Put a ComfyUI workflow "
                    "(`NAME.json`, exported with *Export (API)*) there and restart.")
