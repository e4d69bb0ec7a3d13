"""The README's pictures, from the bundled real COCO sample:  python scripts/screenshots.py [OUT]

Writes into OUT (default: docs/):
  render-overlay.jpg   `dsrepo render` of image 142238 (instances and panoptic segments drawn)
  web-item.jpg         the web app's item page of the same image, in a real headless Chromium

The project is a throw-away SQLite one in a temporary folder, holding
tests/data/panopticapi_sample/coco (COCO val2017 images and annotations; see that folder's
README for origin and licence). The app is served in this process on a free loopback port and
photographed with Playwright driving Debian's /usr/bin/chromium (CHROMIUM= to use another).
Needs the viz extra and Playwright (both in `pip install -e '.[test,viz]'`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from repo import Project, import_dataset, render_item
from repo.web import trusted_hosts
from repo.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "panopticapi_sample" / "coco"
IMAGE = "000000142238.jpg"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
QUALITY = 90  # JPEG, colour kept at full resolution: a third of the PNG's size, close enough for a README


def _save_jpeg(png: Path, out: Path) -> None:
    with Image.open(png) as picture:
        picture.convert("RGB").save(out, quality=QUALITY, subsampling=0)


def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        project = Project.create(work / "project")
        import_dataset(project, "coco", SAMPLE, name="coco")
        overlay = work / "overlay.png"
        render_item(project, IMAGE, overlay, tasks=["instances", "panoptic"])
        _save_jpeg(overlay, out / "render-overlay.jpg")

        server = make_server("127.0.0.1", 0, create_app(project, trusted_hosts("127.0.0.1", False)), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            page_png = work / "item.png"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    str(work / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1280, "height": 900},
                )
                try:
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{server.server_port}/item?subset=val2017&file_name={IMAGE}")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(page_png), full_page=False)
                finally:
                    browser.close()
            _save_jpeg(page_png, out / "web-item.jpg")
        finally:
            server.shutdown()
            thread.join()
        project.close()
    return [out / "render-overlay.jpg", out / "web-item.jpg"]


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"):
        print(f"wrote {path}")
