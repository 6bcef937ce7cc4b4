"""Build workflows/invert_and_blur.json in ComfyUI's own frontend: a subgraph and App Mode, saved by the editor.

The graph is made with the frontend's JavaScript API in headless Chromium, as a person would make it in the
editor: LoadImage -> ImageInvert -> ImageBlur -> SaveImage; ImageInvert and ImageBlur converted to a subgraph
(``LGraph.convertToSubgraph``); ImageBlur's ``blur_radius`` and ``sigma`` promoted to the instance (what
``promoteValueWidgetViaSubgraphInput`` does: a subgraph input linked to the widget); then App Mode through the
frontend's own ``appMode`` store (enter the builder, select the image and the blur radius with a description
each, select SaveImage as the output, leave the builder) and "open as app" (``extra.linearMode``). The saved
file is ``(await app.graphToPrompt()).workflow``; its prompt, ``.output``, is recorded too, and the file is
loaded again to check that the store resolves its App Mode to the same entries and that it queues the same
prompt. Writes::

    workflows/invert_and_blur.json                    the workflow, as the frontend saves it
    tests/data/appmode/invert_and_blur.prompt.json    the frontend's graphToPrompt output for it

``--prune FILE OUT`` instead loads a saved workflow and writes what the store makes of its ``extra.linearData``
(``pruneLinearData``: entries upgraded to widget ids, the unresolvable dropped), as recorded in
``tests/data/appmode/*.linear.json``.

Start a ComfyUI with frontend 1.58.1 first (see tools/frontend_reference.py), with ``example.png`` in its input
folder, then ``python tools/appmode_workflow.py --url http://127.0.0.1:8190``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from playwright.sync_api import sync_playwright

from frontend_reference import CHROMIUM_ARGS, open_frontend, write_json

ROOT = pathlib.Path(__file__).resolve().parent.parent

BUILD_JS = """
async () => {
  const app = window.app, LG = window.LiteGraph;
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const tick = () => new Promise(r => setTimeout(r, 300));
  const g = app.rootGraph;
  g.clear();
  await tick();
  const mk = (type, pos) => { const n = LG.createNode(type); n.pos = pos; g.add(n); return n; };
  const load = mk('LoadImage', [50, 100]);
  const inv = mk('ImageInvert', [420, 100]);
  const blur = mk('ImageBlur', [650, 100]);
  const save = mk('SaveImage', [1000, 100]);
  load.connect(0, inv, 0); inv.connect(0, blur, 0); blur.connect(0, save, 0);
  const W = (n, name) => n.widgets.find(w => w.name === name);
  W(load, 'image').value = 'example.png';
  W(blur, 'blur_radius').value = 4;
  W(blur, 'sigma').value = 2.0;
  W(save, 'filename_prefix').value = 'comfyui-gradio/invert_blur';
  const { node: sg, subgraph } = g.convertToSubgraph(new Set([inv, blur]));
  subgraph.name = 'Invert and blur';
  await tick();
  const innerBlur = subgraph.nodes.find(n => n.type === 'ImageBlur');
  const promoted = [];
  for (const name of ['blur_radius', 'sigma']) {
    const w = W(innerBlur, name);
    const slot = innerBlur.getSlotFromWidget(w);
    const si = subgraph.addInput(name, String(slot.type));
    const link = si.connect(slot, innerBlur);
    promoted.push({name, link: !!link});
  }
  await tick();
  const store = pinia._s.get('appMode');
  store.enterBuilder();
  await tick();
  const imageW = W(load, 'image'), radiusW = sg.widgets.find(w => w.name === 'blur_radius');
  store.selectedInputs.push([imageW.widgetId, 'image']);
  store.selectedInputs.push([radiusW.widgetId, 'blur_radius']);
  store.selectedOutputs.push(save.id);
  await tick();
  store.updateInputConfig(imageW, {description: 'The picture to invert and blur'});
  store.updateInputConfig(radiusW, {description: 'How far the blur reaches, in pixels (1 to 31)'});
  await tick();
  const linearInBuilder = JSON.parse(JSON.stringify(g.extra.linearData || null));
  store.exitBuilder();
  await tick();
  g.extra.linearMode = true;  // what the builder's "open as app" does (builderViewOptions.setWorkflowDefaultView)
  const saved = JSON.parse(JSON.stringify(await app.graphToPrompt()));
  const workflow = saved.workflow;
  // the saved file read back: loaded again, App Mode resolved by the store, and queued
  await app.loadGraphData(JSON.parse(JSON.stringify(workflow)), true, false, null,
    {deferWarnings: true, skipAssetScans: true, silentAssetErrors: true});
  await tick();
  const reloaded = await app.graphToPrompt();
  const resolved = store.pruneLinearData(app.rootGraph.extra.linearData);
  return {workflow: saved.workflow, prompt: saved.output, reloadedPrompt: reloaded.output,
          resolved: JSON.parse(JSON.stringify(resolved)), version: window.__COMFYUI_FRONTEND_VERSION__};
}
"""


PRUNE_JS = """
async (workflow) => {
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  await window.app.loadGraphData(workflow, true, false, null,
    {deferWarnings: true, skipAssetScans: true, silentAssetErrors: true});
  await new Promise(r => setTimeout(r, 500));
  return JSON.parse(JSON.stringify(pinia._s.get('appMode').pruneLinearData(workflow.extra.linearData)));
}
"""


def in_frontend(url: str, chromium: str, script: str, arg: object = None) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.dismiss())
        open_frontend(page, url)
        answer = page.evaluate(script, arg)
        browser.close()
    return answer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8190")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--prune", nargs=2, type=pathlib.Path, metavar=("FILE", "OUT"))
    args = parser.parse_args()
    if args.prune:
        workflow = json.loads(args.prune[0].read_text(encoding="utf-8"))
        write_json(args.prune[1], in_frontend(args.url, args.chromium, PRUNE_JS, workflow))
        return 0
    answer = in_frontend(args.url, args.chromium, BUILD_JS)
    if answer["reloadedPrompt"] != answer["prompt"] or answer["resolved"] != answer["workflow"]["extra"]["linearData"]:
        print("the saved workflow does not load back the same: " + json.dumps(answer)[:2000], file=sys.stderr)
        return 1
    write_json(ROOT / "workflows" / "invert_and_blur.json", answer["workflow"])
    write_json(ROOT / "tests" / "data" / "appmode" / "invert_and_blur.prompt.json", answer["prompt"])
    print(f"frontend {answer['version']}: {len(answer['prompt'])} nodes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
