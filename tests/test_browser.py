"""The app in a real Chromium (Playwright), against the ComfyUI test double: what a person sees and clicks.

Opt in: ``./test.sh -m browser``. Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``);
Playwright's own browser downloads are not used. Elements are found by the app's ``elem_id``s
(``#<tab>-<parameter>``, ``#<tab>-generate``, ``#<tab>-status``, ...).

``UPDATE_SCREENSHOTS=1 ./test.sh -m browser`` rewrites the pictures in ``docs/screenshots/``; otherwise they go to
the test's temporary folder, so a test run leaves the work tree clean. Install ``fonts-noto-color-emoji`` first,
or the status line's emoji come out as empty boxes.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.paths import ROOT, WORKFLOWS
from tests.fake_comfyui import FakeComfyUI
from tests.harness import RunningApp, fake_history_status, wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
TIMEOUT_MS = 15_000
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHECKPOINT = "tiny-random-sd15.safetensors"

# Records every text the element shows, so a status that lasts a fraction of a second is not missed by polling.
RECORD_TEXTS = """selector => {
    const element = document.querySelector(selector);
    window.seenTexts = [element.innerText];
    new MutationObserver(() => window.seenTexts.push(element.innerText))
        .observe(element, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        # launch() gives Chromium a fresh temporary profile and deletes it on close.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def open_tab(page: Page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name=title).click()
    expect(page.get_by_role("tab", name=title)).to_have_attribute("aria-selected", "true")


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / name, full_page=True)
    return folder / name


def gallery_image(page: Page, tab: str) -> Image.Image:
    """The first picture shown in the tab's gallery, as the browser downloaded it."""
    image = page.locator(f"#{tab}-gallery img").first
    expect(image).to_be_visible()
    expect(image).to_have_js_property("complete", True)
    response = page.request.get(image.get_attribute("src"))
    assert response.ok, response.status
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def test_page_has_a_tab_per_workflow_and_switching_shows_its_form(page: Page, running: RunningApp) -> None:
    page.goto(running.url)
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["Text to image", "Image to image", "Invert colors", "Blur", "Invert and blur"])
    expect(page.locator("#server-banner")).not_to_contain_text("not reachable")

    page.get_by_role("tab", name="Invert colors").click()
    expect(page.get_by_text("Turns every colour into its opposite.")).to_be_visible()
    expect(page.locator("#invert-image")).to_be_visible()
    expect(page.locator("#txt2img-prompt")).not_to_be_visible()

    page.get_by_role("tab", name="Text to image").click()
    expect(page.locator("#txt2img-prompt textarea")).to_be_visible()
    expect(page.locator("#invert-image")).not_to_be_visible()

    page.get_by_role("tab", name="Invert and blur").click()  # its form chosen in App Mode, with help texts
    expect(page.locator("#invert_and_blur-image")).to_be_visible()
    expect(page.locator("#invert_and_blur-blur_radius")).to_contain_text("How far the blur reaches, in pixels")
    expect(page.locator("#invert_and_blur-sigma")).to_have_count(0)  # promoted, but not chosen for the app


def test_txt2img_shows_progress_then_the_picture(page: Page, running: RunningApp, fake: FakeComfyUI,
                                                 tmp_path: Path) -> None:
    fake.step_delay = 0.4  # 8 steps: ~3 s, long enough for several status lines (two a second, from 1 s in)
    open_tab(page, running.url, "Text to image")
    page.locator("#txt2img-prompt textarea").fill("a red fox in the snow")
    page.locator("#txt2img-seed-randomize input").uncheck()
    page.locator("#txt2img-seed input").fill("1234")
    page.locator("#txt2img-steps input[type=number]").fill("8")
    page.locator("#txt2img-steps input[type=number]").press("Enter")
    page.get_by_role("button", name="Advanced").click()  # the one on the visible tab
    page.locator("#txt2img-checkpoint input").click()
    page.get_by_role("option", name=CHECKPOINT).click()
    expect(page.locator("#txt2img-checkpoint input")).to_have_value(CHECKPOINT)

    page.evaluate(RECORD_TEXTS, "#txt2img-status")
    page.locator("#txt2img-generate").click()
    expect(page.locator("#txt2img-gallery")).to_contain_text("preview")  # a live preview, while it samples
    status = page.locator("#txt2img-status")
    expect(status).to_contain_text(re.compile(r"✅ Done in \d+\.\d s · seed 1234"))
    seen = page.evaluate("window.seenTexts")
    steps = [int(m.group(1)) for text in seen for m in [re.search(r"KSampler: step (\d+) of 8", text)] if m]
    assert len(set(steps)) >= 3 and steps == sorted(steps), seen  # the sampler's steps, as they happened

    result = gallery_image(page, "txt2img")
    assert result.size == (512, 512)
    expect(page.locator("#txt2img-gallery img")).to_have_count(1)
    sent = fake.prompts[-1]["prompt"]
    assert sent["6"]["inputs"]["text"] == "a red fox in the snow"
    assert (sent["3"]["inputs"]["seed"], sent["3"]["inputs"]["steps"]) == (1234, 8)
    assert sent["4"]["inputs"]["ckpt_name"] == CHECKPOINT
    screenshot(page, "txt2img-result.png", tmp_path)


