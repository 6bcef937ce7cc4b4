"""Settings from the environment and flags, and secrets that never show."""

from __future__ import annotations

import base64
import re
import logging
from pathlib import Path

import httpx
import pytest

from comfyui_gradio.web.app import make_pool
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.web.config import Settings, load_settings
from comfyui_gradio.errors import ConfigError, ServerUnavailable
from comfyui_gradio.forms.loader import load_tab
from tests.paths import WORKFLOWS
from tests.replay import Replay, load_transcript, png_bytes

SECRETS = ("pw-one", "tok-two", "cookie-three", "hdr-four")
ENV = {"COMFYUI_URL": "http://alice:pw-one@127.0.0.1:9,http://127.0.0.1:10", "COMFYUI_TOKEN_2": "tok-two",
       "COMFYUI_COOKIES": "session=cookie-three", "COMFYUI_HEADERS": '{"X-Api-Key": "hdr-four"}'}


def test_flags_override_the_environment() -> None:
    env = {"COMFYUI_URL": "http://a:1", "GRADIO_SERVER_PORT": "9000", "WORKFLOWS_DIR": "w", "GRADIO_SHARE": "yes"}
    settings = load_settings(["--comfyui-url", "http://b:2,http://c:3", "--port", "7000"], env=env)
    assert settings.comfyui_urls == ["http://b:2", "http://c:3"]
    assert (settings.server_port, settings.workflows_dir, settings.share) == (7000, Path("w"), True)


def test_every_bad_setting_is_reported_by_name() -> None:
    env = {"COMFYUI_URL": "localhost:8188", "GRADIO_SERVER_PORT": "eighty", "GRADIO_SHARE": "maybe",
           "GRADIO_AUTH": "nopassword", "COMFYUI_TRACKER": "pigeon", "COMFYUI_HEADERS": "[1]",
           "COMFYUI_TOKEN_x": "t"}
    with pytest.raises(ConfigError) as caught:
        load_settings([], env=env)
    assert [str(p) for p in caught.value.problems] == [
        "settings: COMFYUI_URL: 'localhost:8188' must start with http:// or https://",
        "settings: GRADIO_SERVER_PORT: 'eighty' must be a positive whole number",
        "settings: GRADIO_SHARE: 'maybe' must be true or false",
        "settings: GRADIO_AUTH: each entry must look like user:password",
        "settings: COMFYUI_TRACKER: 'pigeon' must be one of: websocket, http",
        'settings: COMFYUI_HEADERS: must be a JSON object such as {"X-Api-Key": "..."} (value not shown)',
        "settings: COMFYUI_TOKEN_x: must end in the server's number: COMFYUI_TOKEN_1, ...",
    ]


def test_credentials_reach_each_server_of_the_pool(tmp_path: Path) -> None:
    settings = load_settings(["--outputs", str(tmp_path)], env=ENV)
    pool = make_pool(settings)
    first, second = pool.clients
    assert (first.url, second.url) == ("http://127.0.0.1:9", "http://127.0.0.1:10")
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pw-one").decode()
    assert second.headers["Authorization"] == "Bearer tok-two"
    for client in (first, second):
        assert client.headers["Cookie"] == "session=cookie-three" and client.headers["X-Api-Key"] == "hdr-four"
        assert client.http.headers["Cookie"] == "session=cookie-three"
    pool.close()


def test_cloud_after_reaches_the_pool(tmp_path: Path) -> None:
    pool = make_pool(load_settings(["--outputs", str(tmp_path)], env={**ENV, "CLOUD_AFTER": "90"}))
    assert pool.cloud_after == 90.0
    pool.close()
    assert make_pool(load_settings(["--outputs", str(tmp_path)], env=ENV)).cloud_after is None
    with pytest.raises(ConfigError) as caught:
        load_settings([], env={"CLOUD_AFTER": "soon"})
    assert str(caught.value) == "settings: CLOUD_AFTER: 'soon' must be a positive whole number"


