"""Settings: from the environment and a ``.env`` file, overridden by command-line flags.

Every problem is collected and reported together, by the name of the variable or flag.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import httpx

from ..comfy.backend import KINDS, parse_entry
from ..errors import ConfigError, Problem

__all__ = ["SERVER_LOG", "TRACKERS", "Settings", "load_settings", "parser"]

TRACKERS = ("websocket", "http")  # how the client follows jobs; the first is the default
SERVER_LOG = ("off", "on", "public")  # SHOW_SERVER_LOG: "on" leaves it off on a share link, "public" does not


@dataclass(frozen=True)
class Settings:
    comfyui_url: str = field(default="http://127.0.0.1:8188", repr=False)  # may carry user:password@
    workflows_dir: Path = Path("workflows")
    workflow_urls: tuple[str, ...] = ()  # more workflows, fetched at start-up (WORKFLOW_URLS)
    output_dir: Path = Path("outputs")
    cache_dir: Path = Path(".cache")
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    share: bool = False
    auth: tuple[tuple[str, str], ...] = ()
    tracker: str = TRACKERS[0]
    concurrency: int = 16
    job_timeout: float = 600.0
    cloud_after: float | None = None  # seconds of local wait beyond which a remote backend takes a job
    max_upload_mb: int = 20  # per image
    max_upload_pixels: int = 16_000_000  # per image (width x height)
    max_runs: int = 4  # "Runs" per click of Generate
    max_in_flight: int = 4  # runs one person may have going at once
    max_batch_size: int = 4  # cap on any batch_size input
    mcp: bool = False  # also serve every tab as an MCP tool
    comfyui_headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never shown
    comfyui_tokens: dict[int, str] = field(default_factory=dict, repr=False)  # server number (1-based) -> token
    backend_keys: dict[str, str] = field(default_factory=dict, repr=False)  # COMFY_API_KEY[_<n>], ...: secrets
    app_secret: str = field(default="", repr=False)  # keys the browsers' owner ids; "" = kept in OUTPUT_DIR/.secret
    server_log: str = SERVER_LOG[0]  # SHOW_SERVER_LOG: a "Server log" panel with ComfyUI's own log during a run

    @property
    def shows_server_log(self) -> bool:
        """Whether tabs get the "Server log" panel: never on a public share link unless "public"."""
        return self.server_log == "public" or (self.server_log == "on" and not self.share)

    @property
    def comfyui_urls(self) -> list[str]:
        """The entries of the pool, in the order given (a kind's prefix included, as written)."""
        return [u.strip().rstrip("/") for u in self.comfyui_url.split(",") if u.strip()]

    @property
    def backends(self) -> list[tuple[int, str, str]]:
        """(number, kind, url) of every entry: ``v2+https://cloud.comfy.org`` is (n, "v2", "https://...")."""
        return [(number, *parse_entry(entry)) for number, entry in enumerate(self.comfyui_urls, start=1)]

    def secrets_for(self, number: int, kind: str) -> dict[str, str]:
        """The secrets of entry ``number`` by variable name: ``<KEY>_<number>``, else ``<KEY>``."""
        found = {key: self.backend_keys.get(f"{key}_{number}") or self.backend_keys.get(key, "")
                 for key in KINDS[kind].keys}
        return {key: value for key, value in found.items() if value}

    def headers_for(self, number: int) -> dict[str, str]:
        """Headers for server ``number`` (1-based): the common ones, its own token if it has one."""
        headers = dict(self.comfyui_headers)
        if number in self.comfyui_tokens:
            headers["Authorization"] = f"Bearer {self.comfyui_tokens[number]}"
        return headers


def parser() -> argparse.ArgumentParser:
    d = Settings
    p = argparse.ArgumentParser(description="Serve ComfyUI workflows as a Gradio app.")
    p.add_argument("--comfyui-url", help=f"ComfyUI server URL (env COMFYUI_URL; default {d.comfyui_url})")
    p.add_argument("--workflows", help=f"folder of workflow .json/.yaml files (env WORKFLOWS_DIR; default "
                                       f"{d.workflows_dir})")
    p.add_argument("--outputs", help=f"folder for downloaded results (env OUTPUT_DIR; default {d.output_dir})")
    p.add_argument("--host", help=f"address to listen on (env GRADIO_SERVER_NAME; default {d.server_name})")
    p.add_argument("--port", type=int, help=f"port to listen on (env GRADIO_SERVER_PORT; default {d.server_port})")
    p.add_argument("--share", action="store_true", default=None, help="create a public share link (env GRADIO_SHARE)")
    p.add_argument("--auth", help="'user:password[,user2:password2]' required to open the page (env GRADIO_AUTH)")
    p.add_argument("--tracker", choices=TRACKERS, help="how to follow jobs (env COMFYUI_TRACKER)")
    p.add_argument("--mcp", action="store_true", default=None,
                   help="serve every workflow as an MCP tool (env GRADIO_MCP_SERVER; needs requirements-mcp.txt)")
    return p


def load_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: os.environ after reading ``.env``) and ``argv``; what neither
    gives keeps the default of ``Settings``."""
    if env is None:
        from dotenv import find_dotenv, load_dotenv

        # From the current folder up (python-dotenv's default starts from this file's folder, which for an
        # installed package is site-packages, so the comfyui-gradio console script would never find .env).
        load_dotenv(find_dotenv(usecwd=True), override=False)
        env = os.environ
    args = parser().parse_args(argv)
    problems: list[Problem] = []
    url = args.comfyui_url or env.get("COMFYUI_URL")
    given = dict(
        comfyui_url=_url(url, problems) if url else None,
        backend_keys=_backend_keys(env, problems),
        workflows_dir=_path(args.workflows or env.get("WORKFLOWS_DIR")),
        workflow_urls=_workflow_urls(env.get("WORKFLOW_URLS", ""), problems),
        output_dir=_path(args.outputs or env.get("OUTPUT_DIR")),
        cache_dir=_path(env.get("CACHE_DIR")),
        server_name=args.host or env.get("GRADIO_SERVER_NAME") or None,
        server_port=args.port or _int(env, "GRADIO_SERVER_PORT", problems),
        share=args.share if args.share is not None else _bool(env, "GRADIO_SHARE", problems),
        auth=_auth(args.auth or env.get("GRADIO_AUTH", ""), problems),
        tracker=args.tracker or _choice(env, "COMFYUI_TRACKER", TRACKERS, problems),
        concurrency=_int(env, "CONCURRENCY", problems),
        job_timeout=_int(env, "JOB_TIMEOUT", problems),
        cloud_after=_int(env, "CLOUD_AFTER", problems),
        max_upload_mb=_int(env, "MAX_UPLOAD_MB", problems),
        max_upload_pixels=_int(env, "MAX_UPLOAD_PIXELS", problems),
        max_runs=_int(env, "MAX_RUNS", problems),
        max_in_flight=_int(env, "MAX_RUNS_IN_FLIGHT", problems),
        max_batch_size=_int(env, "MAX_BATCH_SIZE", problems),
        mcp=args.mcp if args.mcp is not None else _bool(env, "GRADIO_MCP_SERVER", problems),
        comfyui_headers=_headers(env, problems),
        comfyui_tokens=_tokens(env, problems),
        app_secret=env.get("APP_SECRET", "").strip() or None,
        server_log=_server_log(env, problems),
    )
    _check_backends(Settings(**{k: v for k, v in given.items() if k in ("comfyui_url", "backend_keys") and v}),
                    problems)
    if problems:
        raise ConfigError(problems)
    for seconds in ("job_timeout", "cloud_after"):
        if given[seconds] is not None:
            given[seconds] = float(given[seconds])
    return Settings(**{key: value for key, value in given.items() if value is not None})


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _url(value: str, problems: list[Problem]) -> str:
    """One URL or several, comma-separated (a pool of servers); each may name its kind by a prefix."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for number, entry in enumerate(urls or [value], start=1):
        kind, url = parse_entry(entry)
        if kind not in KINDS:
            prefixes = ", ".join(f"{k}+" for k in KINDS if k != "comfyui")
            problems.append(Problem("settings", "COMFYUI_URL", f"entry {number} {entry!r}: unknown kind {kind!r}; "
                                    f"use one of {prefixes} or no prefix for a ComfyUI server"))
        elif not url.startswith(("http://", "https://")):
            reason = (f"{entry!r} must start with http:// or https://" if kind == "comfyui"
                      else f"{entry!r}: after {kind}+ must come http:// or https://")
            problems.append(Problem("settings", "COMFYUI_URL", reason))
        elif kind != "comfyui" and _has_userinfo(url):
            problems.append(Problem("settings", "COMFYUI_URL", f"entry {number}: a {KINDS[kind].label} URL carries no "
                                    f"credentials; set {' / '.join(KINDS[kind].keys)} instead (value not shown)"))
        elif not KINDS[kind].available():
            problems.append(Problem("settings", "COMFYUI_URL", f"entry {number} ({kind}+{url}): {KINDS[kind].label} "
                                    "isn't wired yet in this version of comfyui-gradio; remove the entry"))
        elif KINDS[kind].missing_packages():
            problems.append(Problem("settings", "COMFYUI_URL", f"entry {number} ({kind}+{url}) needs the package(s) "
                                    f"{', '.join(KINDS[kind].missing_packages())}: pip install -r requirements.txt"))
    return ",".join(u.rstrip("/") for u in urls)


