"""Bad uploads get the app's own message, naming the field, through gradio_client and raw HTTP; nothing goes
to ComfyUI, and no file the caller did not upload is opened (an audit hook sees every ``open`` in the process).

One test double and one app for the module (``module_app``); each test calls it as a new session.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from playwright.sync_api import Page, expect

from comfyui_gradio.web.runs import owner_folder
from comfyui_gradio.web.uploads import NOT_UPLOADED
from tests.fake_comfyui import FakeComfyUI
from tests.harness import RunningApp, only_image, picture, wait_for
from tests.test_browser import browser, gallery_image, open_tab, page  # noqa: F401

NOT_AN_IMAGE = "Picture: this file is not an image (PNG, JPEG, WebP, ...) that can be read; choose an image file"
TOO_BIG = "Picture: the image has more than 179 megapixels; at most 16 megapixels are accepted. Use a smaller image."
REFUSED = f"Picture: {NOT_UPLOADED}"
META = {"_type": "gradio.FileData"}


@pytest.fixture()
def fake(shared_fake: FakeComfyUI) -> FakeComfyUI:
    return shared_fake


@pytest.fixture()
def running(shared_running: RunningApp) -> RunningApp:
    return shared_running


class Opens:
    """The paths opened in this process while ``watching`` (Python's ``open`` audit event: ``open()``,
    ``os.open``, and so Pillow's and shutil's reads)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.watching = False
        self._lock = threading.Lock()
        sys.addaudithook(self._hook)  # cannot be removed; idle while not watching

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            with self._lock:
                self.paths.append(os.path.realpath(os.fsdecode(args[0])))

    def of(self, path: str | Path) -> list[str]:
        return [p for p in self.paths if p == os.path.realpath(path)]


@pytest.fixture(scope="module")
def opens() -> Opens:
    return Opens()


@pytest.fixture()
def watched(opens: Opens) -> Iterator[Opens]:
    opens.paths.clear()
    opens.watching = True
    yield opens
    opens.watching = False


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A text file named .png; a 20000x20000 PNG of about 50 kB (a decompression bomb); and a sentinel: a
    real picture outside Gradio's cache that no caller uploaded."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("a shopping list, not a picture")
    bomb = folder / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    sentinel = folder / "sentinel.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(sentinel)
    return {"text": text, "bomb": bomb, "sentinel": sentinel}


def test_the_open_detector_sees_pillow_read_a_file(bad_files: dict[str, Path], watched: Opens) -> None:
    Image.open(bad_files["sentinel"]).close()
    assert watched.of(bad_files["sentinel"]) == [os.path.realpath(bad_files["sentinel"])]


def nothing_sent(fake: FakeComfyUI) -> bool:
    return fake.uploads == [] and not {("POST", "/upload/image"), ("POST", "/prompt")} & set(fake.requests)


def client_error(running: RunningApp, image: Any) -> tuple[str | None, str]:
    with pytest.raises(AppError) as caught:
        running.client.predict(image=image, api_name="/invert")
    return caught.value.title, caught.value.message


def raw_upload(running: RunningApp, path: Path) -> str:
    answer = httpx.post(running.url + "gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    assert answer.status_code == 200, answer.text
    return answer.json()[0]


def raw_call(running: RunningApp, image: Any) -> tuple[str, Any]:
    """``POST /gradio_api/call/invert`` then its SSE stream: (the last event's name, its data)."""
    event = httpx.post(running.url + "gradio_api/call/invert", json={"data": [image, 1]}).json()["event_id"]
    stream = httpx.get(running.url + f"gradio_api/call/invert/{event}", timeout=60).text
    name, data = stream.strip().split("\n\n")[-1].split("\n", 1)
    return name.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def refused(message: str) -> dict[str, Any]:
    return {"error": message, "duration": 10, "visible": True, "title": "Could not start"}


# ---- through gradio_client --------------------------------------------------------------------

def test_a_text_file_named_png_is_not_an_image(running: RunningApp, fake: FakeComfyUI,
                                               bad_files: dict[str, Path]) -> None:
    assert client_error(running, handle_file(str(bad_files["text"]))) == ("Could not start", NOT_AN_IMAGE)
    assert nothing_sent(fake)


def test_a_decompression_bomb_is_too_big(running: RunningApp, fake: FakeComfyUI,
                                         bad_files: dict[str, Path]) -> None:
    assert client_error(running, handle_file(str(bad_files["bomb"]))) == ("Could not start", TOO_BIG)
    assert nothing_sent(fake)


@pytest.mark.parametrize("form", ["plain string", "FileData without meta"])
def test_a_server_path_is_refused_unread_like_a_missing_file(running: RunningApp, fake: FakeComfyUI,
                                                             bad_files: dict[str, Path], watched: Opens,
                                                             form: str) -> None:
    def given(path: str) -> Any:
        return path if form == "plain string" else {"path": path}  # gradio_client uploads only meta'd ones

    for path in (str(bad_files["sentinel"]), "/etc/passwd", "/nowhere/missing.png"):
        assert client_error(running, given(path)) == ("Could not start", REFUSED), path
    assert watched.of(bad_files["sentinel"]) == [] and watched.of("/etc/passwd") == []
    assert nothing_sent(fake)


def test_an_earlier_input_of_the_caller_can_be_given_again(running: RunningApp, tmp_path: Path) -> None:
    """As "Run again" does: it puts a run's input copy back in the form, Gradio caches it under its name,
    and the page sends that cached path; the caller's own copy is used."""
    running.client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))), api_name="/invert")
    [copy] = (running.settings.output_dir / owner_folder(running.client.session_hash) / "inputs").iterdir()
    _, gallery, _ = running.client.predict(image={"path": f"/tmp/gradio/0123/{copy.name}"}, api_name="/invert")
    assert only_image(gallery).getpixel((3, 3)) == (245, 55, 225)
    other = running.with_new_client()  # another caller naming that copy gets nothing
    assert client_error(other, {"path": str(copy)}) == ("Could not start", REFUSED)


