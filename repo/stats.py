"""Statistics of a project: counts, size distributions, empty images, crowd share.

Everything is computed from the query views at the chosen snapshot, so `stats` describes
exactly what `export` would write.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from repo.project import Project
from repo.query import annotations_view, items_view
from repo.store import revisions
from repo.store.versions import Snapshot

# COCO's object sizes: small < 32^2 <= medium < 96^2 <= large (in pixels of area).
AREA_BUCKETS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, float("inf")))
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Distribution:
    """How a measure is spread: count, quantiles and (for areas) COCO's size buckets."""

    count: int
    quantiles: dict[str, float]  # min, p25, median, p75, max
    buckets: dict[str, int] = field(default_factory=dict)


@dataclass
class Stats:
    """What `dsrepo stats` shows."""

    images: dict[str, int]  # per subset: distinct file names, however many sources hold them
    annotations: dict[str, dict[str, int]]  # subset -> task -> count
    labels: dict[str, dict[str, int]]  # task -> label -> count
    images_without_annotations: dict[str, int]  # per subset: images no source annotates
    crowd_share: float | None
    area: Distribution
    bbox_width: Distribution
    bbox_height: Distribution

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _distribution(values: list[float], buckets: bool = False) -> Distribution:
    if not values:
        return Distribution(0, {})
    array = np.asarray(values, dtype=float)
    names = ("min", "p25", "median", "p75", "max")
    quantiles = {name: float(np.quantile(array, q)) for name, q in zip(names, QUANTILES)}
    result = Distribution(len(values), quantiles)
    if buckets:
        result.buckets = {name: int(((array >= low) & (array < high)).sum()) for name, low, high in AREA_BUCKETS}
    return result


def compute_stats(
    project: Project, *, rev: str | None = None, plot: str | os.PathLike[str] | None = None
) -> Stats:
    """Counts per subset, task and label, size distributions, images without annotations and
    the share of crowd annotations, as of `rev` (None: the working state); with `plot`, also
    draw the figures of repo.figures into that PNG file (needs matplotlib: the `viz` extra)."""
    with project.reading() as connection:
        stats = _compute(connection, revisions.snapshot(connection, rev))
    if plot is not None:
        from repo.figures import write_plot  # matplotlib only when a plot is asked for

        write_plot(project, Path(plot), rev)
    return stats


def _compute(connection: Connection, snapshot: Snapshot) -> Stats:
    annotations = annotations_view(snapshot).subquery()
    items = items_view(snapshot).subquery()
    images = dict(connection.execute(
        select(items.c.subset, func.count(items.c.file_name.distinct())).group_by(items.c.subset).order_by(items.c.subset)
    ).all())
    per_task: dict[str, dict[str, int]] = {}
    for subset, task, count in connection.execute(
        select(annotations.c.subset, annotations.c.task, func.count())
        .group_by(annotations.c.subset, annotations.c.task).order_by(annotations.c.subset, annotations.c.task)
    ).all():
        per_task.setdefault(subset, {})[task] = count
    labels: dict[str, dict[str, int]] = {}
    for task, label, count in connection.execute(
        select(annotations.c.task, annotations.c.label, func.count())
        .where(annotations.c.label.is_not(None))
        .group_by(annotations.c.task, annotations.c.label)
        .order_by(annotations.c.task, func.count().desc(), annotations.c.label)
    ).all():
        labels.setdefault(task, {})[label] = count
    annotated = select(annotations.c.subset, annotations.c.file_name).distinct().subquery()
    empty = dict(connection.execute(
        select(items.c.subset, func.count(items.c.file_name.distinct()))
        .select_from(items.outerjoin(annotated, (annotated.c.subset == items.c.subset)
                                     & (annotated.c.file_name == items.c.file_name)))
        .where(annotated.c.file_name.is_(None))
        .group_by(items.c.subset)
    ).all())
    crowd = Counter(dict(connection.execute(
        select(annotations.c.iscrowd, func.count()).where(annotations.c.iscrowd.is_not(None)).group_by(annotations.c.iscrowd)
    ).all()))
    total = sum(crowd.values())
    geometry = connection.execute(select(annotations.c.area, annotations.c.bbox_w, annotations.c.bbox_h)).all()
    return Stats(
        images=images, annotations=per_task, labels=labels,
        images_without_annotations={subset: empty.get(subset, 0) for subset in images},
        crowd_share=crowd[1] / total if total else None,
        area=_distribution([row.area for row in geometry if row.area is not None], buckets=True),
        bbox_width=_distribution([row.bbox_w for row in geometry if row.bbox_w is not None]),
        bbox_height=_distribution([row.bbox_h for row in geometry if row.bbox_h is not None]),
    )
