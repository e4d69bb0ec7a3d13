"""The figures of `stats --plot` and the web stats page: counts split by task, checked against
the input files; full label names; a clear message without matplotlib."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from helpers import DATA
from helpers import load_json
from repo.errors import UnsupportedError
from repo.figures import FigureData, figure, figure_data, png, write_plot
from repo.importing import import_dataset

PANOPTIC = DATA / "panopticapi_sample" / "coco"
ANNOTATIONS = PANOPTIC / "annotations"


def test_counts_are_split_by_task(backend):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    data = figure_data(project)
    instances = load_json(ANNOTATIONS / "instances_val2017.json")
    panoptic = load_json(ANNOTATIONS / "panoptic_val2017.json")
    names = {c["id"]: c["name"] for c in instances["categories"]}
    segments = [s for record in panoptic["annotations"] for s in record["segments_info"]]
    assert data.labels["instances"] == dict(Counter(names[a["category_id"]] for a in instances["annotations"]))
    assert data.labels["panoptic"] == dict(Counter(names[s["category_id"]] for s in segments))
    assert data.labels["instances"]["person"] + data.labels["panoptic"]["person"] > data.labels["panoptic"]["person"]
    np.testing.assert_array_equal(np.sort(data.areas["instances"]), np.sort([a["area"] for a in instances["annotations"]]))
    np.testing.assert_allclose(np.sort(data.aspects["panoptic"]), np.sort([s["bbox"][2] / s["bbox"][3] for s in segments]))
    assert data.sources == {"coco": {"instances": len(instances["annotations"]), "panoptic": len(segments)}}
    assert data.subsets == {"val2017": {"instances": len(instances["annotations"]), "panoptic": len(segments)}}
    assert data.source_images == {"coco": 2} and data.subset_images == {"val2017": 2}


def test_labels_keep_their_full_names_and_long_lists_lie_down():
    few = FigureData(labels={"instances": {"grass-merged": 5, "person": 9}})
    axes = figure("labels", few).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["person", "grass-merged"]
    names = [f"a rather long label name number {n:02d}" for n in range(30)]
    many = FigureData(labels={"instances": {name: 100 - n for n, name in enumerate(names)}, "panoptic": {names[0]: 7}})
    axes = figure("labels", many).axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == names
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["instances", "panoptic"]
    odd = FigureData(labels={"instances": {r"$\frac{1}": 1, "<script>": 2}})  # text, not mathematics
    assert png(lambda: figure("labels", odd)).startswith(b"\x89PNG")


def test_areas_mark_cocos_size_ranges():
    data = FigureData(areas={"instances": np.array([10.0, 500.0, 2000.0, 5000.0, 20000.0])})
    axes = figure("areas", data).axes[0]
    texts = [t.get_text() for t in axes.texts]
    assert texts == ["small\n< 32²\n2", "medium\n32²..96²\n2", "large\n≥ 96²\n1"]
    assert axes.get_xscale() == "log"
    assert sorted(line.get_xdata()[0] for line in axes.lines) == [32**2, 96**2]


def test_stats_plot_says_where_it_wrote(cli, backend, tmp_path):
    args = backend.create_args()
    cli("create", *args)
    cli("import", "-p", args[1], "-f", "coco", PANOPTIC)
    plot = tmp_path / "stats.png"
    result = cli("stats", "-p", args[1], "--format", "json", "--plot", plot)
    assert result.stderr == f"wrote the plots to {plot}\n"
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width >= 1000


def test_without_matplotlib_the_message_says_what_to_install(cli, backend, tmp_path, monkeypatch):
    args = backend.create_args()
    cli("create", *args)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what `import` sees when it is not installed
    message = cli.text("stats", "-p", args[1], "--plot", tmp_path / "stats.png", code=1)
    assert message == "Error: drawing plots needs matplotlib, which is not installed; pip install 'dsrepo[viz]'\n"
    assert not (tmp_path / "stats.png").exists()
    with pytest.raises(UnsupportedError, match="needs matplotlib"):
        write_plot(None, tmp_path / "x.png")  # type: ignore[arg-type]


def test_an_image_of_two_sources_is_one_image_of_its_subset(backend):
    project = backend.create()
    import_dataset(project, "coco_instances", PANOPTIC, name="a")
    import_dataset(project, "coco_panoptic", PANOPTIC, name="b")
    data = figure_data(project)
    images = len(load_json(ANNOTATIONS / "instances_val2017.json")["images"])
    assert data.source_images == {"a": images, "b": images}
    assert data.subset_images == {"val2017": images}


def test_bar_totals_fit_inside_the_axes():
    """A task absent from a bar must not pin the axis' end at that bar's total."""
    data = FigureData(sources={"big": {"instances": 50, "panoptic": 50}, "small": {"captions": 3}}, source_images={"big": 2})
    axes = figure("sources", data).axes[0]
    assert axes.get_xlim()[1] > 105
