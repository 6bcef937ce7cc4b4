"""An app restart loses no run: the browsers' owner ids stay readable, runs left going are collected by
the next start (``RunBook.reattach`` through ``ComfyClient.attach``), and SIGTERM leaves them ready for it.

Each test is a restart: a first app (or the process it would have been: a client and a run book) and a
second one built on the same OUTPUT_DIR, against the ComfyUI test double.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from comfyui_gradio.comfy.client import ComfyClient
from comfyui_gradio.errors import ServerError
from comfyui_gradio.forms.prepare import prepare
from comfyui_gradio.web.app import create_app, launch
from comfyui_gradio.web.config import Settings, load_settings
from comfyui_gradio.web.runs import RecordStatus, RunBook, RunRecord
from comfyui_gradio.web.shared import SECRET_FILE
from tests.fake_comfyui import FakeComfyUI
from tests.harness import fake_history_status, free_port, wait_for
from tests.paths import ROOT, WORKFLOWS

CHECKPOINT = "tiny-random-sd15.safetensors"
VALUES = {"prompt": "a fox", "seed": 5, "width": 64, "height": 96, "checkpoint": CHECKPOINT}  # for the library
FORM = {**VALUES, "seed_randomize": False}  # for the app's endpoint


def settings_on(fake: FakeComfyUI, folder: Path, **changes: object) -> Settings:
    return replace(Settings(comfyui_url=fake.url, workflows_dir=WORKFLOWS, output_dir=folder / "out",
                            cache_dir=folder / "cache", server_port=free_port()), **changes)


def owner_key(app: object) -> str:
    """The key the page's BrowserState encrypts the owner id with, as the page receives it."""
    config = app.get_config_file()  # type: ignore[attr-defined]
    return next(c["props"]["secret"] for c in config["components"] if c["type"] == "browserstate")


def record_on_disk(settings: Settings, owner: str, run_id: str) -> dict:
    return json.loads((settings.output_dir / owner / run_id / "record.json").read_text())


def write_running(settings: Settings, tab: str, server: str, run_id: str | None = None) -> str:
    """A record.json as a process that died while following the run left it."""
    run_id = run_id or str(uuid.uuid4())
    folder = settings.output_dir / "ann" / run_id
    folder.mkdir(parents=True)
    record = RunRecord(run_id=run_id, owner="ann", tab=tab, status=RecordStatus.RUNNING, form={"prompt": "x"},
                       started=1000.0, record={"server": server, "prompt": {}})
    (folder / "record.json").write_text(json.dumps({**record.__dict__, "status": "running"}))
    return run_id


# ---- the owner id ------------------------------------------------------------------------------


