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

from ..errors import ConfigError, Problem

__all__ = ["SERVER_LOG", "TRACKERS", "Settings", "load_settings", "parser"]

TRACKERS = ("websocket", "http")  # how the client follows jobs; the first is the default
SERVER_LOG = ("off", "on", "public")  # SHOW_SERVER_LOG: "on" leaves it off on a share link, "public" does not


@dataclass(frozen=True)
class Settings:
    comfyui_url: str = field(default="http://127.0.0.1:8188", repr=False)  # may carry user:password@
    workflows_dir: Path = Path("workflows")
    output_dir: Path = Path("outputs")
    cache_dir: Path = Path(".cache")
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    share: bool = False
    auth: tuple[tuple[str, str], ...] = ()
    tracker: str = TRACKERS[0]
    concurrency: int = 16
    job_timeout: float = 600.0
    max_upload_mb: int = 20  # per image
    max_upload_pixels: int = 16_000_000  # per image (width x height)
    max_runs: int = 4  # "Runs" per click of Generate
    max_in_flight: int = 4  # runs one person may have going at once
    max_batch_size: int = 4  # cap on any batch_size input
    mcp: bool = False  # also serve every tab as an MCP tool
    comfyui_headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never shown
    comfyui_tokens: dict[int, str] = field(default_factory=dict, repr=False)  # server number (1-based) -> token
    app_secret: str = field(default="", repr=False)  # keys the browsers' owner ids; "" = kept in OUTPUT_DIR/.secret
    server_log: str = SERVER_LOG[0]  # SHOW_SERVER_LOG: a "Server log" panel with ComfyUI's own log during a run

    @property
    def shows_server_log(self) -> bool:
        """Whether tabs get the "Server log" panel: never on a public share link unless "public"."""
        return self.server_log == "public" or (self.server_log == "on" and not self.share)

    @property
    def comfyui_urls(self) -> list[str]:
        """The servers of the pool, in the order given."""
        return [u.strip().rstrip("/") for u in self.comfyui_url.split(",") if u.strip()]

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
        workflows_dir=_path(args.workflows or env.get("WORKFLOWS_DIR")),
        output_dir=_path(args.outputs or env.get("OUTPUT_DIR")),
        cache_dir=_path(env.get("CACHE_DIR")),
        server_name=args.host or env.get("GRADIO_SERVER_NAME") or None,
        server_port=args.port or _int(env, "GRADIO_SERVER_PORT", problems),
        share=args.share if args.share is not None else _bool(env, "GRADIO_SHARE", problems),
        auth=_auth(args.auth or env.get("GRADIO_AUTH", ""), problems),
        tracker=args.tracker or _choice(env, "COMFYUI_TRACKER", TRACKERS, problems),
        concurrency=_int(env, "CONCURRENCY", problems),
        job_timeout=_int(env, "JOB_TIMEOUT", problems),
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
    if problems:
        raise ConfigError(problems)
    if given["job_timeout"] is not None:
        given["job_timeout"] = float(given["job_timeout"])
    return Settings(**{key: value for key, value in given.items() if value is not None})


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _url(value: str, problems: list[Problem]) -> str:
    """One URL or several, comma-separated (a pool of servers)."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for url in urls or [value]:
        if not url.startswith(("http://", "https://")):
            problems.append(Problem("settings", "COMFYUI_URL", f"{url!r} must start with http:// or https://"))
    return ",".join(u.rstrip("/") for u in urls)


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
