"""Backends of every kind behind one interface: COMFYUI_URL entries and their keys, the pool, the panel,
and the job handle the remote kinds share."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from comfyui_gradio.comfy import backend as backends
from comfyui_gradio.comfy.backend import KINDS, BackendKind, Log, RemoteBackend, parse_entry
from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.comfy.events import Progress, Started
from comfyui_gradio.comfy.job import JobHooks
from comfyui_gradio.comfy.pool import ComfyPool
from comfyui_gradio.comfy.results import OutputFile
from comfyui_gradio.comfy.v2 import V2Backend
from comfyui_gradio.comfy.viewcomfy import ViewComfyBackend
from comfyui_gradio.errors import ConfigError, JobCancelled, JobTimeout, ServerError
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.web.app import make_pool
from comfyui_gradio.web.config import load_settings
from comfyui_gradio.web.page import servers_panel
from tests.fake_comfyui import FakeComfyUI
from tests.paths import WORKFLOWS
from tests.harness import wait_for
from tests.replay import png_bytes
from tests.v2_double import V2Double

MIXED = {"COMFYUI_URL": "http://127.0.0.1:9,v2+http://127.0.0.1:9/v2,viewcomfy+https://vc.test/api/d1,"
                        "v2+http://127.0.0.1:9/proxy",
         "COMFY_API_KEY": "key-cloud", "COMFY_API_KEY_4": "key-four",
         "VIEWCOMFY_CLIENT_ID": "vc-id", "VIEWCOMFY_CLIENT_SECRET_3": "vc-secret-three"}
SECRETS = ("key-cloud", "key-four", "vc-secret-three")


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings([], env=env)
    return [str(p) for p in caught.value.problems]


def test_an_entry_names_its_kind_by_a_prefix() -> None:
    assert parse_entry("v2+https://cloud.comfy.org/") == ("v2", "https://cloud.comfy.org")
    assert parse_entry(" http://a:1 ") == ("comfyui", "http://a:1")
    assert parse_entry("ViewComfy+https://x.test/api") == ("viewcomfy", "https://x.test/api")
    settings = load_settings([], env=MIXED)
    assert settings.backends == [(1, "comfyui", "http://127.0.0.1:9"), (2, "v2", "http://127.0.0.1:9/v2"),
                                 (3, "viewcomfy", "https://vc.test/api/d1"), (4, "v2", "http://127.0.0.1:9/proxy")]
    assert settings.secrets_for(2, "v2") == {"COMFY_API_KEY": "key-cloud"}
    assert settings.secrets_for(4, "v2") == {"COMFY_API_KEY": "key-four"}  # its own beats the common one
    assert settings.secrets_for(3, "viewcomfy") == {"VIEWCOMFY_CLIENT_ID": "vc-id",
                                                    "VIEWCOMFY_CLIENT_SECRET": "vc-secret-three"}


def test_the_pool_holds_a_backend_of_each_kind_with_its_keys(tmp_path: Path) -> None:
    pool = make_pool(load_settings(["--outputs", str(tmp_path)], env=MIXED))
    comfyui, cloud, viewcomfy, proxy = pool.clients
    assert [type(b) for b in pool.clients] == [ComfyClient, V2Backend, ViewComfyBackend, V2Backend]
    assert [b.kind for b in pool.clients] == ["comfyui", "v2", "viewcomfy", "v2"]
    assert cloud.sdk._low._p.api_key == "key-cloud" and proxy.sdk._low._p.api_key == "key-four"
    assert viewcomfy._headers == {"client_id": "vc-id", "client_secret": "vc-secret-three"}
    assert cloud.output_dir == tmp_path
    pool.close()


def test_a_wrong_prefix_or_a_missing_key_names_the_entry_and_what_to_set() -> None:
    assert problems({"COMFYUI_URL": "http://a:1,comfy+https://cloud.comfy.org,v2+cloud.comfy.org"}) == [
        "settings: COMFYUI_URL: entry 2 'comfy+https://cloud.comfy.org': unknown kind 'comfy'; use one of v2+, "
        "viewcomfy+, runninghub+ or no prefix for a ComfyUI server",
        "settings: COMFYUI_URL: 'v2+cloud.comfy.org': after v2+ must come http:// or https://",
    ]
    assert problems({"COMFYUI_URL": "v2+https://cloud.comfy.org,viewcomfy+https://vc.test/d",
                     "VIEWCOMFY_CLIENT_ID_2": "id", "COMFY_API_KEY_x": "k"}) == [
        "settings: COMFY_API_KEY_x: must end in the entry's number: COMFY_API_KEY_1, ...",
        "settings: COMFYUI_URL: entry 1 (v2+https://cloud.comfy.org) needs COMFY_API_KEY: set COMFY_API_KEY "
        "(or COMFY_API_KEY_1 for this entry only)",
        "settings: COMFYUI_URL: entry 2 (viewcomfy+https://vc.test/d) needs VIEWCOMFY_CLIENT_SECRET: set "
        "VIEWCOMFY_CLIENT_SECRET (or VIEWCOMFY_CLIENT_SECRET_2 for this entry only)",
    ]
    load_settings([], env={"COMFYUI_URL": "v2+http://127.0.0.1:8189"})  # a proxy needs no key


def test_credentials_in_a_remote_url_are_refused_unshown() -> None:
    assert problems({"COMFYUI_URL": "v2+https://me:hunter2@cloud.comfy.org", "COMFY_API_KEY": "k"}) == [
        "settings: COMFYUI_URL: entry 1: a Comfy API v2 URL carries no credentials; set COMFY_API_KEY instead "
        "(value not shown)"]


def test_a_kind_not_wired_yet_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "runninghub", BackendKind("runninghub", "RunningHub", "no_such_module", "X",
                                                         {"RUNNINGHUB_API_KEY": "api_key"}, ("RUNNINGHUB_API_KEY",)))
    assert problems({"COMFYUI_URL": "runninghub+https://www.runninghub.ai", "RUNNINGHUB_API_KEY": "k"}) == [
        "settings: COMFYUI_URL: entry 1 (runninghub+https://www.runninghub.ai): RunningHub isn't wired yet in this "
        "version of comfyui-gradio; remove the entry"]


def test_a_kind_whose_package_is_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, "v2", BackendKind("v2", "Comfy API v2", "v2", "V2Backend", packages=("no-such-sdk",)))
    assert problems({"COMFYUI_URL": "v2+http://127.0.0.1:8189"}) == [
        "settings: COMFYUI_URL: entry 1 (v2+http://127.0.0.1:8189) needs the package(s) no-such-sdk: pip install -r "
        "requirements.txt"]


def test_secrets_are_never_logged_or_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(["--outputs", str(tmp_path)], env=MIXED)
    pool = make_pool(settings)  # nothing answers here: every check fails and is logged
    shown = "\n".join([repr(settings), caplog.text, str(pool.statuses()), servers_panel(pool),
                       *map(repr, pool.clients)])
    pool.close()
    assert "http://127.0.0.1:9/v2" in shown and "Comfy API v2" in servers_panel(pool)
    assert [s for s in SECRETS if s in shown] == []


# ---- the pool and the panel with kinds ------------------------------------------------------------


class Scripted(RemoteBackend):
    """A remote backend whose runs do what a test says (``script(emit)`` returns the output files)."""

    kind = "viewcomfy"

    def __init__(self, url: str, script: Callable[[Callable[[Any], None]], list[OutputFile]], *,
                 up: bool = True, output_dir: Path | None = None, slow_cancel: bool = False) -> None:
        super().__init__(url, output_dir=output_dir)
        self.script, self.up, self.cancelled = script, up, threading.Event()
        self.slow_cancel = slow_cancel  # the cancel call returns only after the follower has ended

    def _probe(self) -> None:
        if not self.up:
            raise ServerError("down for the test")

    def _begin(self, tab, prepared, uploads, prompt_id):  # noqa: ANN001, ANN202
        backend = self

        class Run:
            def follow(self, emit, job_dir):  # noqa: ANN001, ANN202
                return backend.script(emit)

            def cancel(self) -> None:
                backend.cancelled.set()
                if backend.slow_cancel:
                    time.sleep(0.2)

        return Run()


def test_the_panel_shows_every_backend_with_its_kind(tmp_path: Path) -> None:
    down = ComfyClient("http://127.0.0.1:9", output_dir=tmp_path)
    pool = ComfyPool([down, Scripted("https://vc.test/d", lambda emit: [])], health_interval=3600)
    pool.check_all()
    panel = servers_panel(pool)
    assert panel.startswith("⚠️ **Some backends are down**; jobs go to the others.\n\n"
                            "| backend | state | queue | jobs from here | kind |\n|---|---|---|---|---|\n")
    assert panel.endswith("| http://127.0.0.1:9 | 🔴 down | 0 | 0 | ComfyUI |\n| https://vc.test/d | 🟢 up | 0 | 0 | "
                          "ViewComfy |")
    single = ComfyPool([Scripted("https://vc.test/d", lambda emit: [], up=False)], health_interval=3600)
    single.check_all()
    assert servers_panel(single) == ("⚠️ **ViewComfy is not reachable.** down for the test The tabs below will work "
                                     "as soon as it is up.")
    pool.close()


def test_a_backend_without_a_catalogue_takes_what_no_server_here_can_run(tmp_path: Path, catalog: Catalog) -> None:
    """The ComfyUI server lacks ImageInvert; the remote backend publishes no catalogue, so it has every node."""
    with FakeComfyUI() as local:
        pool = ComfyPool([ComfyClient(local.url, output_dir=tmp_path), Scripted("https://vc.test/d", lambda emit: [])],
                         health_interval=3600).start()
        pool._servers[0].catalog = Catalog({k: v for k, v in catalog.raw.items() if k != "ImageInvert"})
        tab = load_tab(WORKFLOWS / "invert.json", catalog)
        assert pool.pick(tab, {"image": "x.png"}).url == "https://vc.test/d"
        assert pool.pick(tab, {"image": "x.png"}, kind="comfyui").url == local.url
        lost = SimpleNamespace(client=pool.clients[0], prompt_id="p-1", tab=tab,
                               prepared=SimpleNamespace(values={"image": "x.png"}))
        assert pool._failover(lost) is None  # a ComfyUI job is never moved to a backend of another kind
        pool.close()


# ---- the job handle of the remote kinds ----------------------------------------------------------


@pytest.mark.parametrize("end", ["cancel", "timeout"])
def test_a_run_that_ends_at_once_when_asked_to_stop_is_still_cancelled(tmp_path: Path, end: str) -> None:
    """A follower that returns as soon as its backend is asked to stop (comfy-sdk's stream) must not turn a
    cancelled or timed-out job into a success without outputs."""
    backend = Scripted("https://vc.test/d", lambda emit: (emit(Started()), backend.cancelled.wait(5), [])[-1],
                       output_dir=tmp_path, slow_cancel=True)
    job = backend.submit(load_tab(WORKFLOWS / "invert.json"), {"image": png_bytes()},
                         timeout=0.3 if end == "timeout" else 600)
    next(e for e in job.events() if e is not None)  # it runs
    if end == "cancel":
        job.cancel()
    with pytest.raises(JobCancelled if end == "cancel" else JobTimeout):
        job.result(timeout=5)


def test_a_remote_job_gives_its_events_then_its_result(tmp_path: Path) -> None:
    def script(emit: Callable[[Any], None]) -> list[OutputFile]:
        emit(Started())
        emit(Log("got prompt"))
        emit(Progress("", "Running", 1, 2))
        return []

    finished: list[bool] = []
    backend = Scripted("https://vc.test/d", script, output_dir=tmp_path)
    job = backend.submit(load_tab(WORKFLOWS / "invert.json"), {"image": png_bytes()}, timeout=600,
                         hooks=JobHooks(finished=lambda j, ok: finished.append(ok)))
    assert list(job.events()) == [Started(), Log("got prompt"), Progress("", "Running", 1, 2)]
    result = job.result(timeout=5)
    assert result.warnings and result.server == "https://vc.test/d" and job.started_at is not None
    assert finished == [True] and job.job_dir == tmp_path / job.prompt_id
    assert list(job.uploads) == ["image"]
    wait_for(lambda: not job._timer.is_alive())  # a finished job leaves no timer waiting out its timeout


def test_cancel_and_timeout_end_a_remote_job_at_once_and_tell_the_backend(tmp_path: Path) -> None:
    release = threading.Event()

    def stuck(emit: Callable[[Any], None]) -> list[OutputFile]:
        emit(Started())
        release.wait(10)
        return []

    tab = load_tab(WORKFLOWS / "invert.json")
    backend = Scripted("https://vc.test/d", stuck, output_dir=tmp_path)
    job = backend.submit(tab, {"image": png_bytes()})
    next(iter(job.events()))
    job.cancel()
    with pytest.raises(JobCancelled, match="^Cancelled by you.$"):
        job.result(timeout=1)
    assert backend.cancelled.is_set()
    late = Scripted("https://vc.test/d", stuck, output_dir=tmp_path)
    with pytest.raises(JobTimeout, match=r"^The run took longer than allowed and was cancelled \(prompt "):
        late.submit(tab, {"image": png_bytes()}, timeout=0.2).result(timeout=5)
    assert late.cancelled.is_set()
    release.set()


def test_a_run_of_an_earlier_process_cannot_be_followed_on_a_remote_kind(tmp_path: Path) -> None:
    backend = V2Backend("http://v2.test", http=httpx.Client(transport=V2Double().transport()), output_dir=tmp_path)
    with pytest.raises(ServerError) as caught:
        backend.attach(load_tab(WORKFLOWS / "invert.json"), "p-1", None)  # type: ignore[arg-type]
    assert str(caught.value) == ("A run left going on http://v2.test by an earlier app process cannot be followed "
                                 "again on a Comfy API v2 backend; run it again.")


def test_a_new_kind_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(KINDS, "viewcomfy2", BackendKind("viewcomfy2", "ViewComfy", "viewcomfy", "ViewComfyBackend",
                                                         KINDS["viewcomfy"].keys, KINDS["viewcomfy"].required))
    settings = load_settings(["--outputs", str(tmp_path)], env={
        "COMFYUI_URL": "viewcomfy2+https://vc.test/d", "VIEWCOMFY_CLIENT_ID": "i", "VIEWCOMFY_CLIENT_SECRET": "s"})
    pool = make_pool(settings)
    (built,) = pool.clients
    pool.close()
    assert isinstance(built, ViewComfyBackend) and built.url == "https://vc.test/d"
    assert backends.KINDS is KINDS


def test_the_native_client_and_job_are_a_backend_and_a_job_handle_as_they_are() -> None:
    from comfyui_gradio.comfy.backend import Backend, JobHandle, RemoteJob
    from comfyui_gradio.comfy.job import Job

    def members(protocol: type) -> set[str]:
        return {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)

    assert members(Backend) == {"url", "kind", "submit", "attach", "load", "queue_state", "catalog", "close"}
    for implementation in (ComfyClient("http://127.0.0.1:9"), V2Backend("http://127.0.0.1:9")):
        assert [m for m in members(Backend) if not hasattr(implementation, m)] == []
    for handle in (Job, RemoteJob):  # a class attribute, or one its __init__ sets
        assert [m for m in members(JobHandle) if not hasattr(handle, m) and m not in handle.__init__.__code__.co_names] \
            == []
