"""The page: the servers panel at the top, one tab per workflow (an error tab for a broken one, a
note when there are none), built at start-up so every tab is in the API. All tabs are laid out
first, then their events are wired.
"""

from __future__ import annotations

import gradio as gr

from ..comfy.backend import KINDS
from ..comfy.pool import ComfyPool
from ..forms.loader import TabLoad
from .config import Settings
from .runs import RunBook
from .shared import ActiveRuns, Shared, browser_secret
from .tab import TabView

__all__ = ["build_app", "servers_panel"]

PANEL_REFRESH = 5.0  # seconds between refreshes of the servers panel (reads the pool's state only)
OWNER_KEY = "comfyui-gradio-owner"


def servers_panel(pool: ComfyPool) -> str:
    """The state of every backend, with its kind, for the top of the page ('' for one ComfyUI that is fine)."""
    statuses = pool.statuses()
    down = [s for s in statuses if not s.healthy]
    only_comfyui = all(s.kind == "comfyui" for s in statuses)
    if len(statuses) == 1 and (down or only_comfyui):
        if not down:
            return ""
        return (f"⚠️ **{_label(down[0].kind)} is not reachable.** {down[0].error} The tabs below will work as soon "
                "as it is up.")
    rows = "\n".join(f"| {s.url} | {'🟢 up' if s.healthy else '🔴 down'} | {s.queue_remaining} | {s.in_flight} "
                     f"| {_label(s.kind)} |" for s in statuses)
    what = "ComfyUI servers" if only_comfyui else "backends"
    note = f"⚠️ **Some {what} are down**; jobs go to the others.\n\n" if down else ""
    header = "ComfyUI server" if only_comfyui else "backend"
    return f"{note}| {header} | state | queue | jobs from here | kind |\n|---|---|---|---|---|\n{rows}"


def _label(kind: str) -> str:
    return KINDS[kind].label if kind in KINDS else kind


def build_app(settings: Settings, backend: ComfyPool, tabs: list[TabLoad], runs: RunBook | None = None,
              active: ActiveRuns | None = None) -> gr.Blocks:
    """Lay out the page, then wire every tab. ``active``: the runs going, by caller (for Cancel)."""
    shared = Shared(settings, backend, runs or RunBook(settings.output_dir).load(), active or ActiveRuns())
    views: list[TabView] = []
    with gr.Blocks(title="ComfyUI workflows") as app:
        owner = gr.BrowserState(None, storage_key=OWNER_KEY, secret=browser_secret(settings))
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
