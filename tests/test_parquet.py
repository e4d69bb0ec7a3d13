"""The Parquet export, read back by DuckDB (an independent client) and compared with what
`dsrepo query` answers over the views, on SQLite and PostgreSQL.

Data: a held-aside synthetic instances set, the real panopticapi sample (RLE instances and
panoptic segments) and Datumaro's seven-task folder (polygons, keypoints, captions, labels).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from pycocotools import mask as coco_mask

import helpers  # noqa: F401  (puts scripts/ on sys.path for gen_coco)
from helpers import DATA, Backend
from gen_coco import generate
from helpers import masks_of
from repo.exporting import export_dataset
from repo.formats.parquet import ANNOTATION_COLUMNS, ITEM_COLUMNS
from repo.history import commit
from repo.importing import import_dataset
from repo.labels import delete_label
from repo.project import Project
from repo.query import run_query

PANOPTIC_SAMPLE = DATA / "panopticapi_sample" / "coco"
VIEW_COLUMNS = ", ".join(name for name, _ in ANNOTATION_COLUMNS[:-3])
PER_LABEL = "SELECT label, count(*) FROM annotations_v GROUP BY label"


@pytest.fixture
def project(backend: Backend, tmp_path: Path) -> Project:
    held_aside = tmp_path / "held_aside"
    generate(held_aside, images=60, seed=23, tasks=["instances"])
    project = backend.create()
    import_dataset(project, "coco", held_aside, name="synthetic")
    import_dataset(project, "coco", PANOPTIC_SAMPLE, name="panopticapi")
    import_dataset(project, "coco", DATA / "datumaro_coco" / "coco", name="datumaro")
    return project


def _export(project: Project, out: Path, **kwargs) -> Path:
    export_dataset(project, "parquet", out, **kwargs)
    return out


def _dsrepo_query(cli, project: Project, sql: str) -> list[tuple]:
    args = ["query", "-p", str(project.directory), "--format", "json", sql]
    if not project.url.startswith("sqlite"):
        args[3:3] = ["--db", project.url]
    return sorted((tuple(row.values()) for row in json.loads(cli.text(*args))), key=repr)


def _duckdb(sql: str) -> list[tuple]:
    with duckdb.connect() as connection:
        return sorted(connection.sql(sql).fetchall(), key=repr)


def test_per_label_counts_equal_dsrepo_query(cli, project: Project, tmp_path: Path) -> None:
    out = _export(project, tmp_path / "out")
    per_label = _duckdb(f"SELECT label, count(*) FROM '{out}/annotations.parquet' GROUP BY label")
    assert per_label == _dsrepo_query(cli, project, PER_LABEL)
    assert len(per_label) > 50 and (None, 3) in per_label  # captions have no label
    per_source = "SELECT source, count(*) FROM {} GROUP BY source"
    expected = _dsrepo_query(cli, project, per_source.format("items_v"))
    assert _duckdb(per_source.format(f"'{out}/items.parquet'")) == expected


def test_every_view_value_is_kept(project: Project, tmp_path: Path) -> None:
    out = _export(project, tmp_path / "out")
    annotations = _duckdb(f"SELECT {VIEW_COLUMNS} FROM '{out}/annotations.parquet'")
    assert annotations == sorted(run_query(project, f"SELECT {VIEW_COLUMNS} FROM annotations_v").rows, key=repr)
    items = ", ".join(name for name, _ in ITEM_COLUMNS)
    assert _duckdb(f"SELECT {items} FROM '{out}/items.parquet'") == sorted(
        run_query(project, f"SELECT {items} FROM items_v").rows, key=repr
    )


def test_geometry_decodes_to_the_original_masks_and_polygons(project: Project, tmp_path: Path) -> None:
    out = _export(project, tmp_path / "out")
    rows = _duckdb(
        f"SELECT a.coco_id, a.rle, a.polygons, i.height, i.width FROM '{out}/annotations.parquet' a "
        f"JOIN '{out}/items.parquet' i USING (source, subset, file_name) "
        "WHERE a.source = 'panopticapi' AND a.task = 'instances'"
    )
    expected = masks_of(PANOPTIC_SAMPLE / "annotations" / "instances_val2017.json")
    assert sorted(coco_id for coco_id, *_ in rows) == sorted(expected)
    for coco_id, rle, polygons, height, width in rows:
        assert polygons is None
        mask = coco_mask.decode({"size": [height, width], "counts": rle.encode("ascii")})
        assert np.array_equal(mask, expected[coco_id])
    original = json.loads((DATA / "datumaro_coco" / "coco" / "annotations" / "instances_val.json").read_text())
    written = dict(_duckdb(
        f"SELECT coco_id, polygons FROM '{out}/annotations.parquet' "
        "WHERE source = 'datumaro' AND task = 'instances' AND subset = 'val' AND kind = 'polygon'"
    ))
    polygons = {a["id"]: a["segmentation"] for a in original["annotations"] if isinstance(a["segmentation"], list)}
    assert written and {coco_id: polygons[coco_id] for coco_id in written} == written


def test_rows_are_written_in_groups(project: Project, tmp_path: Path) -> None:
    out = _export(project, tmp_path / "out", row_group_rows=50)
    for name in ("items.parquet", "annotations.parquet"):
        metadata = pq.ParquetFile(out / name).metadata
        assert metadata.num_row_groups == math.ceil(metadata.num_rows / 50) > 1
        assert all(metadata.row_group(g).num_rows <= 50 for g in range(metadata.num_row_groups))


def test_a_revision_and_a_condition_choose_the_rows(project: Project, tmp_path: Path) -> None:
    commit(project, "three sources")
    condition = "label = 'person' AND area > 1000"
    before = sorted(run_query(project, PER_LABEL).rows, key=repr)
    [(persons_before,)] = run_query(project, f"SELECT count(*) FROM annotations_v WHERE {condition}").rows
    delete_label(project, "person")
    old = _export(project, tmp_path / "old", rev="HEAD")
    assert _duckdb(f"SELECT label, count(*) FROM '{old}/annotations.parquet' GROUP BY label") == before
    persons = _export(project, tmp_path / "persons", rev="HEAD", where=condition)
    assert persons_before > 0
    assert _duckdb(f"SELECT label, count(*) FROM '{persons}/annotations.parquet' GROUP BY label") == [
        ("person", persons_before)
    ]
    items = "SELECT count(*) FROM '{}/items.parquet'"
    assert _duckdb(items.format(persons)) == _duckdb(items.format(old))  # every item is written
