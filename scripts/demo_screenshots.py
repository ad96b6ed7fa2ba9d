"""Screenshots of the web demo serving a weights folder, each tab run on an input, in headless Chromium.

    python scripts/demo_screenshots.py --out docs/demo     # SR + label -> photo on the bundled examples

Needs Playwright and a system Chromium (as tests/test_app_browser.py). Faces are never bundled (see
weights/examples/LICENSE.md), so the attribute tab is left out.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADED = "(sel) => { const i = document.querySelector(sel); return !!i && i.complete && i.naturalWidth > 0; }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_tab(page, tab: str, task: str, file: Path, shot: Path) -> str:
    page.get_by_role("tab", name=tab).click()
    page.locator(f"#{task}-input input[type=file]").set_input_files(str(file))
    page.wait_for_function(LOADED, arg=f"#{task}-input img")
    page.click(f"#{task}-run")
    page.wait_for_function(LOADED, arg=f"#{task}-output img", timeout=300_000)
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('ran on')", arg=f"#{task}-status")
    page.screenshot(path=str(shot), full_page=True)
    return page.inner_text(f"#{task}-status").strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--out", required=True, help="folder for the PNG screenshots")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium binary on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from app import examples_folder, make_demo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = examples_folder(args.weights) or ROOT / "weights" / "examples"
    demo = make_demo(args.weights, args.device)
    demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(examples)])
    tabs = [("Super-resolution", "sr", examples / "sr_scene.png"),
            ("Label → photo", "spade", examples / "facade_labels.png")]
    from restore.hub.pipelines import published

    have = published(args.weights)
    tabs = [t for t in tabs if t[1] in have]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(demo.local_url)
            for tab, task, file in tabs:
                status = _run_tab(page, tab, task, file, out / f"demo_{task}.png")
                print(f"{out / f'demo_{task}.png'}: {' '.join(status.split())}")
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
