"""A tab's "Your recent runs": the browser owner's runs of that tab, one shown with its results,
and "Run again with these settings" filling the form back in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..forms.vocabulary import RANDOMIZE_SUFFIX
from .runs import RunBook, RunRecord, RecordStatus

__all__ = ["HistoryView"]

REFRESH = 2.0  # seconds between refreshes of the list while one of its runs is going


@dataclass
class HistoryView:
    tab: str
    runs: RunBook
    owner: gr.BrowserState
    picker: gr.Dropdown | None = None
    detail: gr.Markdown | None = None
    gallery: gr.Gallery | None = None
    again: gr.Button | None = None
    timer: gr.Timer | None = None

    def render(self) -> None:
        with gr.Accordion("Your recent runs", open=False, elem_id=f"{self.tab}-history"):
            self.picker = gr.Dropdown(label="Run", choices=[], value=None, elem_id=f"{self.tab}-history-pick")
            self.detail = gr.Markdown("")
            self.gallery = gr.Gallery(label="Its results", columns=4, height=220, object_fit="contain",
                                      interactive=False)
            self.again = gr.Button("Run again with these settings", elem_id=f"{self.tab}-again")
        self.timer = gr.Timer(REFRESH, active=False)

    def listen(self, refresh_on: list[Any], form: dict[str, gr.components.Component]) -> None:
        """Refresh the list on each of ``refresh_on`` (event triggers); "Run again" fills ``form``."""
        assert self.picker and self.detail and self.gallery and self.again and self.timer
        listing = dict(fn=self._list, inputs=[self.owner, self.picker],
                       outputs=[self.picker, self.timer, self.detail, self.gallery], api_visibility="private",
                       queue=False, show_progress="hidden")
        for trigger in [*refresh_on, self.timer.tick]:
            trigger(**listing)
        self.picker.change(self._show, inputs=[self.owner, self.picker], outputs=[self.detail, self.gallery],
                           api_visibility="private", queue=False)
        self.again.click(lambda owner, run_id: self._fill_form(owner, run_id, list(form)),
                         inputs=[self.owner, self.picker], outputs=list(form.values()), api_visibility="private",
                         queue=False)

    def _list(self, owner: str | None, selected: str | None) -> tuple[Any, ...]:
        """The picker's runs (newest first), the shown run, and a timer kept on while any is running."""
        runs = self.runs.recent(owner, self.tab) if owner else []
        choices = [(r.label(), r.run_id) for r in runs]
        value = selected if any(r.run_id == selected for r in runs) else (runs[0].run_id if runs else None)
        running = any(r.status is RecordStatus.RUNNING for r in runs)
        return (gr.update(choices=choices, value=value), gr.Timer(active=running), *self._show(owner, value))

    def _show(self, owner: str | None, run_id: str | None) -> tuple[str, list]:
        record = self.runs.get(owner, run_id) if owner and run_id else None
        if record is None:
            return "", []
        return record_text(record), [(o["path"], o["output_name"]) for o in record.outputs if o["kind"] == "image"]

    def _fill_form(self, owner: str | None, run_id: str | None, names: list[str]) -> list[Any]:
        """The values of ``names`` as the run had them, with the seeds it used and Randomize off."""
        record = self.runs.get(owner, run_id) if owner and run_id else None
        if record is None:
            return [gr.update() for _ in names]
        form = {**record.form, **{k + RANDOMIZE_SUFFIX: False for k in record.seeds}, **record.seeds}
        return [form[name] if name in form else gr.update() for name in names]


def record_text(record: RunRecord) -> str:
    """A run's state, error and settings (the seeds it actually used, not the form's)."""
    lines = [f"**{record.status.value}**" + (f" in {record.duration:.1f} s" if record.duration else "")]
    if record.error:
        lines.append(record.error)
    settings = {**record.form, **record.seeds}
    lines.append(", ".join(f"{k}: {v}" for k, v in settings.items() if not k.endswith(RANDOMIZE_SUFFIX)))
    return "\n\n".join(lines)
