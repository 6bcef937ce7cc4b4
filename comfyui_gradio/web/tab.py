"""One tab per workflow, built in two steps (facefusion's render/listen): ``TabView.render`` lays
out the components from a ``TabSpec``; ``TabView.listen`` wires the events. The endpoint's fields
(``endpoint.endpoint_fields``) name the inputs; values travel as a dict by those names.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from gradio.context import Context

from ..comfy.job import Job
from ..errors import ComfyGradioError, InputError, JobCancelled
from ..forms.prepare import random_seed
from ..forms.schema import Param, TabSpec
from ..forms.vocabulary import OUTPUT_CLASSES_BY_KIND
from .endpoint import SEED_MODES, EndpointField, endpoint_fields, split_values, tool_docstring
from .history import HistoryView
from .runs import input_copies, owner_folder
from .shared import Shared
from .stream import Outputs, RunStream, ServerLog
from .uploads import COPY_VALUE, upload_value, uploaded_file
from .widgets import form_values, option_combo, option_shown, widget_for

__all__ = ["TabView"]

LOG_REFRESH = 1.0  # seconds between refreshes of the "Server log" panel during a run
_PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}  # page-only


@dataclass
class TabView:
    spec: TabSpec
    shared: Shared
    owner: gr.BrowserState
    fields: list[EndpointField] = field(default_factory=list)
    inputs: dict[str, gr.components.Component] = field(default_factory=dict)  # by field name, in field order
    shown: dict[str, gr.components.Component] = field(default_factory=dict)  # an upload field's visible widget
    outputs: Outputs | None = None
    history: HistoryView | None = None
    generate: gr.Button | None = None
    cancel: gr.Button | None = None
    blocks: gr.Blocks | None = None  # the app: its upload route's files are the ones an upload field takes
    log_box: gr.Textbox | None = None  # the "Server log" panel, when the settings show it
    log_timer: gr.Timer | None = None  # refreshes the panel while a run goes on
    server_logs: dict[str, ServerLog] = field(default_factory=dict)  # caller -> the log of their latest run

    def __post_init__(self) -> None:
        self.fields = endpoint_fields(self.spec, self.shared.settings.max_runs)

    # ---- render -----------------------------------------------------------------------------

    def render(self) -> None:
        self.blocks = Context.root_block  # the Blocks being built
        if self.spec.description:
            gr.Markdown(self.spec.description)
        if self.spec.notes:
            gr.Markdown("\n".join(f"- ⚠️ {note}" for note in self.spec.notes), elem_id=f"{self.spec.name}-notes")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                self._render_form()
            with gr.Column(scale=1):
                self.outputs = self._render_outputs()
        self.history = HistoryView(self.spec.name, self.shared.runs, self.owner)
        self.history.render()

    def _render_form(self) -> None:
        rendered: dict[str, gr.components.Component] = {}
        for f in self.fields:
            if not f.advanced:
                rendered |= self._render_field(f)
        with gr.Accordion("Advanced", open=False, elem_id=f"{self.spec.name}-advanced"):
            for f in self.fields:
                if f.advanced:
                    rendered |= self._render_field(f)
        self.inputs = {f.name: rendered[f.name] for f in self.fields}  # the endpoint's order, not the page's
        with gr.Row():
            self.generate = gr.Button("Generate", variant="primary", elem_id=f"{self.spec.name}-generate")
            self.cancel = gr.Button("Cancel", variant="secondary", elem_id=f"{self.spec.name}-cancel")

    def _render_field(self, f: EndpointField) -> dict[str, gr.components.Component]:
        """The component(s) of one field by name: a seed comes with its flag's checkbox beside it
        (so a "randomize" field renders nothing itself)."""
        tab = self.spec.name
        if f.kind == "param" and f.param is not None:
            return self._render_param(f.param)
        if f.kind == "runs":
            limit = self.shared.settings.max_runs
            return {f.name: gr.Slider(1, limit, value=f.default, step=1, label="Runs", elem_id=f"{tab}-{f.name}",
                                      info=f"Run the workflow up to {limit} times; results add to the gallery")}
        if f.kind == "seed_mode":
            return {f.name: gr.Radio(list(SEED_MODES), value=f.default, label="Seeds of the runs",
                                     elem_id=f"{tab}-{f.name}",
                                     info="random: a new seed each run; increment: seed, seed+1, ...")}
        return {}

    def _render_param(self, param: Param) -> dict[str, gr.components.Component]:
        """An upload field's endpoint input is hidden (``uploads.upload_value``); its widget fills it."""
        if param.is_upload:
            self.shown[param.name] = widget_for(param, self.spec.name)
            return {param.name: upload_value(f"{self.spec.name}-{param.name}-value")}
        if not param.is_seed:
            return {param.name: widget_for(param, self.spec.name, visible=option_shown(self.spec, param))}
        flag = next(f for f in self.fields if f.kind == "randomize" and f.param is param)
        with gr.Row():
            seed = widget_for(param, self.spec.name)
            randomize = gr.Checkbox(value=flag.default, label="Randomize", min_width=80, scale=0,
                                    elem_id=f"{self.spec.name}-{param.name}-randomize")
        return {param.name: seed, flag.name: randomize}

    def _render_outputs(self) -> Outputs:
        status = gr.Markdown("", label="status", elem_id=f"{self.spec.name}-status")
        gallery = gr.Gallery(label=self._output_label(), columns=2, height="auto", format="png", object_fit="contain",
                             elem_id=f"{self.spec.name}-gallery", interactive=False)
        classes = {n["class_type"] for n in self.spec.workflow.nodes.values()}
        outputs = Outputs(status, gallery, gr.JSON(visible=False))  # replaced below, inside its accordion
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
        if self.shared.settings.shows_server_log:
            self._render_server_log()
        return outputs

    def _render_server_log(self) -> None:
        """ComfyUI's own log while a run goes on, for the people who set the app up (SHOW_SERVER_LOG)."""
        with gr.Accordion("Server log", open=False, elem_id=f"{self.spec.name}-server-log"):
            self.log_box = gr.Textbox(show_label=False, lines=12, max_lines=12, interactive=False, autoscroll=True,
                                      info="ComfyUI's whole log while your run goes on: every user's prompts "
                                           "and errors, file paths.")
        self.log_timer = gr.Timer(LOG_REFRESH, active=False)

    def _output_label(self) -> str:
        return self.spec.outputs[0].label if len(self.spec.outputs) == 1 else "Results"

    # ---- listen -----------------------------------------------------------------------------

    def listen(self, page_load: Any) -> None:
        assert self.generate and self.cancel and self.outputs and self.history
        if self.log_timer is not None:  # first: Gradio 6 does not run a listener added after the run's
            self.generate.click(lambda: gr.Timer(active=True), outputs=[self.log_timer], **_PRIVATE)
        run = self.generate.click(self._endpoint(), inputs_kwargs=self.inputs,
                                  outputs=self.outputs.components(), api_name=self.spec.name,
                                  api_description=self.spec.description or None,
                                  show_progress_on=[self.outputs.status])  # keeps live previews visible
        # Cancel stops this person's jobs on ComfyUI and ends the streaming run at once.
        self.cancel.click(self._cancel, outputs=[self.outputs.status], api_name=f"{self.spec.name}_cancel",
                          queue=False, cancels=[run], api_visibility="undocumented")  # not an MCP tool
        for f in self.fields:
            if f.kind == "randomize" and f.param is not None:
                randomize = self.inputs[f.name]
                randomize.change(lambda on: gr.update(interactive=not on), inputs=[randomize],
                                 outputs=[self.inputs[f.param.name]], api_visibility="private", queue=False)
        self._listen_options()
        for name, widget in self.shown.items():  # also when "Run again" fills the widget
            # Runs in the page only; a caller may still send it to the server by its fn_index, where
            # preprocess=False keeps Gradio's widget from opening the path it names.
            widget.change(None, inputs=[widget], outputs=[self.inputs[name]], js=COPY_VALUE, preprocess=False,
                          api_visibility="private", queue=False)
        self.history.listen([page_load.then, self.generate.click, run.then], self.inputs | self.shown)
        if self.log_box is not None and self.log_timer is not None:
            self._listen_server_log(run)

    def _listen_server_log(self, run: Any) -> None:
        """The panel is filled by a timer of the page (started by Generate, see ``listen``), not by the
        run: it stays out of the tab's API."""
        assert self.cancel and self.log_box and self.log_timer
        self.log_timer.tick(self._server_log_text, outputs=[self.log_box], **_PRIVATE)
        for end in (run.then, self.cancel.click):
            end(self._server_log_end, outputs=[self.log_box, self.log_timer], **_PRIVATE)

    def _server_log_text(self, request: gr.Request) -> Any:
        log = self.server_logs.get(self.shared.caller(request)[0])
        return log.text() if log is not None else gr.skip()

    def _server_log_end(self, request: gr.Request) -> tuple[Any, gr.Timer]:
        """The run's last lines, and the timer stopped; the log is let go (a new run starts a new one)."""
        log = self.server_logs.pop(self.shared.caller(request)[0], None)
        return (log.text() if log is not None else gr.skip()), gr.Timer(active=False)

    def _listen_options(self) -> None:
        """A DynamicCombo field shows the fields of the option chosen in it and hides the others'."""
        for combo in [p for p in self.spec.params if p.options]:
            brought = [p for p in self.spec.params if option_combo(self.spec, p) is combo]
            if not brought:
                continue

            def show(chosen: Any, brought: list[Param] = brought) -> list[Any]:
                return [gr.update(visible=option_shown(self.spec, p, chosen)) for p in brought]

            self.inputs[combo.name].change(show, inputs=[self.inputs[combo.name]],
                                           outputs=[self.inputs[p.name] for p in brought],
                                           api_visibility="private", queue=False)

    def _endpoint(self) -> Any:
        """``_run`` under the tab's name, with a parameter and a docstring line per field: Gradio's
        MCP server turns the docstring into the tool's parameter descriptions."""

        def endpoint(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> Iterator[dict]:
            yield from self._run(request, progress, values)

        endpoint.__name__ = endpoint.__qualname__ = self.spec.name
        endpoint.__doc__ = tool_docstring(self.spec, self.fields)
        fixed = list(inspect.signature(endpoint).parameters.values())[:2]  # request, progress
        named = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None) for f in self.fields]
        endpoint.__signature__ = inspect.Signature(fixed + named)  # type: ignore[attr-defined]
        return endpoint

    # ---- generate ---------------------------------------------------------------------------

    def _run(self, request: gr.Request, progress: gr.Progress, values: dict[str, Any]) -> Iterator[dict]:
        caller, owner = self.shared.caller(request)
        form, runs, seed_mode = split_values(self.fields, values)
        try:
            form |= self._uploaded(caller, form)
        except InputError as exc:
            raise gr.Error(str(exc), title="Could not start") from exc
        log = ServerLog() if self.log_box is not None and owner is not None else None  # pages only: not the API
        jobs = self._submit(caller, runs, seed_mode, form, logs=log is not None)
        if log is not None:
            self.server_logs[caller] = log
        assert self.outputs is not None
        stream = RunStream(self.outputs, self._eta, previews=owner is not None, log=log)
        finished = False
        try:
            results = yield from stream.all(jobs, progress)
            finished = True
        except JobCancelled as exc:
            yield {self.outputs.status: f"⏹️ {exc}"}
            return
        except ComfyGradioError as exc:
            raise gr.Error(str(exc), title="The run failed") from exc
        finally:
            if not finished and not owner:  # an API caller cancelled or went away: stop the work too
                for job in jobs:
                    job.cancel()
        yield stream.final(results)

    def _uploaded(self, caller: str, form: dict[str, Any]) -> dict[str, Path]:
        """The checked file of each upload field that has a value (``uploads.uploaded_file``), before
        anything is read or sent to ComfyUI."""
        assert self.blocks is not None
        files = {}
        for param in self.spec.params:
            if param.is_upload and form.get(param.name):
                earlier = {Path(r.form[param.name]).name: Path(r.form[param.name])
                           for r in self.shared.runs.recent(caller, self.spec.name)
                           if isinstance(r.form.get(param.name), str)}
                files[param.name] = uploaded_file(form[param.name], param.label, self.blocks.upload_file_set,
                                                  earlier)
        return files

    def _submit(self, caller: str, runs: int, seed_mode: str, form: dict[str, Any], logs: bool = False) -> list[Job]:
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
                                                 output_dir=self.shared.runs.root / owner_folder(caller),
                                                 # the server's whole log, once: only the first job subscribes
                                                 **({"logs": True} if logs and not jobs else {}))
            except ComfyGradioError as exc:
                for started in jobs:
                    started.cancel()
                raise gr.Error(str(exc), title="Could not start") from exc
            self.shared.active.add(caller, self.spec.name, job)
            self.shared.runs.start(caller, self.spec, {**form, **input_copies(job)}, job)
            jobs.append(job)
        return jobs

    def _batch(self, values: dict[str, Any], runs: int, seed_mode: str) -> Iterator[dict[str, Any]]:
        """The values of each run: the form's seed first, then a new random seed for each further run
        ("random"), or seed+1, seed+2, ... ("increment")."""
        seeds = [p for p in self.spec.params if p.is_seed]
        for index in range(runs):
            run_values = dict(values)
            for param in seeds:
                if index and seed_mode == SEED_MODES[1]:  # increment
                    run_values[param.name] = int(values[param.name]) + index
                elif index:
                    run_values[param.name] = random_seed(param)
            yield run_values

    def _eta(self, job: Job) -> float | None:
        if job.started_at is None:
            return None
        return self.shared.backend.durations.remaining(self.spec.name, time.monotonic() - job.started_at)

    def _cancel(self, request: gr.Request) -> str:
        caller, _ = self.shared.caller(request)
        jobs = self.shared.active.of(caller, self.spec.name)
        for job in jobs:
            job.cancel()
        return "⏹️ Cancelled: the run was stopped on ComfyUI." if jobs else "Nothing to cancel."