def _workflow_urls(value: str, problems: list[Problem]) -> tuple[str, ...] | None:
    """Workflow addresses separated by commas, spaces or new lines."""
    urls = tuple(value.replace(",", " ").split())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            problems.append(Problem("settings", "WORKFLOW_URLS", f"{url!r} must start with http:// or https://"))
    return urls or None


def _has_userinfo(url: str) -> bool:
    try:
        return bool(httpx.URL(url).userinfo)
    except httpx.InvalidURL:
        return "@" in url


def _check_backends(settings: Settings, problems: list[Problem]) -> None:
    """Every secret an entry needs is set (as ``<KEY>_<n>`` or ``<KEY>``)."""
    if any(p.key == "COMFYUI_URL" for p in problems):
        return
    for number, kind, url in settings.backends:
        have = settings.secrets_for(number, kind)
        for key in KINDS[kind].required_for(url):
            if key not in have:
                problems.append(Problem("settings", "COMFYUI_URL", f"entry {number} ({kind}+{url}) needs {key}: set "
                                        f"{key} (or {key}_{number} for this entry only)"))


def _backend_keys(env: Mapping[str, str], problems: list[Problem]) -> dict[str, str]:
    """The secrets of the remote kinds (``KINDS[...].keys``), each plain or as ``<KEY>_<n>``."""
    names = {key for kind in KINDS.values() for key in kind.keys}
    keys = {}
    for key, value in env.items():
        base, _, number = key.rpartition("_")
        if key in names:
            keys[key] = value.strip()
        elif base in names:
            if not number.isdigit() or int(number) < 1:
                problems.append(Problem("settings", key, f"must end in the entry's number: {base}_1, ..."))
                continue
            keys[key] = value.strip()
    return {key: value for key, value in keys.items() if value}


