"""`dsrepo serve` in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The server is the real command, in its own process, on a free loopback port, over a project
holding the bundled samples, with two revisions that differ by a label rename, on SQLite and
PostgreSQL. A session of clicks: list -> item, task toggles, a filter, the two-revision view,
a malicious filter, a label that is a script tag, the stats page. Then the database must be
exactly as before: the SQLite file byte for byte, every row of every table on PostgreSQL.
Screenshots go to test-artifacts/web/<database>/ (or $DSREPO_TEST_ARTIFACTS/web/<database>/).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from helpers import DATA
from helpers import database_contents, load_json
from repo.history import commit, log
from repo.importing import import_dataset
from repo.labels import rename_label
from vizdata import instances_with_label

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PANOPTIC = DATA / "panopticapi_sample" / "coco"
DATUMARO = DATA / "datumaro_coco" / "coco"
HOSTILE = "<script>alert(1)</script>"
PHOTO = "000000142238.jpg"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def artifacts(backend, capsys) -> Path:
    folder = Path(os.environ.get("DSREPO_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "web" / backend.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with capsys.disabled():
        print(f"\nscreenshots of the web session ({backend.name}): {folder}")
    return folder


@pytest.fixture
def served(backend, tmp_path) -> Iterator[tuple[object, str, tuple[object, ...]]]:
    """A project with the samples and two revisions, the URL of `dsrepo serve` over it, and
    the database's state before the server started."""
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    import_dataset(project, "coco", DATUMARO, name="datumaro")
    import_dataset(project, "coco", instances_with_label(tmp_path / "hostile", HOSTILE), name="hostile")
    commit(project, "samples")
    rename_label(project, "person", "human")
    commit(project, "person -> human")
    project.close()
    before = _database_state(project)
    log_file = tmp_path / "serve.log"
    with open(log_file, "w") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "repo.cli", "serve", "-q", "-p", str(project.directory), "--port", "0"],
            stdout=subprocess.PIPE, stderr=errors, text=True, cwd=tmp_path,
        )
    try:
        url = _announced_url(server, log_file)
        yield project, url, before
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        errors_logged = log_file.read_text()
        assert "Traceback" not in errors_logged, errors_logged


