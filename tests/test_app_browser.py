"""The web demo in a real headless Chromium (Playwright): every tab takes an upload, runs, and shows its result.

Needs the ``playwright`` wheel and a system Chromium (``apt-get install chromium``; ``scripts/install.sh dev`` installs
both when it can). Playwright's own browser download is not used: the test launches the system binary.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.test_app import EXAMPLES, launch, photo, png, write_tiny_models

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"),
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]

LOADED = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture
def page(tmp_path):
    demo, url = launch(write_tiny_models(tmp_path / "weights"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(20_000)
            page.goto(url)
            yield page
        finally:
            browser.close()
            demo.close()


def _upload_and_run(page, tab: str, task: str, file: str, shot: Path) -> None:
    page.get_by_role("tab", name=tab).click()
    page.locator(f"#{task}-input input[type=file]").set_input_files(file)
    page.wait_for_function(LOADED, arg=f"#{task}-input img")  # the upload's preview is shown
    page.click(f"#{task}-run")
    page.wait_for_function(LOADED, arg=f"#{task}-output img")
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('ran on')", arg=f"#{task}-status")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_every_tab_in_a_real_browser(page, tmp_path):
    start = time.perf_counter()
    _upload_and_run(page, "Super-resolution", "sr", str(EXAMPLES / "sr_scene.png"), tmp_path / "sr.png")
    assert "128×128 → 512×512" in page.inner_text("#sr-status")
    page.wait_for_function("() => document.querySelector('#sr-file').innerText.includes('sr_scene_x4')")  # download

    _upload_and_run(page, "Label → photo", "spade", str(EXAMPLES / "facade_labels.png"), tmp_path / "spade.png")
    assert "window" in page.inner_text("#spade-legend") and "12 classes" in page.inner_text("#spade-status")

    face = png(tmp_path, "face.png", rgb=photo(160, 128))
    _upload_and_run(page, "Attribute transfer", "stargan", face, tmp_path / "stargan.png")
    assert "cpu" in page.inner_text("#stargan-status")

    # a damaged upload: a friendly message in the page, and the app still works afterwards
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    page.get_by_role("tab", name="Super-resolution").click()
    page.locator("#sr-input input[type=file]").set_input_files(str(bad))
    page.click("#sr-run")
    page.get_by_text("Could not read broken.png as an image").first.wait_for()
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    assert time.perf_counter() - start < 60
