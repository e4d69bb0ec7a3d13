"""The figures of `stats --plot` and of the web app's stats page, drawn with matplotlib.

Every count is split by task, so that a label that is both an instance and a panoptic segment
is not one bar adding the two. The figures:

- `labels`: annotations per label, full names, horizontal bars when the list is long;
- `areas`: annotation areas on a log axis, with COCO's small / medium / large boundaries
  (32^2 and 96^2 pixels) marked and the count of each range;
- `aspects`: box aspect ratios (width : height) on a log axis;
- `sources` and `subsets`: annotations per source and per subset, with their image counts.

`stats --plot` draws them all into one PNG; the web app draws each one on its own, with the same
functions. matplotlib is an optional dependency (the `viz` extra): without it these functions
raise a DsrepoError that says what to install. Only the object API is used (no pyplot), on the
Agg canvas, and drawing holds a lock, so threads of the web server can share it.
"""

from __future__ import annotations

import io
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from repo.coco.tasks import TASKS
from repo.errors import OutputError, UnsupportedError
from repo.project import Project
from repo.query import annotations_view, items_view
from repo.store import revisions

SMALL, MEDIUM = 32**2, 96**2  # COCO's object size boundaries, in pixels of area
LONG_LIST = 12  # more labels than this: horizontal bars
INSTALL_HINT = "pip install 'dsrepo[viz]'"
_LOCK = threading.Lock()


@dataclass
class FigureData:
    """What the figures show, at one snapshot; arrays and counts are per task."""

    labels: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> label -> annotations
    areas: dict[str, np.ndarray] = field(default_factory=dict)  # task -> positive areas
    aspects: dict[str, np.ndarray] = field(default_factory=dict)  # task -> box width / height
    sources: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> task -> annotations
    subsets: dict[str, dict[str, int]] = field(default_factory=dict)  # subset -> task -> annotations
    source_images: dict[str, int] = field(default_factory=dict)
    subset_images: dict[str, int] = field(default_factory=dict)


def figure_data(project: Project, rev: str | None = None) -> FigureData:
    """Counts and distributions from the query views, at revision `rev` (None: working state)."""
    data = FigureData()
    with project.reading() as connection:
        snapshot = revisions.snapshot(connection, rev)
        annotations = annotations_view(snapshot).subquery()
        items = items_view(snapshot).subquery()
        for task, label, count in connection.execute(
            select(annotations.c.task, annotations.c.label, func.count())
            .where(annotations.c.label.is_not(None)).group_by(annotations.c.task, annotations.c.label)
        ):
            data.labels.setdefault(task, {})[label] = count
        for column, target in ((annotations.c.source, data.sources), (annotations.c.subset, data.subsets)):
            for name, task, count in connection.execute(
                select(column, annotations.c.task, func.count()).group_by(column, annotations.c.task)
            ):
                target.setdefault(name, {})[task] = count
        per_source = select(items.c.source, func.count()).group_by(items.c.source)
        data.source_images.update((name, count) for name, count in connection.execute(per_source))
        # An image of a subset is its file name there, whichever sources hold it.
        per_subset = select(items.c.subset, func.count(func.distinct(items.c.file_name))).group_by(items.c.subset)
        data.subset_images.update((name, count) for name, count in connection.execute(per_subset))
        areas: dict[str, array[float]] = {}
        aspects: dict[str, array[float]] = {}
        geometry = select(annotations.c.task, annotations.c.area, annotations.c.bbox_w, annotations.c.bbox_h)
        for task, area, width, height in connection.execute(geometry, execution_options={"stream_results": True, "yield_per": 5000}):
            if area is not None and area > 0:
                areas.setdefault(task, array("d")).append(area)
            if width is not None and height is not None and width > 0 and height > 0:
                aspects.setdefault(task, array("d")).append(width / height)
    data.areas = {task: np.frombuffer(values, dtype=np.float64) for task, values in areas.items()}
    data.aspects = {task: np.frombuffer(values, dtype=np.float64) for task, values in aspects.items()}
    return data