# ---- through raw HTTP -------------------------------------------------------------------------

def test_raw_http_bad_uploads_get_the_same_messages(running: RunningApp, fake: FakeComfyUI,
                                                    bad_files: dict[str, Path], watched: Opens) -> None:
    for name, message in (("text", NOT_AN_IMAGE), ("bomb", TOO_BIG)):
        upload = {"path": raw_upload(running, bad_files[name]), "orig_name": bad_files[name].name, "meta": META}
        assert raw_call(running, upload) == ("error", refused(message)), name
    for given in (str(bad_files["sentinel"]), {"path": str(bad_files["sentinel"])}, "/etc/passwd",
                  {"path": "/nowhere/missing.png", "meta": {}}, {"name": "not a file"}, 42):
        assert raw_call(running, given) == ("error", refused(REFUSED)), given
    assert watched.of(bad_files["sentinel"]) == [] and watched.of("/etc/passwd") == []
    assert nothing_sent(fake)


def test_another_sessions_file_in_the_cache_is_refused_unread(running: RunningApp, fake: FakeComfyUI,
                                                              tmp_path: Path, watched: Opens) -> None:
    """Another session's result lies in Gradio's cache (its path is in that session's answer), but this
    caller did not upload it."""
    upload = {"path": raw_upload(running, Path(picture(tmp_path, (9, 9, 9)))), "meta": META}
    event, (_, gallery, _) = raw_call(running, upload)
    theirs = gallery[0]["image"]["path"]
    assert event == "complete" and Path(theirs).exists()
    fake.uploads.clear(), fake.requests.clear(), fake.prompts.clear()
    watched.paths.clear()
    assert raw_call(running, {"path": theirs, "meta": META}) == ("error", refused(REFUSED))
    assert client_error(running, {"path": theirs}) == ("Could not start", REFUSED)
    assert watched.of(theirs) == []
    assert nothing_sent(fake)


def test_a_filedata_outside_gradios_upload_folder_gets_our_message_unread(
        running: RunningApp, fake: FakeComfyUI, bad_files: dict[str, Path], watched: Opens) -> None:
    """Gradio refuses a FileData (with ``meta``) outside its upload folder before app code runs, with
    ``{"error": null}``; the app's UploadGuard hands it to the app as plain JSON, which names the field."""
    for path in (str(bad_files["sentinel"]), "/etc/passwd"):
        assert raw_call(running, {"path": path, "meta": META}) == ("error", refused(REFUSED)), path
        answer = httpx.post(running.url + "gradio_api/call/v2/invert", json={"image": {"path": path, "meta": META}})
        stream = httpx.get(running.url + f"gradio_api/call/invert/{answer.json()['event_id']}", timeout=60).text
        assert json.dumps(REFUSED)[1:-1] in stream, stream
    assert watched.of(bad_files["sentinel"]) == [] and watched.of("/etc/passwd") == []
    assert nothing_sent(fake)


