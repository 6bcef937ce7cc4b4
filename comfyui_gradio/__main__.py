"""Command line: ``python -m comfyui_gradio {schema,convert,check,api-docs} ...``.

Every command reads the node catalogue from ``--catalog FILE`` (a saved ``GET /object_info``), else
from the ComfyUI server, else from the cache the app keeps (``$CACHE_DIR/object_info.json``).
Exit codes: 0 fine, 1 ``check`` found errors, 2 usage errors or nothing could be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import yaml

from .web.apidocs import api_docs, with_api_docs
from .forms.catalog import Catalog, load_cached
from .forms.check import Report, check_folder
from .comfy.client import ComfyClient
from .errors import ComfyGradioError, ConfigError, Problem, ServerError
from .forms.appmode import form_schema, read_app_mode
from .forms.workflow import load_workflow


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m comfyui_gradio")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("schema", "print the YAML schema of a workflow's form (its App Mode, markers or a guess)"),
                       ("convert", "print the API-format JSON of any workflow file"),
                       ("check", "check every workflow and schema in a folder")):
        command = commands.add_parser(name, help=text)
        command.add_argument("path", nargs="?" if name == "check" else None,
                             default="workflows" if name == "check" else None)
        command.add_argument("--comfyui-url", default=None, help="ComfyUI server to read the node list from")
        command.add_argument("--catalog", type=Path, default=None, metavar="FILE",
                             help="read the node list from this saved GET /object_info JSON instead of a server")
        if name == "check":
            command.add_argument("--json", action="store_true", help="machine-readable report")
    docs = commands.add_parser("api-docs", help="print the gradio_client and HTTP calls of every workflow")
    docs.add_argument("path", nargs="?", default="workflows")
    docs.add_argument("--url", default="http://127.0.0.1:7860", help="the app's address in the examples")
    docs.add_argument("--catalog", type=Path, default=None, metavar="FILE",
                      help="a saved GET /object_info JSON, to document UI-format workflows too")
    docs.add_argument("--readme", type=Path, metavar="FILE",
                      help="write the calls into FILE between its api-docs markers instead of printing them")
    args = parser.parse_args(argv)
    try:
        commands_by_name = {"schema": _schema, "convert": _convert, "check": _check, "api-docs": _api_docs}
        return commands_by_name[args.command](args)
    except ComfyGradioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _catalog(args: argparse.Namespace) -> Catalog | None:
    """The node list from ``--catalog``, else the server, else the app's cache; None if none."""
    if args.catalog is not None:
        return _catalog_file(args.catalog)
    url = args.comfyui_url or os.environ.get("COMFYUI_URL", "http://127.0.0.1:8188").split(",")[0]
    with ComfyClient(url) as client:
        try:
            return client.catalog()
        except ServerError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    return load_cached(Path(os.environ.get("CACHE_DIR") or ".cache") / "object_info.json")


def _catalog_file(path: Path) -> Catalog:
    """A saved ``/object_info`` body; ``ConfigError`` if it cannot be read or is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot be read ({exc.strerror or exc})")]) from exc
    except ValueError as exc:
        raise ConfigError([Problem(str(path), "", f"is not valid JSON ({exc})")]) from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError([Problem(str(path), "", "is not a node list; save it from http://COMFYUI/object_info")])
    return Catalog(data)


def _api_docs(args: argparse.Namespace) -> int:
    catalog = _catalog_file(args.catalog) if args.catalog is not None else None
    text = api_docs(Path(args.path), args.url, catalog)
    if args.readme is None:
        print(text, end="")
        return 0
    args.readme.write_text(with_api_docs(args.readme.read_text(encoding="utf-8"), text), encoding="utf-8")
    return 0


def _schema(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    workflow = load_workflow(Path(args.path), catalog)
    app = read_app_mode(workflow, catalog)
    for note in app.notes if app else ():
        print(f"warning: {note}", file=sys.stderr)
    print(yaml.safe_dump(form_schema(workflow, catalog, app), sort_keys=False, allow_unicode=True), end="")
    return 0


def _convert(args: argparse.Namespace) -> int:
    workflow = load_workflow(Path(args.path), _catalog(args))
    print(json.dumps(workflow.nodes, indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    report = check_folder(Path(args.path), _catalog(args))
    if args.json:
        print(json.dumps([finding.as_dict() for finding in report.findings], indent=2))
    else:
        _print_report(report)
    if not report.workflows:
        print(f"error: no workflow (*.json) in {args.path}", file=sys.stderr)
    elif not report.checked:
        print("error: no workflow could be checked without the server's node list", file=sys.stderr)
    return report.exit_code


def _print_report(report: Report) -> None:
    """Findings not about one workflow first, then each workflow's findings (or ``ok``), then a count."""
    for finding in report.findings:
        if finding.workflow not in report.workflows:
            print(finding)
    for workflow in report.workflows:
        findings = [f for f in report.findings if f.workflow == workflow]
        print("\n".join(str(f) for f in findings) if findings else f"ok: {workflow}")
    errors = sum(f.severity == "error" for f in report.findings)
    print(f"{report.checked} of {len(report.workflows)} workflow(s) checked: {errors} error(s), "
          f"{len(report.findings) - errors} warning(s)")


if __name__ == "__main__":
    sys.exit(main())
