"""API documentation for each tab, generated from its schema (``python -m comfyui_gradio api-docs``).

For every workflow: the ``gradio_client`` call with its main parameters, and the same call as plain
HTTP (Gradio's ``/gradio_api/upload`` and ``/gradio_api/call/<name>`` endpoints). The README's
"Calling the tabs" section is this output, and a test keeps the two equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..forms.catalog import Catalog
from ..forms.loader import load_tab
from ..forms.schema import Param, TabSpec
from .config import Settings
from .endpoint import RUNS, endpoint_fields, randomize_name

__all__ = ["api_docs", "endpoint_values", "with_api_docs"]

BEGIN, END = "<!-- api-docs:begin -->", "<!-- api-docs:end -->"
EXAMPLE_FILE = {"image": "photo.png", "video": "clip.mp4", "audio": "voice.wav"}


def endpoint_values(tab: TabSpec, given: dict[str, Any]) -> list[Any]:
    """The positional ``data`` list of a tab's endpoint: ``given`` values by field name, the rest
    their defaults, in the order of ``endpoint.endpoint_fields``."""
    return [given.get(f.name, f.default) for f in endpoint_fields(tab, Settings.max_runs)]


def api_docs(folder: Path, url: str = "http://127.0.0.1:7860", catalog: Catalog | None = None) -> str:
    """Markdown for every workflow in ``folder``. UI-format ones need ``catalog`` (the server's node list) to
    be converted; without it they are listed without examples."""
    tabs, broken = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            tabs.append(load_tab(path, catalog))
        except ConfigError as exc:
            broken.append(f"#### `/{path.stem}`\n\nNot documented here: {exc.problems[0].reason}\n")
    tabs.sort(key=lambda tab: (tab.order, tab.name))
    return "\n".join([_section(tab, url) for tab in tabs] + broken)


def with_api_docs(readme: str, docs: str) -> str:
    """``readme`` with the text between its api-docs markers replaced by ``docs``."""
    if BEGIN not in readme or END not in readme:
        raise ConfigError([Problem("README", "", f"has no {BEGIN} ... {END} markers to fill")])
    head, rest = readme.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{docs}{END}{rest.split(END, 1)[1]}"


def _section(tab: TabSpec, url: str) -> str:
    main = [p for p in tab.params if not p.advanced]
    example = {p.name: _example(p) for p in main}
    for param in main:
        if param.is_seed:  # a seed is used only with its randomize flag off
            example[randomize_name(param)] = "False"
    args = "".join(f"{name}={value}, " for name, value in example.items())
    other = [p.name for p in tab.params if p.advanced]
    more = f"Other parameters: {', '.join([*other, RUNS])}."
    description = f"{tab.description}\n\n" if tab.description else ""
    return (f"#### {tab.title}: `/{tab.name}`\n\n{description}"
            f"```python\nstatus, gallery, details = client.predict({args}api_name=\"/{tab.name}\")\n```\n\n"
            f"{more}\n\n```bash\n{_curl(tab, main, url)}\n```\n")


def _example(param: Param) -> str:
    if param.is_upload:
        return f'handle_file("{EXAMPLE_FILE[param.kind]}")'
    return repr(param.default)


def _curl(tab: TabSpec, main: list[Param], url: str) -> str:
    lines = []
    given: dict[str, Any] = {}
    for param in main:
        if param.is_upload:
            var = param.name.upper()
            lines.append(f"{var}=$(curl -s -F files=@{EXAMPLE_FILE[param.kind]} {url}/gradio_api/upload "
                         "| python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')")
            given[param.name] = {"path": f"@@{var}@@", "meta": {"_type": "gradio.FileData"}}
    body = _shell_quoted(json.dumps({"data": endpoint_values(tab, given)}))
    lines.append(f"EVENT=$(curl -s -X POST {url}/gradio_api/call/{tab.name} -H 'Content-Type: application/json' "
                 f"\\\n  -d {body} \\\n  | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"event_id\"])')")
    lines.append(f"curl -sN {url}/gradio_api/call/{tab.name}/$EVENT   # streams progress, then the result")
    return "\n".join(lines)


def _shell_quoted(text: str) -> str:
    """``text`` in double quotes for bash, with ``@@NAME@@`` placeholders turned into ``$NAME``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    while "@@" in escaped:
        start = escaped.index("@@")
        end = escaped.index("@@", start + 2)
        escaped = escaped[:start] + "$" + escaped[start + 2 : end] + escaped[end + 2 :]
    return f'"{escaped}"'