def test_the_guard_leaves_other_calls_and_stored_uploads_alone(running: RunningApp, fake: FakeComfyUI,
                                                               tmp_path: Path) -> None:
    """A stored upload keeps its ``meta`` (Gradio moves it as usual) and the run inverts it; a FileData given
    to another function's non-upload input is still Gradio's to refuse."""
    upload = {"path": raw_upload(running, Path(picture(tmp_path, (200, 100, 0)))), "meta": META}
    event, (status, gallery, _) = raw_call(running, upload)
    assert event == "complete" and Image.open(gallery[0]["image"]["path"]).convert("RGB").getpixel((3, 3)) == (55, 155, 255)
    config = httpx.get(running.url + "config").json()
    widget = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "invert-image")
    [copy] = [d["id"] for d in config["dependencies"] if d["inputs"] == [widget]]
    joined = httpx.post(running.url + "gradio_api/queue/join", json={
        "data": [{"path": "/etc/passwd", "meta": META}], "fn_index": copy, "session_hash": "s2", "trigger_id": None})
    stream = httpx.get(running.url + "gradio_api/queue/data", params={"session_hash": "s2"}, timeout=30).text
    assert joined.status_code == 200 and '"success":false' in stream and "not uploaded" not in stream


def test_the_widgets_page_only_event_sent_to_the_server_opens_nothing(running: RunningApp, fake: FakeComfyUI,
                                                                      bad_files: dict[str, Path],
                                                                      watched: Opens) -> None:
    """The picture widget's copy into the endpoint input runs in the page, but its fn_index can be sent to
    the queue: Gradio's gr.Image must not open the path given there."""
    config = httpx.get(running.url + "config").json()
    widget = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "invert-image")
    [copy] = [d["id"] for d in config["dependencies"] if d["inputs"] == [widget]]
    joined = httpx.post(running.url + "gradio_api/queue/join", json={
        "data": [{"path": str(bad_files["sentinel"])}], "fn_index": copy, "session_hash": "s1", "trigger_id": None})
    assert joined.status_code == 200, joined.text
    stream = httpx.get(running.url + "gradio_api/queue/data", params={"session_hash": "s1"}, timeout=30).text
    assert '"msg":"process_completed"' in stream and '"success":false' in stream
    assert watched.of(bad_files["sentinel"]) == []
    assert nothing_sent(fake)


# ---- good uploads -----------------------------------------------------------------------------

def test_good_uploads_are_inverted_through_both(running: RunningApp, fake: FakeComfyUI, tmp_path: Path) -> None:
    _, gallery, _ = running.client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))), api_name="/invert")
    assert only_image(gallery).getpixel((3, 3)) == (245, 55, 225)
    upload = {"path": raw_upload(running, Path(picture(tmp_path, (200, 100, 0)))), "meta": META}
    event, (status, gallery, _) = raw_call(running, upload)
    assert event == "complete" and status.startswith("✅ Done in ")
    image = Image.open(gallery[0]["image"]["path"]).convert("RGB")
    assert image.getpixel((3, 3)) == (55, 155, 255)


# ---- on the page --------------------------------------------------------------------------------

@pytest.mark.browser
def test_the_page_shows_the_message_for_a_file_that_is_not_an_image(page: Page, running: RunningApp,
                                                                    fake: FakeComfyUI,
                                                                    bad_files: dict[str, Path]) -> None:
    open_tab(page, running.url, "Invert colors")
    page.locator("#invert-image input[type=file]").set_input_files(bad_files["text"])
    expect(page.locator("#invert-image img")).to_have_attribute("src", re.compile(r"/notes\.png$"))  # uploaded
    page.locator("#invert-generate").click()
    expect(page.get_by_text(NOT_AN_IMAGE)).to_be_visible()
    assert nothing_sent(fake)


@pytest.mark.browser
def test_run_again_puts_the_picture_back_and_it_runs(page: Page, running: RunningApp, fake: FakeComfyUI,
                                                     tmp_path: Path) -> None:
    open_tab(page, running.url, "Invert colors")
    page.locator("#invert-image input[type=file]").set_input_files(picture(tmp_path, (40, 80, 120), (32, 32)))
    expect(page.locator("#invert-image img")).to_be_visible()
    page.locator("#invert-generate").click()
    expect(page.locator("#invert-status")).to_contain_text("✅ Done in ")
    page.locator("#invert-image input[type=file]").set_input_files(picture(tmp_path, (0, 0, 0), (32, 32)))

    page.get_by_role("button", name="Your recent runs").click()
    expect(page.locator("#invert-history-pick input")).to_have_value(re.compile(r"· done"))
    page.locator("#invert-again").click()
    the_copy = re.compile(r"/gradio_api/file=.*/[0-9a-f]{24}\.png$")  # the run's input copy, cached
    expect(page.locator("#invert-image img")).to_have_attribute("src", the_copy)
    page.locator("#invert-generate").click()
    wait_for(lambda: len(fake.prompts) == 2, timeout=15)
    expect(page.locator("#invert-status")).to_contain_text("✅ Done in ")
    assert gallery_image(page, "invert").getpixel((3, 3)) == (215, 175, 135)
