"""Oracles shared by the tests: strict JSON equality, database contents, masks via pycocotools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from sqlalchemy import inspect, select, text

from repo.project import Project

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))


def json_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where two parsed JSON values differ, or None; 3 and 3.0 differ, as do true and 1."""
    if type(expected) is not type(actual):
        return f"{path}: {type(expected).__name__} {expected!r} != {type(actual).__name__} {actual!r}"
    if isinstance(expected, dict):
        if set(expected) != set(actual):
            return f"{path}: keys differ: {sorted(set(expected) ^ set(actual))}"
        for key in expected:
            found = json_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
    elif isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} elements != {len(actual)}"
        for index, (left, right) in enumerate(zip(expected, actual)):
            found = json_difference(left, right, f"{path}[{index}]")
            if found:
                return found
    elif expected != actual:
        return f"{path}: {expected!r} != {actual!r}"
    return None


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_same_file(expected: Path, actual: Path) -> None:
    difference = json_difference(load_json(expected), load_json(actual))
    assert difference is None, f"{actual} differs from {expected}: {difference}"


def id_map(path: Path) -> np.ndarray:
    """A panoptic PNG as segment ids (R + 256 G + 256^2 B), decoded with Pillow and numpy."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint32)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def database_contents(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, and the schema: what "the database is unchanged" compares."""
    contents: dict[str, list[tuple[Any, ...]]] = {}
    with project.engine.connect() as connection:
        inspector = inspect(connection)
        for table in sorted(inspector.get_table_names()):
            columns = [c["name"] for c in inspector.get_columns(table)]
            contents[f"schema:{table}"] = [tuple(columns)]
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            contents[table] = sorted((tuple(row) for row in rows), key=repr)
        contents["views"] = [tuple(sorted(inspector.get_view_names()))]
    return contents


def masks_of(annotation_file: Path) -> dict[int, np.ndarray]:
    """Each annotation's mask as pycocotools loads and draws it (polygons and both RLE forms)."""
    dataset = COCO(str(annotation_file))
    return {
        annotation_id: dataset.annToMask(annotation)
        for annotation_id, annotation in dataset.anns.items()
        if annotation.get("segmentation")
    }


def row_count(project: Project, table: str) -> int:
    with project.engine.connect() as connection:
        return connection.execute(select(text("count(*)")).select_from(text(table))).scalar_one()