def _announced_url(server: subprocess.Popen, log_file: Path) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(server.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    found = re.search(r"http://127\.0\.0\.1:\d+/", lines[0]) if lines else None
    assert found, f"dsrepo serve did not announce its address: {lines} {log_file.read_text()}"
    return found.group(0)


def _database_state(project) -> tuple[object, ...]:
    """What 'unchanged' compares: the SQLite file's bytes too, where there is a file."""
    database = project.directory / "project.db"
    digest = hashlib.sha256(database.read_bytes()).hexdigest() if database.exists() else None
    return digest, database_contents(project)


def _wait_for_pictures(page: Page) -> None:
    for picture in page.locator("img").all():
        expect(picture).to_have_js_property("complete", True)
    widths = page.locator("img").evaluate_all("pictures => pictures.map(p => p.naturalWidth)")
    assert widths and all(width > 0 for width in widths), widths


def _shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_session_of_clicks_changes_nothing(backend, served, artifacts, tmp_path):
    project, url, before = served
    revisions = log(project)
    instances = load_json(PANOPTIC / "annotations" / "instances_val2017.json")
    panoptic = load_json(PANOPTIC / "annotations" / "panoptic_val2017.json")
    on_photo = [a for a in instances["annotations"] if a["image_id"] == 142238]
    segments = next(r for r in panoptic["annotations"] if r["image_id"] == 142238)["segments_info"]
    persons = sum(a["category_id"] == 1 for a in on_photo) + sum(s["category_id"] == 1 for s in segments)
    images = sorted(
        [i["file_name"] for i in instances["images"]] + ["a.jpg", "b.jpg", "hostile.jpg"]
    )

    dialogs: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

            # The list shows every image, with its thumbnail.
            page.goto(url)
            _wait_for_pictures(page)
            assert sorted(page.locator(".card .name").all_inner_texts()) == images
            expect(page.locator(".summary")).to_contain_text(f"{len(images)} images")
            _shot(page, artifacts, "01-list")

            # From the list to an item: the overlay and one table row per annotation.
            page.locator(".card a", has_text=PHOTO).click()
            expect(page.locator("h1")).to_contain_text(PHOTO)
            _wait_for_pictures(page)
            expect(page.locator("table.annotations tbody tr")).to_have_count(len(on_photo) + len(segments))
            _shot(page, artifacts, "02-item")
            page.get_by_label("panoptic").uncheck()
            page.get_by_role("button", name="Apply").click()
            expect(page.locator("table.annotations tbody tr")).to_have_count(len(on_photo))
            _wait_for_pictures(page)
            _shot(page, artifacts, "03-item-instances-only")

            # A filter, as export --where takes it.
            page.get_by_role("link", name="← items").click()
            page.locator("#where").fill("label = 'horse'")
            page.get_by_role("button", name="Filter").click()
            expect(page.locator(".card .name")).to_have_text(["000000439180.jpg"])
            expect(page.locator(".summary")).to_contain_text("1 image with an annotation where label = 'horse'")
            _wait_for_pictures(page)
            _shot(page, artifacts, "04-filter")

            # Two revisions side by side: the first commit, and the rename after it.
            page.locator(".card a", has_text="000000439180.jpg").click()
            expect(page.locator("h1")).to_contain_text("000000439180.jpg")
            page.goto(f"{url}item?subset=val2017&file_name={PHOTO}")
            page.locator("header select[name=rev]").select_option(revisions[1].short)
            page.get_by_role("button", name="Show").click()
            page.locator("select[name=vs]").select_option(revisions[0].short)
            page.get_by_role("button", name="Apply").click()
            sides = page.locator("section.side")
            expect(sides).to_have_count(2)
            expect(sides.nth(0).locator("h2")).to_contain_text(f"revision {revisions[1].short}")
            old_labels = sides.nth(0).locator("tbody td:nth-child(4)").all_inner_texts()
            new_labels = sides.nth(1).locator("tbody td:nth-child(4)").all_inner_texts()
            assert old_labels.count("person") == new_labels.count("human") == persons
            assert "human" not in old_labels and "person" not in new_labels
            expect(page.locator("tr.changed")).to_have_count(2 * persons)
            _wait_for_pictures(page)
            _shot(page, artifacts, "05-two-revisions")

            # A malicious filter is a message on the page; the list is whole afterwards.
            page.goto(url)
            page.locator("#where").fill("1=1; DROP TABLE items")
            page.get_by_role("button", name="Filter").click()
            expect(page.get_by_role("alert")).to_contain_text("--where:")
            _shot(page, artifacts, "06-malicious-filter")
            page.goto(url)
            expect(page.locator(".card")).to_have_count(len(images))

            # A label that is a script tag is shown as text, and runs nowhere.
            facet = page.locator("section[data-facet=label] a", has_text="alert(1)")
            expect(facet).to_have_text(HOSTILE)
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()
            facet.click()
            page.locator(".card a", has_text="hostile.jpg").click()
            expect(page.locator("table.annotations tbody td:nth-child(4)")).to_have_text([HOSTILE])
            expect(page.locator(".note")).to_contain_text("drawn on a blank canvas")
            _wait_for_pictures(page)
            _shot(page, artifacts, "07-hostile-label")

            # The stats page draws the figures of stats --plot.
            page.get_by_role("link", name="Stats").click()
            _wait_for_pictures(page)
            expect(page.locator("img.figures")).to_be_visible()
            _shot(page, artifacts, "08-stats")
        finally:
            browser.close()
    assert dialogs == []
    # Only the malicious filter's page, answered with status 400; no Content-Security-Policy violation.
    assert console_errors == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
    assert _database_state(project) == before
    assert sorted(path.name for path in artifacts.glob("*.png")) == [
        "01-list.png", "02-item.png", "03-item-instances-only.png", "04-filter.png", "05-two-revisions.png",
        "06-malicious-filter.png", "07-hostile-label.png", "08-stats.png",
    ]