def test_every_app_on_one_output_folder_keys_the_owner_ids_alike(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = settings_on(fake, tmp_path)
    first, pool = create_app(settings)
    pool.close()
    second, pool = create_app(replace(settings, server_port=free_port()))  # a new process: a new app, same folder
    pool.close()
    assert owner_key(first) == owner_key(second)
    secret = settings.output_dir / SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() not in json.dumps(first.get_config_file())  # the page gets a key made from it

    elsewhere, pool = create_app(settings_on(fake, tmp_path / "other"))
    pool.close()
    assert owner_key(elsewhere) != owner_key(first)


def test_app_secret_keys_the_owner_ids_without_a_file_and_is_never_shown(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = load_settings([], env={"APP_SECRET": "correct horse battery", "COMFYUI_URL": fake.url,
                                      "WORKFLOWS_DIR": str(WORKFLOWS), "OUTPUT_DIR": str(tmp_path / "a")})
    assert "correct horse" not in repr(settings)
    one, pool = create_app(settings)
    pool.close()
    two, pool = create_app(replace(settings, output_dir=tmp_path / "b"))
    pool.close()
    assert owner_key(one) == owner_key(two)
    assert "correct horse" not in json.dumps(one.get_config_file())
    assert not (tmp_path / "a" / SECRET_FILE).exists()


def test_the_secret_file_is_not_served(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = settings_on(fake, tmp_path)
    app, pool = create_app(settings)
    try:
        launch(app, settings, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{settings.server_port}/gradio_api/file={(settings.output_dir / SECRET_FILE).resolve()}"
        assert httpx.get(url).status_code == 403
    finally:
        app.close()
        pool.close()


# ---- runs left going ---------------------------------------------------------------------------


def test_runs_left_going_by_a_stopped_app_are_collected_by_the_next_start(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = settings_on(fake, tmp_path)
    # The first process: two runs submitted, then it stops (suspend: what its SIGTERM handler does) and
    # is gone (its client closed) before either has finished.
    fake.step_delay = 0.2
    client = ComfyClient(fake.url, output_dir=settings.output_dir)
    tab = client.load(WORKFLOWS / "txt2img.json")
    book = RunBook(settings.output_dir).load()
    quick = client.submit(tab, {**VALUES, "steps": 1})
    slow = client.submit(tab, {**VALUES, "steps": 40, "height": 80})
    for job in (quick, slow):
        book.start("ann", tab, {"prompt": "a fox"}, job)
    assert book.suspend() == 2
    client.close()
    wait_for(lambda: fake_history_status(fake, quick.prompt_id) == "success")  # done while no app was up
    unknown = write_running(settings, "txt2img", fake.url)  # e.g. ComfyUI restarted meanwhile
    no_server = write_running(settings, "txt2img", "http://127.0.0.1:1")
    no_tab = write_running(settings, "gone", fake.url)
    assert record_on_disk(settings, "ann", slow.prompt_id)["status"] == "running"

    runs = RunBook(settings.output_dir).load()
    app, pool = create_app(settings, runs=runs)
    try:
        assert fake_history_status(fake, slow.prompt_id) is None  # still sampling when the app came back
        fake.step_delay = 0.0  # seen: now let it finish
        wait_for(lambda: not runs.unfinished() and all(r.status is not RecordStatus.RUNNING
                                                       for r in runs.recent("ann")), timeout=30)
        for job, height in ((quick, 96), (slow, 80)):
            record = runs.get("ann", job.prompt_id)
            assert (record.status, record.error) == (RecordStatus.DONE, "")
            [output] = record.outputs
            assert Path(output["path"]).parent == settings.output_dir / "ann" / job.prompt_id
            assert Image.open(output["path"]).size == (64, height)
            wait_for(lambda: record_on_disk(settings, "ann", job.prompt_id)["outputs"] == record.outputs)
        assert [p["prompt_id"] for p in fake.prompts] == [quick.prompt_id, slow.prompt_id]  # none sent again
        assert {run_id: (runs.get("ann", run_id).status, runs.get("ann", run_id).error)
                for run_id in (unknown, no_server, no_tab)} == {
            unknown: (RecordStatus.FAILED, "ComfyUI no longer knows this run (it restarted?); run it again."),
            no_server: (RecordStatus.FAILED, "This run was on ComfyUI at http://127.0.0.1:1, which is no longer one "
                                             "of the app's servers (COMFYUI_URL); its results cannot be collected. "
                                             "Run it again."),
            no_tab: (RecordStatus.FAILED, "The workflow 'gone' is no longer in the app's workflows folder; this "
                                          "run's results cannot be collected.")}
        assert record_on_disk(settings, "ann", unknown)["status"] == "failed"
    finally:
        app.close()
        pool.close()


def test_a_run_followed_again_can_be_cancelled_by_its_owner(fake: FakeComfyUI, tmp_path: Path) -> None:
    settings = settings_on(fake, tmp_path)
    fake.step_delay = 0.2
    with ComfyClient(fake.url, output_dir=settings.output_dir) as client:
        tab = client.load(WORKFLOWS / "txt2img.json")
        slow = client.submit(tab, {**VALUES, "steps": 50})
        book = RunBook(settings.output_dir).load()
        book.start("ann", tab, {"prompt": "a fox"}, slow)
        book.suspend()
    runs = RunBook(settings.output_dir).load()
    app, pool = create_app(settings, runs=runs)
    try:
        launch(app, settings, prevent_thread_lock=True, quiet=True)
        wait_for(lambda: not runs.unfinished())  # followed again
        ann, bob = (Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False) for _ in range(2))
        ann.session_hash = "ann"  # an API caller is known by its session: the record's owner here
        assert bob.predict(api_name="/txt2img_cancel") == "Nothing to cancel."
        assert ann.predict(api_name="/txt2img_cancel") == "⏹️ Cancelled: the run was stopped on ComfyUI."
        wait_for(lambda: runs.get("ann", slow.prompt_id).status is not RecordStatus.RUNNING)
        assert runs.get("ann", slow.prompt_id).status is RecordStatus.CANCELLED
        assert fake_history_status(fake, slow.prompt_id) == "error"  # ComfyUI stopped it (interrupted)
    finally:
        app.close()
        pool.close()


def test_attach_collects_a_finished_prompt_and_refuses_an_unknown_one(fake: FakeComfyUI, tmp_path: Path) -> None:
    with ComfyClient(fake.url, output_dir=tmp_path) as client:
        tab = client.load(WORKFLOWS / "txt2img.json")
        done = client.run(tab, {**VALUES, "steps": 1})
        again = client.attach(tab, done.prompt_id, prepare(tab, {**VALUES, "steps": 1}), output_dir=tmp_path / "b")
        [image] = again.result(10).images
        assert image.path.parent == tmp_path / "b" / done.prompt_id
        assert Image.open(image.path).tobytes() == Image.open(done.images[0].path).tobytes()
        with pytest.raises(ServerError) as caught:
            client.attach(tab, str(uuid.uuid4()), prepare(tab, VALUES))
        assert str(caught.value) == "ComfyUI no longer knows this run (it restarted?); run it again."
    assert len(fake.prompts) == 1


# ---- SIGTERM -----------------------------------------------------------------------------------


@pytest.fixture()
def app_process(fake: FakeComfyUI, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Settings]]:
    """``python app.py`` serving the shipped workflows on the double, in a process of its own."""
    settings = settings_on(fake, tmp_path)
    env = {**os.environ, "COMFYUI_URL": fake.url, "WORKFLOWS_DIR": str(WORKFLOWS),
           "OUTPUT_DIR": str(settings.output_dir), "CACHE_DIR": str(settings.cache_dir),
           "GRADIO_SERVER_PORT": str(settings.server_port), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{settings.server_port}/") or process.poll() is not None,
                 timeout=90)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield process, settings
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.process
@pytest.mark.timeout(240)
def test_sigterm_leaves_the_run_going_for_the_next_start(app_process: tuple[subprocess.Popen, Settings],
                                                         fake: FakeComfyUI) -> None:
    process, settings = app_process
    fake.step_delay = 0.25
    client = Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False)
    client.submit(**FORM, steps=16, api_name="/txt2img")
    wait_for(lambda: len(fake.prompts) == 1 and fake.queue_remaining == 1, timeout=30)
    prompt_id = fake.prompts[0]["prompt_id"]
    [folder] = wait_for_folders(settings.output_dir, prompt_id)

    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    log = process.stdout.read() if process.stdout else ""
    assert "Stopping; 1 run(s) in flight will be collected when the app starts again" in log
    left = json.loads((folder / "record.json").read_text())
    assert (left["status"], left["run_id"], left["record"]["server"]) == ("running", prompt_id, fake.url)
    assert ("POST", "/interrupt") not in fake.requests and fake_history_status(fake, prompt_id) is None

    runs = RunBook(settings.output_dir).load()
    app, pool = create_app(replace(settings, server_port=free_port()), runs=runs)
    try:
        owner = folder.parent.name
        wait_for(lambda: runs.get(owner, prompt_id).status is RecordStatus.DONE, timeout=30)
        [output] = runs.get(owner, prompt_id).outputs
        assert Image.open(output["path"]).size == (64, 96)
        assert json.loads((folder / "record.json").read_text())["status"] == "done"
        assert len(fake.prompts) == 1
    finally:
        app.close()
        pool.close()


def wait_for_folders(root: Path, run_id: str) -> list[Path]:
    wait_for(lambda: list(root.glob(f"*/{run_id}/record.json")), timeout=30)
    return [path.parent for path in root.glob(f"*/{run_id}/record.json")]


# ---- in a browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_after_a_restart_the_browser_finds_its_runs_and_the_one_left_going(fake: FakeComfyUI, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, open_tab

    settings = settings_on(fake, tmp_path)
    url = f"http://127.0.0.1:{settings.server_port}/"  # the same origin: the browser's storage is per origin
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        runs = RunBook(settings.output_dir).load()
        app, pool = serve(settings, runs)
        try:
            open_tab(page, url, "Text to image")
            page.locator("#txt2img-prompt textarea").fill("a finished fox")
            page.locator("#txt2img-steps input[type=number]").fill("1")
            page.locator("#txt2img-steps input[type=number]").press("Enter")
            page.locator("#txt2img-generate").click()
            expect(page.locator("#txt2img-status")).to_contain_text("✅ Done in ")
            fake.step_delay = 0.3
            page.locator("#txt2img-prompt textarea").fill("a fox left going")
            page.locator("#txt2img-steps input[type=number]").fill("15")
            page.locator("#txt2img-steps input[type=number]").press("Enter")
            page.locator("#txt2img-generate").click()
            expect(page.locator("#txt2img-status")).to_contain_text(re.compile(r"KSampler: step \d+ of 15"))
        finally:
            runs.suspend()  # the app stops while the second run samples
            app.close()
            pool.close()

        app, pool = serve(settings, RunBook(settings.output_dir).load())  # a new app: new components, same folder
        try:
            open_tab(page, url, "Text to image")  # the page loaded again, from the new app
            page.get_by_role("button", name="Your recent runs").click()
            picker = page.locator("#txt2img-history-pick input")
            expect(picker).to_have_value(re.compile(r"· (running|done) · seed \d+ · “a fox left going”"))
            expect(picker).to_have_value(re.compile(r"· done · seed \d+ · “a fox left going”"), timeout=30_000)
            expect(page.locator("#txt2img-history img").first).to_be_visible()
            picker.click()
            expect(page.get_by_role("option", name=re.compile("“a finished fox”"))).to_be_visible()
        finally:
            app.close()
            pool.close()
            browser.close()


def serve(settings: Settings, runs: RunBook) -> tuple[object, object]:
    app, pool = create_app(settings, runs=runs)
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    return app, pool