def test_invert_uploads_a_picture_and_shows_the_inverted_one(page: Page, running: RunningApp,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "shapes.png"
    picture = Image.new("RGB", (320, 200), (240, 200, 40))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((30, 30, 170, 170), fill=(20, 60, 200))
    draw.rectangle((190, 50, 290, 150), fill=(200, 30, 30))
    picture.save(source)

    open_tab(page, running.url, "Invert colors")
    page.locator("#invert-image input[type=file]").set_input_files(source)
    expect(page.locator("#invert-image img")).to_be_visible()
    page.locator("#invert-generate").click()
    expect(page.locator("#invert-status")).to_contain_text(re.compile(r"✅ Done in \d+\.\d s"))

    result = gallery_image(page, "invert")
    assert result.size == (320, 200)
    assert result.getpixel((5, 5)) == (15, 55, 215)
    assert result.getpixel((100, 100)) == (235, 195, 55)
    assert result.getpixel((240, 100)) == (55, 225, 225)
    screenshot(page, "invert.png", tmp_path)


def test_cancel_stops_the_run_on_comfyui(page: Page, running: RunningApp, fake: FakeComfyUI) -> None:
    fake.step_delay = 0.5
    open_tab(page, running.url, "Text to image")
    page.locator("#txt2img-steps input[type=number]").fill("30")
    page.locator("#txt2img-steps input[type=number]").press("Enter")
    page.locator("#txt2img-generate").click()
    status = page.locator("#txt2img-status")
    expect(status).to_contain_text(re.compile(r"KSampler: step \d+ of 30"))

    page.locator("#txt2img-cancel").click()
    # Either the Cancel button's "⏹️ Cancelled." or the run's own "⏹️ Cancelled by you at KSampler; ...",
    # whichever reaches the page last.
    expect(status).to_contain_text("⏹️ Cancelled")
    wait_for(lambda: ("POST", "/interrupt") in fake.requests)
    wait_for(lambda: fake_history_status(fake, fake.prompts[0]["prompt_id"]) == "error")  # stopped, not finished
    expect(page.locator("#txt2img-gallery [role=progressbar]")).to_have_count(0)

    fake.step_delay = 0.0  # the next run is not held back by the interrupted one
    page.locator("#txt2img-steps input[type=number]").fill("2")
    page.locator("#txt2img-steps input[type=number]").press("Enter")
    page.locator("#txt2img-generate").click()
    expect(status).to_contain_text("✅ Done in ")
    assert len(fake.prompts) == 2 and fake.prompts[-1]["prompt"]["3"]["inputs"]["steps"] == 2


def test_broken_schema_shows_its_problems_in_a_warning_tab(page: Page, fake: FakeComfyUI, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name in ("invert.json", "invert.yaml", "txt2img.json"):
        shutil.copy(WORKFLOWS / name, folder / name)
    (folder / "txt2img.yaml").write_text("inputs:\n  steps: {node: '3', input: stepz}\n")
    monkeypatch.chdir(tmp_path)  # a relative folder, as in `./run.sh --workflows workflows`
    app = RunningApp(fake.url, Path("workflows"), tmp_path)
    try:
        page.goto(app.url)
        expect(page.get_by_role("tab")).to_have_text(["Invert colors", "⚠️ txt2img"])
        page.get_by_role("tab", name="⚠️ txt2img").click()
        problems = page.locator("#txt2img-error")
        expect(problems).to_contain_text("This workflow cannot be used yet")
        expect(problems).to_contain_text("workflows/txt2img.yaml: inputs.steps: node '3' has no input 'stepz' "
                                         "(its inputs: seed, steps, cfg, sampler_name, scheduler, denoise)")
        expect(page.locator("#txt2img-generate")).to_have_count(0)
        screenshot(page, "error-tab.png", tmp_path)
    finally:
        app.close()


def test_a_run_survives_a_reload_and_can_be_run_again(page: Page, running: RunningApp, fake: FakeComfyUI,
                                                      tmp_path: Path) -> None:
    fake.step_delay = 0.3
    open_tab(page, running.url, "Text to image")
    page.locator("#txt2img-prompt textarea").fill("a lighthouse at dusk")
    page.locator("#txt2img-steps input[type=number]").fill("12")
    page.locator("#txt2img-steps input[type=number]").press("Enter")
    page.get_by_role("button", name="Advanced").click()
    page.locator("#txt2img-checkpoint input").click()
    page.get_by_role("option", name=CHECKPOINT).click()
    page.locator("#txt2img-generate").click()
    expect(page.locator("#txt2img-status")).to_contain_text(re.compile(r"KSampler: step \d+ of 12"))

    page.reload()  # the page goes away mid-run; the run goes on
    open_tab(page, running.url, "Text to image")
    page.get_by_role("button", name="Your recent runs").click()
    picker = page.locator("#txt2img-history-pick input")
    expect(picker).to_have_value(re.compile(r"· running · seed \d+ · “a lighthouse at dusk”"))
    expect(picker).to_have_value(re.compile(r"· done · seed \d+"), timeout=20_000)  # refreshed while it runs
    assert ("POST", "/interrupt") not in fake.requests
    seed = int(re.search(r"seed (\d+)", picker.input_value()).group(1))
    expect(page.locator("#txt2img-history img").first).to_be_visible()

    page.locator("#txt2img-prompt textarea").fill("something else")
    page.locator("#txt2img-again").click()
    expect(page.locator("#txt2img-prompt textarea")).to_have_value("a lighthouse at dusk")
    expect(page.locator("#txt2img-seed input")).to_have_value(str(seed))
    expect(page.locator("#txt2img-seed-randomize input")).not_to_be_checked()
    screenshot(page, "recent-runs.png", tmp_path)
