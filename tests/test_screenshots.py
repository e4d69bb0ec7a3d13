"""scripts/screenshots.py makes the README's two pictures from the bundled sample: the overlay
`render` draws (compared with render_item's lossless output, JPEG aside) and the item page as
Chromium shows it."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
from PIL import Image

from repo import Project, import_dataset, render_item

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshots.py"
SAMPLE = Path(__file__).parent / "data" / "panopticapi_sample" / "coco"


def test_screenshots_script(tmp_path):
    written = runpy.run_path(str(SCRIPT))["main"](tmp_path / "docs")
    assert [path.name for path in written] == ["render-overlay.jpg", "web-item.jpg"]

    project = Project.create(tmp_path / "project")
    import_dataset(project, "coco", SAMPLE, name="coco")
    render_item(project, "000000142238.jpg", tmp_path / "lossless.png", tasks=["instances", "panoptic"])
    expected = np.asarray(Image.open(tmp_path / "lossless.png").convert("RGB"), dtype=float)
    with Image.open(written[0]) as overlay:
        assert overlay.format == "JPEG"
        drawn = np.asarray(overlay.convert("RGB"), dtype=float)
    assert drawn.shape == expected.shape == (427, 640, 3)
    assert np.abs(drawn - expected).mean() < 5  # the same picture, JPEG's loss aside
    with Image.open(written[1]) as page:
        assert page.format == "JPEG" and page.size == (1280, 900)
        pixels = np.asarray(page.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # a photograph is on the page, not a blank