def _int(env: Mapping[str, str], key: str, problems: list[Problem]) -> int | None:
    """A positive whole number, or None when unset (or wrong: then noted in ``problems``)."""
    raw = env.get(key, "")
    if not raw:
        return None
    try:
        value = int(raw)
        if value <= 0:
            raise ValueError
        return value
    except ValueError:
        problems.append(Problem("settings", key, f"{raw!r} must be a positive whole number"))
        return None


def _bool(env: Mapping[str, str], key: str, problems: list[Problem]) -> bool | None:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return None
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    problems.append(Problem("settings", key, f"{raw!r} must be true or false"))
    return None


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], problems: list[Problem]) -> str | None:
    raw = env.get(key, "")
    if raw and raw not in choices:
        problems.append(Problem("settings", key, f"{raw!r} must be one of: {', '.join(choices)}"))
        return None
    return raw or None


def _auth(raw: str, problems: list[Problem]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            problems.append(Problem("settings", "GRADIO_AUTH", "each entry must look like user:password"))
            continue
        pairs.append((user, password))
    return tuple(pairs)


def _tokens(env: Mapping[str, str], problems: list[Problem]) -> dict[int, str]:
    """COMFYUI_TOKEN_1, COMFYUI_TOKEN_2, ...: a bearer token for one server of the pool."""
    tokens = {}
    for key, value in env.items():
        if key.startswith("COMFYUI_TOKEN_") and value:
            number = key.removeprefix("COMFYUI_TOKEN_")
            if not number.isdigit() or int(number) < 1:
                problems.append(Problem("settings", key, "must end in the server's number: COMFYUI_TOKEN_1, ..."))
                continue
            tokens[int(number)] = value
    return tokens


def _headers(env: Mapping[str, str], problems: list[Problem]) -> dict[str, str]:
    """COMFYUI_HEADERS (a JSON object), COMFYUI_COOKIES, and COMFYUI_TOKEN as a bearer token."""
    headers: dict[str, str] = {}
    raw = env.get("COMFYUI_HEADERS", "")
    if raw:
        try:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError
            headers.update({str(k): str(v) for k, v in parsed.items()})
        except ValueError:
            problems.append(Problem("settings", "COMFYUI_HEADERS",
                                    'must be a JSON object such as {"X-Api-Key": "..."} (value not shown)'))
    if env.get("COMFYUI_COOKIES"):
        headers["Cookie"] = env["COMFYUI_COOKIES"]
    if env.get("COMFYUI_TOKEN"):
        headers["Authorization"] = f"Bearer {env['COMFYUI_TOKEN']}"
    return headers


def _server_log(env: Mapping[str, str], problems: list[Problem]) -> str | None:
    """SHOW_SERVER_LOG: off (the default), on (also 1, true, yes), or public (on share links too)."""
    raw = env.get("SHOW_SERVER_LOG", "").strip().lower()
    if not raw:
        return None
    aliases = {"0": "off", "false": "off", "no": "off", "1": "on", "true": "on", "yes": "on"}
    value = aliases.get(raw, raw)
    if value not in SERVER_LOG:
        problems.append(Problem("settings", "SHOW_SERVER_LOG", f"{raw!r} must be one of: {', '.join(SERVER_LOG)}"))
        return None
    return value
