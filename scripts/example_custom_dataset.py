"""The format page's Example 2, written with dsrepo's builder: a one-item dataset built from
numpy arrays, exported as COCO panoptic.

    python scripts/example_custom_dataset.py OUT

writes OUT/annotations/panoptic_val.json, its PNG (ids [[0, 20, 7, 7, 20]]) and the image; the project
it builds is kept in OUT-project/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from repo import DatasetBuilder, Project, export_dataset


def main(out: Path) -> None:
    with Project.create(out.with_name(out.name + "-project")) as project:
        builder = DatasetBuilder(project, "example", categories=["a", "b", "c", "d"])
        item = builder.add_item("val", "000000000001.jpg", coco_id=40, image=np.ones((1, 5, 3), dtype=np.uint8))
        builder.add_annotation(item, mask=np.array([[0, 0, 1, 1, 0]]), label="d", id=7, iscrowd=False)
        builder.add_annotation(item, mask=np.array([[0, 1, 0, 0, 1]]), label="b", id=20, iscrowd=True)
        builder.build()
        export_dataset(project, "coco_panoptic", out, save_images=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/example_custom_dataset.py OUT")
    main(Path(sys.argv[1]))