def _matplotlib() -> Any:
    """matplotlib's Figure class, or a DsrepoError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UnsupportedError(f"drawing plots needs matplotlib, which is not installed; {INSTALL_HINT}") from None
    return Figure


def _plain(text: str) -> str:
    """Text shown as written: matplotlib would read $...$ as mathematics."""
    return text.replace("$", r"\$")


def _task_colour(task: str) -> Any:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return palette(TASKS.index(task) % 10 if task in TASKS else 9)


def _tasks_in(counts: dict[str, dict[str, int]]) -> list[str]:
    present = {task for per_task in counts.values() for task in per_task}
    return [task for task in TASKS if task in present] + sorted(present - set(TASKS))


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _stacked_bars(ax: Any, names: list[str], per_name: dict[str, dict[str, int]], horizontal: bool) -> None:
    """One bar per name, stacked by task, total written at the end of each bar."""
    tasks = _tasks_in(per_name)
    positions = np.arange(len(names))
    base = np.zeros(len(names))
    for task in tasks:
        values = np.array([per_name[name].get(task, 0) for name in names], dtype=float)
        drawn = values > 0  # an empty bar would pin the axis' end where it stands (a "sticky edge")
        if horizontal:
            ax.barh(positions[drawn], values[drawn], left=base[drawn], color=_task_colour(task), label=task)
        else:
            ax.bar(positions[drawn], values[drawn], bottom=base[drawn], color=_task_colour(task), label=task)
        base += values
    for position, total in zip(positions, base):
        if horizontal:
            ax.text(total, position, f" {int(total)}", va="center", fontsize=8)
        else:
            ax.text(position, total, f"{int(total)}", ha="center", va="bottom", fontsize=8)
    shown = [_plain(name) for name in names]
    if horizontal:
        ax.set_yticks(positions, shown, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)  # largest first, at the top
        ax.margins(x=0.12)
    else:
        ax.set_xticks(positions, shown, rotation=30, ha="right", fontsize=8)
        ax.margins(y=0.12)
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    if len(tasks) > 1:
        ax.legend(title="task", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def _label_order(data: FigureData) -> tuple[list[str], dict[str, dict[str, int]]]:
    per_label: dict[str, dict[str, int]] = {}
    for task, counts in data.labels.items():
        for label, count in counts.items():
            per_label.setdefault(label, {})[task] = count
    names = sorted(per_label, key=lambda name: (-sum(per_label[name].values()), name))
    return names, per_label


def draw_labels(ax: Any, data: FigureData) -> None:
    names, per_label = _label_order(data)
    ax.set_title("annotations per label, by task")
    if not names:
        _empty(ax, "labelled annotations")
        return
    horizontal = len(names) > LONG_LIST
    _stacked_bars(ax, names, per_label, horizontal)
    (ax.set_xlabel if horizontal else ax.set_ylabel)("annotations")


def draw_areas(ax: Any, data: FigureData) -> None:
    ax.set_title("annotation area")
    values = [data.areas[task] for task in TASKS if task in data.areas]
    if not values:
        _empty(ax, "areas")
        return
    everything = np.concatenate(values)
    low, high = float(everything.min()), float(everything.max())
    bins = np.geomspace(low, high * 1.0001 if high > low else low * 2, 40)
    tasks = [task for task in TASKS if task in data.areas]
    ax.hist([data.areas[task] for task in tasks], bins=bins, stacked=True, label=tasks,
            color=[_task_colour(task) for task in tasks])
    ax.set_xscale("log")
    ax.set_xlabel("area (pixels, log scale)")
    ax.set_ylabel("annotations")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    left, right = ax.get_xlim()
    counts = {
        "small": int((everything < SMALL).sum()),
        "medium": int(((everything >= SMALL) & (everything < MEDIUM)).sum()),
        "large": int((everything >= MEDIUM).sum()),
    }
    ranges = (("small", "< 32²", left, SMALL), ("medium", "32²..96²", SMALL, MEDIUM), ("large", "≥ 96²", MEDIUM, right))
    for name, span, start, end in ranges:
        start, end = max(start, left), min(end, right)
        if start < end:
            ax.text(float(np.sqrt(start * end)), 0.98, f"{name}\n{span}\n{counts[name]}",
                    transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
    for boundary in (SMALL, MEDIUM):
        if left < boundary < right:
            ax.axvline(boundary, color="black", linestyle="--", linewidth=1)
    ax.margins(y=0.3)


def draw_aspects(ax: Any, data: FigureData) -> None:
    ax.set_title("box aspect ratio (width : height)")
    tasks = [task for task in TASKS if task in data.aspects]
    if not tasks:
        _empty(ax, "boxes")
        return
    logs = [np.log2(data.aspects[task]) for task in tasks]
    everything = np.concatenate(logs)
    reach = max(2.0, float(np.ceil(np.abs(everything).max())))
    ax.hist(logs, bins=np.linspace(-reach, reach, 41), stacked=True, label=tasks,
            color=[_task_colour(task) for task in tasks])
    ticks = np.arange(-reach, reach + 1)
    ax.set_xticks(ticks, [_ratio(int(t)) for t in ticks], fontsize=8)
    ax.set_xlabel("width : height (log scale)")
    ax.set_ylabel("boxes")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def _images(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"


def _ratio(power: int) -> str:
    return f"{2**power}:1" if power >= 0 else f"1:{2**-power}"


def draw_groups(ax: Any, counts: dict[str, dict[str, int]], images: dict[str, int], what: str) -> None:
    ax.set_title(f"annotations per {what}, by task")
    names = sorted(set(counts) | set(images))
    if not names:
        _empty(ax, f"{what}s")
        return
    labelled = {f"{name} ({_images(images.get(name, 0))})": counts.get(name, {}) for name in names}
    _stacked_bars(ax, list(labelled), labelled, horizontal=True)
    ax.set_xlabel("annotations")


FIGURES: dict[str, Callable[[Any, FigureData], None]] = {
    "labels": draw_labels,
    "areas": draw_areas,
    "aspects": draw_aspects,
    "sources": lambda ax, data: draw_groups(ax, data.sources, data.source_images, "source"),
    "subsets": lambda ax, data: draw_groups(ax, data.subsets, data.subset_images, "subset"),
}


def _label_height(data: FigureData) -> float:
    names, _ = _label_order(data)
    return max(3.5, 0.22 * len(names) + 1.5) if len(names) > LONG_LIST else 4.0


def _group_height(data: FigureData) -> float:
    return max(2.5, 0.35 * max(len(data.source_images), len(data.subset_images), 1) + 1.5)


def figure(name: str, data: FigureData) -> Any:
    """One figure, by name (see FIGURES)."""
    Figure = _matplotlib()
    heights = {"labels": _label_height(data), "sources": _group_height(data), "subsets": _group_height(data)}
    result = Figure(figsize=(8, heights.get(name, 4.0)), layout="constrained")
    FIGURES[name](result.add_subplot(), data)
    return result


def combined(data: FigureData) -> Any:
    """Every figure in one: labels on top, areas and aspects, then sources and subsets."""
    Figure = _matplotlib()
    heights = [_label_height(data), 4.0, _group_height(data)]
    result = Figure(figsize=(14, sum(heights)), layout="constrained")
    grid = result.add_gridspec(3, 2, height_ratios=heights)
    draw_labels(result.add_subplot(grid[0, :]), data)
    draw_areas(result.add_subplot(grid[1, 0]), data)
    draw_aspects(result.add_subplot(grid[1, 1]), data)
    FIGURES["sources"](result.add_subplot(grid[2, 0]), data)
    FIGURES["subsets"](result.add_subplot(grid[2, 1]), data)
    return result


def png(make: Callable[[], Any], dpi: int = 100) -> bytes:
    """A figure drawn by `make`, as PNG bytes."""
    with _LOCK:
        drawn = make()
        buffer = io.BytesIO()
        drawn.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_plot(project: Project, path: Path, rev: str | None = None) -> Path:
    """`stats --plot`: every figure of the project (at `rev`) in one PNG at `path`."""
    _matplotlib()  # before the queries: say what is missing at once
    data = figure_data(project, rev)
    try:
        path.write_bytes(png(lambda: combined(data)))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
    return path