def test_secrets_never_appear_in_messages_logs_or_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          catalog: Catalog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(["--outputs", str(tmp_path)], env=ENV)
    pool = make_pool(settings)
    with pytest.raises(ServerUnavailable) as caught:
        pool.submit(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    pool.close()
    shown = "\n".join([str(caught.value), caplog.text, repr(settings), str(pool.statuses())])
    assert "127.0.0.1:9" in shown
    assert not [secret for secret in SECRETS if secret in shown]


def test_headers_go_on_http_and_websocket(tmp_path: Path, catalog: Catalog) -> None:
    replay = Replay(load_transcript("b1_load_invert_save"))
    seen: list[dict] = []

    def connect(url: str, *, headers: dict[str, str], timeout: float):
        seen.append(headers)
        return replay.connect(url, headers=headers, timeout=timeout)

    headers = {"Authorization": "Bearer tok-two", "Cookie": "session=cookie-three"}
    http = httpx.Client(base_url="http://comfy.test", transport=replay.transport(), headers=headers)
    client = ComfyClient("http://comfy.test", http=http, connect_ws=connect, headers=headers, output_dir=tmp_path)
    client.run(load_tab(WORKFLOWS / "invert.json", catalog), {"image": png_bytes()})
    assert seen == [headers]
    assert all(r.headers["authorization"] == "Bearer tok-two" for r in replay.requests)


def test_a_share_link_that_cannot_be_made_is_one_clear_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from comfyui_gradio.web.app import create_app, launch
    from tests.fake_comfyui import FakeComfyUI
    from tests.harness import free_port

    caplog.set_level(logging.INFO, logger="comfyui_gradio")
    with FakeComfyUI() as fake:
        settings = load_settings(["--comfyui-url", fake.url, "--outputs", str(tmp_path / "out"), "--share",
                                  "--port", str(free_port())], env={"CACHE_DIR": str(tmp_path / "cache")})
        app, pool = create_app(settings)
        closed = f"127.0.0.1:{free_port()}"  # never the internet: a closed local port stands in for it
        launch(app, settings, prevent_thread_lock=True, quiet=True, share_server_address=closed)
        try:
            assert httpx.get(app.local_url).status_code == 200  # still serving locally
        finally:
            app.close()
            pool.close()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "comfyui_gradio.web.app"]
    assert records[0] == ("WARNING", "The public link has no password: anyone who has it can run your workflows. "
                                     "Set GRADIO_AUTH=user:password (or --auth) to protect it.")
    assert records[1][0] == "ERROR" and "\n" not in records[1][1]
    assert records[1][1].startswith("Could not create a public share link (")
    assert records[1][1].endswith(f"the app is still served at {app.local_url}")


@pytest.mark.parametrize("how", ["settings", "callable"])
def test_the_page_needs_a_login_when_auth_is_set(how: str, tmp_path: Path) -> None:
    from gradio_client import Client

    from comfyui_gradio.web.app import create_app, launch
    from tests.fake_comfyui import FakeComfyUI
    from tests.harness import free_port

    env = {"CACHE_DIR": str(tmp_path / "c"), **({"GRADIO_AUTH": "ann:pw"} if how == "settings" else {})}
    with FakeComfyUI() as fake:
        settings = load_settings(["--comfyui-url", fake.url, "--outputs", str(tmp_path / "o"), "--port",
                                  str(free_port())], env=env)
        app, pool = create_app(settings)
        extra = {"auth": lambda user, password: (user, password) == ("ann", "pw")} if how == "callable" else {}
        launch(app, settings, prevent_thread_lock=True, quiet=True, **extra)
        try:
            assert httpx.get(app.local_url + "config").status_code == 401
            refused = httpx.post(app.local_url + "login", data={"username": "ann", "password": "wrong"})
            assert (refused.status_code, refused.json()) == (400, {"detail": "Incorrect credentials."})
            with pytest.raises(ValueError) as caught:
                Client(app.local_url, auth=("ann", "wrong"), verbose=False)
            assert str(caught.value) == f"Could not login to {app.local_url}."  # gradio_client's word for a 400
            endpoints = Client(app.local_url, auth=("ann", "pw"), verbose=False).view_api(
                return_format="dict", print_info=False)["named_endpoints"]
            assert "/invert" in endpoints
        finally:
            app.close()
            pool.close()


def test_env_example_is_valid_and_names_every_setting() -> None:
    from dotenv import dotenv_values

    from tests.paths import ROOT

    text = (ROOT / ".env.example").read_text()
    load_settings([], env={k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v is not None})
    readme = (ROOT / "README.md").read_text()
    for name in re.findall(r"^\| `([A-Z_]+)(?:<n>)?`", readme, re.M):
        assert name in text, f".env.example does not mention {name}"


def test_what_is_not_set_keeps_the_defaults_of_settings() -> None:
    assert load_settings([], env={}) == Settings()
    assert load_settings([], env={"MAX_RUNS": "", "GRADIO_SHARE": ""}) == Settings()
    given = load_settings([], env={"JOB_TIMEOUT": "30", "MAX_RUNS": "2", "GRADIO_SHARE": "no", "CACHE_DIR": "c"})
    assert given == Settings(job_timeout=30.0, max_runs=2, share=False, cache_dir=Path("c"))
    assert type(given.job_timeout) is float
