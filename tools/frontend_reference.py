"""Record ComfyUI's own frontend converting UI-format workflows into API prompts: the converter's ground truth.

For every UI-format template in a folder (or in an installed package such as ``comfyui_workflow_templates_json``)
this script asks a running ComfyUI for ``/object_info`` and judges the template: it can be judged when every node
class it uses, inside subgraph definitions too, is one the server lists (the frontend-only classes in
``FRONTEND_ONLY`` need no server definition). A judged template is loaded into the frontend in headless Chromium
with ``app.loadGraphData(workflow)``, and ``(await app.graphToPrompt()).output`` is the API prompt that POST
/prompt would take. The result is a fixture folder::

    OUT/object_info.json.gz     the server's /object_info, the one the frontend used
    OUT/manifest.json           versions; per template: judged or not, missing classes, subgraphs, errors
    OUT/workflows/NAME.json     each judged template, as the templates package has it (UI format)
    OUT/prompts/NAME.json       the frontend's API prompt for it

The script installs nothing and starts nothing. Start a ComfyUI with the frontend under test first, e.g. for
ComfyUI 0.3.64 and frontend 1.58.1 (model-free; torch CPU build; torchvision/torchaudio as import-only
stand-ins on PYTHONPATH where no CPU build is available)::

    pip download --no-deps comfyui-frontend-package==1.58.1 && unzip -d fe comfyui_frontend_package-1.58.1-*.whl
    python main.py --cpu --listen 127.0.0.1 --port 8188 --disable-all-custom-nodes \\
        --front-end-root fe/comfyui_frontend_package/static

then::

    python tools/frontend_reference.py --url http://127.0.0.1:8188 --frontend 1.58.1 \\
        --templates-package comfyui-workflow-templates-json==0.1.123 --templates TEMPLATE_DIR \\
        --out tests/data/frontend-1.58.1

Needs playwright (python) and a Chromium; ``--chromium`` names its executable (default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
from playwright.sync_api import Page, sync_playwright

FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})
"""Node classes the frontend draws but never sends: they need no entry in /object_info."""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

CONVERT_JS = """
async ([workflow, timeoutMs]) => {
  const work = (async () => {
    const loaded = await window.app.loadGraphData(workflow, true, false, null,
      {deferWarnings: true, skipAssetScans: true, silentAssetErrors: true,  // 1.58
       showMissingNodesDialog: false, showMissingModelsDialog: false});    // 1.27
    const prompt = await window.app.graphToPrompt();
    return {loaded: loaded !== false, output: prompt.output};
  })();
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs));
  try { return await Promise.race([work, timeout]); }
  catch (e) { return {error: String(e && e.stack || e)}; }
}
"""


@dataclass
class Judgement:
    """What one template needs from the server, and what the frontend made of it."""

    name: str
    classes: list[str]
    missing_classes: list[str]
    subgraphs: int
    error: str | None = None
    console_errors: list[str] = field(default_factory=list)

    @property
    def judged(self) -> bool:
        return not self.missing_classes

    def record(self) -> dict:
        record: dict = {"judged": self.judged, "subgraphs": self.subgraphs, "missing_classes": self.missing_classes}
        if self.error:
            record["error"] = self.error
        if self.console_errors:
            record["console_errors"] = self.console_errors
        return record


def is_ui_workflow(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def node_classes(workflow: dict) -> set[str]:
    """Every node class of the root graph and of every subgraph definition, less the subgraph instances."""
    definitions = (workflow.get("definitions") or {}).get("subgraphs") or []
    subgraph_ids = {definition["id"] for definition in definitions}
    nodes = list(workflow["nodes"])
    for definition in definitions:
        nodes.extend(definition.get("nodes") or [])
    return {node["type"] for node in nodes if node.get("type") not in subgraph_ids}


def judge(name: str, workflow: dict, known: set[str]) -> Judgement:
    classes = node_classes(workflow) - FRONTEND_ONLY
    definitions = (workflow.get("definitions") or {}).get("subgraphs") or []
    return Judgement(name, sorted(classes), sorted(classes - known), len(definitions))


def templates(folder: pathlib.Path) -> Iterator[tuple[str, dict]]:
    """The UI-format workflows of a folder, by file stem; index files and the like are skipped."""
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if is_ui_workflow(data):
            yield path.stem, data


def open_frontend(page: Page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("() => window.app && (window.app.rootGraph || window.app.graph) && window.app.canvas",
                           timeout=120_000)
    page.wait_for_timeout(2_000)  # let the extensions' setup finish after the app appears


def convert(page: Page, workflow: dict, timeout_s: float) -> dict:
    return page.evaluate(CONVERT_JS, [workflow, int(timeout_s * 1000)])


def write_json(path: pathlib.Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        path.write_text(text, encoding="utf-8")


def server_versions(client: httpx.Client) -> dict:
    stats = client.get("/system_stats").raise_for_status().json()
    system = stats.get("system", {})
    return {key: system.get(key) for key in ("comfyui_version", "python_version", "pytorch_version")}


def run(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.out)
    with httpx.Client(base_url=args.url, timeout=60) as client:
        object_info = client.get("/object_info").raise_for_status().json()
        versions = server_versions(client)
    known = set(object_info)
    results: dict[str, dict] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
        page.on("dialog", lambda dialog: dialog.dismiss())
        open_frontend(page, args.url)
        served = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
        if served and served != args.frontend:
            print(f"the server serves frontend {served}, not {args.frontend}", file=sys.stderr)
            return 2
        for name, workflow in templates(pathlib.Path(args.templates)):
            if args.only and name not in args.only:
                continue
            judgement = judge(name, workflow, known)
            if judgement.judged:
                console.clear()
                started = time.monotonic()
                answer = convert(page, workflow, args.timeout)
                judgement.console_errors = sorted(set(console))[:10]
                if "error" in answer or not answer.get("loaded"):
                    judgement.error = answer.get("error") or "loadGraphData reported a failure"
                else:
                    write_json(out / "workflows" / f"{name}.json", workflow)
                    write_json(out / "prompts" / f"{name}.json", answer["output"])
                print(f"{name}: {len(answer.get('output') or {})} nodes, {time.monotonic() - started:.1f}s"
                      f"{' ERROR ' + judgement.error.splitlines()[0] if judgement.error else ''}", file=sys.stderr)
            results[name] = judgement.record()
        browser.close()
    manifest = {
        "server": versions,
        "frontend": args.frontend,
        "templates": args.templates_package,
        "frontend_only_classes": sorted(FRONTEND_ONLY),
        "counts": {
            "templates": len(results),
            "judged": sum(r["judged"] for r in results.values()),
            "judged_with_subgraphs": sum(r["judged"] and r["subgraphs"] > 0 for r in results.values()),
            "errors": sum("error" in r for r in results.values()),
        },
        "templates_by_name": results,
    }
    write_json(out / "object_info.json.gz", object_info)
    write_json(out / "manifest.json", manifest)
    print(json.dumps(manifest["counts"]), file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8188", help="the running ComfyUI with its frontend")
    parser.add_argument("--templates", required=True, help="a folder of template JSON files")
    parser.add_argument("--templates-package", required=True, help="where the templates came from, e.g. NAME==1.2.3")
    parser.add_argument("--frontend", required=True, help="the frontend version the server serves, e.g. 1.58.1")
    parser.add_argument("--out", required=True, help="the fixture folder to write")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for one template")
    parser.add_argument("--only", nargs="*", help="convert only these template names (a quick look)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
