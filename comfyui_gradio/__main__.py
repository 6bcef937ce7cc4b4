"""Command line: ``python -m comfyui_gradio {schema,convert,check} ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import yaml

from .catalog import Catalog, load_cached
from .client import ComfyClient
from .errors import ComfyGradioError, ConfigError, ServerError
from .infer import infer_schema
from .schema import load_tab
from .workflow import load_workflow


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comfyui_gradio")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("schema", "print a proposed YAML schema for a workflow"),
                       ("convert", "print the API-format JSON of any workflow file"),
                       ("check", "check every workflow and schema in a folder")):
        command = commands.add_parser(name, help=text)
        command.add_argument("path", nargs="?" if name == "check" else None,
                             default="workflows" if name == "check" else None)
        command.add_argument("--comfyui-url", default=None, help="ComfyUI server to read the node list from")
        if name == "check":
            command.add_argument("--json", action="store_true", help="machine-readable report")
    args = parser.parse_args(argv)
    try:
        return {"schema": _schema, "convert": _convert, "check": _check}[args.command](args)
    except ComfyGradioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _catalog(url: str | None) -> Catalog | None:
    import os

    with ComfyClient(url or os.environ.get("COMFYUI_URL", "http://127.0.0.1:8188").split(",")[0]) as client:
        try:
            return client.catalog()
        except ServerError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    return load_cached(Path(".cache") / "object_info.json")


def _schema(args: argparse.Namespace) -> int:
    catalog = _catalog(args.comfyui_url)
    workflow = load_workflow(Path(args.path), catalog)
    print(yaml.safe_dump(infer_schema(workflow, catalog), sort_keys=False, allow_unicode=True), end="")
    return 0


def _convert(args: argparse.Namespace) -> int:
    workflow = load_workflow(Path(args.path), _catalog(args.comfyui_url))
    print(json.dumps(workflow.nodes, indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    catalog = _catalog(args.comfyui_url)
    findings = []
    for path in sorted(Path(args.path).glob("*.json")):
        try:
            load_tab(path, catalog)
            findings.append({"workflow": str(path), "ok": True, "problems": []})
        except ConfigError as exc:
            findings.append({"workflow": str(path), "ok": False, "problems": [str(p) for p in exc.problems]})
    if args.json:
        print(json.dumps(findings, indent=2))
    else:
        for finding in findings:
            print(("ok    " if finding["ok"] else "ERROR ") + finding["workflow"])
            for problem in finding["problems"]:
                print(f"      {problem}")
    return 0 if all(f["ok"] for f in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
