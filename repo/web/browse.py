"""The item list of the web app: images, filtered and paged, with facet counts.

An image is a subset and a file name: the items of several sources that share them are one
image, as in an export. The list filters images by the `export --where` condition (an image
shows when one of its annotations matches), by source, subset and label, and counts, for each
facet value, the images that match the condition.

Without a condition the counts come from one grouped query; with one, the selected
annotations (see `repo.readonly`) are grouped here, one row at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from repo.project import Project
from repo.query import annotations_view, items_view
from repo.readonly import selected_rows
from repo.store import revisions
from repo.store.versions import Snapshot

PER_PAGE = 24
FACETS = ("source", "subset", "label")

ImageKey = tuple[str, str]  # subset, file name


@dataclass(frozen=True)
class Filters:
    where: str | None = None
    source: str | None = None
    subset: str | None = None
    label: str | None = None


@dataclass
class _Facts:
    """What the filters ask of one image."""

    sources: set[str] = field(default_factory=set)
    labels: Counter[str | None] = field(default_factory=Counter)  # annotations per label (None: unlabelled)


@dataclass(frozen=True)
class Entry:
    subset: str
    file_name: str
    sources: tuple[str, ...]
    annotations: int


@dataclass
class Listing:
    entries: list[Entry]
    total: int  # images matching every filter
    page: int
    pages: int
    facets: dict[str, list[tuple[str, int]]]  # facet -> (value, images), most images first


def list_images(project: Project, rev: str | None, filters: Filters, page: int = 1, per_page: int = PER_PAGE) -> Listing:
    with project.reading() as connection:
        snapshot = revisions.snapshot(connection, rev)
        facts = _facts(connection, snapshot, filters.where)
    matching = sorted(key for key, fact in facts.items() if _matches(key, fact, filters))
    pages = max(1, -(-len(matching) // per_page))
    page = min(max(page, 1), pages)
    shown = matching[(page - 1) * per_page: page * per_page]
    entries = [
        Entry(subset, name, tuple(sorted(facts[(subset, name)].sources)), sum(facts[(subset, name)].labels.values()))
        for subset, name in shown
    ]
    return Listing(entries, len(matching), page, pages, _facet_counts(facts))


def _facts(connection: Connection, snapshot: Snapshot, where: str | None) -> dict[ImageKey, _Facts]:
    facts: dict[ImageKey, _Facts] = {}
    annotations = annotations_view(snapshot).subquery()
    if where is None:
        items = items_view(snapshot).subquery()
        for subset, name, source in connection.execute(select(items.c.subset, items.c.file_name, items.c.source)):
            facts.setdefault((subset, name), _Facts()).sources.add(source)
        grouped = (
            select(annotations.c.subset, annotations.c.file_name, annotations.c.label, func.count())
            .group_by(annotations.c.subset, annotations.c.file_name, annotations.c.label)
        )
        for subset, name, label, count in connection.execute(grouped):
            facts.setdefault((subset, name), _Facts()).labels[label] += count
        return facts
    selected = selected_rows(connection, snapshot, where)
    rows = connection.execute(
        select(annotations.c.row_id, annotations.c.subset, annotations.c.file_name, annotations.c.source, annotations.c.label),
        execution_options={"stream_results": True, "yield_per": 5000},
    )
    for row_id, subset, name, source, label in rows:
        if row_id in selected:
            fact = facts.setdefault((subset, name), _Facts())
            fact.sources.add(source)
            fact.labels[label] += 1
    return facts


def _matches(key: ImageKey, fact: _Facts, filters: Filters) -> bool:
    return (
        (filters.source is None or filters.source in fact.sources)
        and (filters.subset is None or filters.subset == key[0])
        and (filters.label is None or fact.labels[filters.label] > 0)
    )


def _facet_counts(facts: dict[ImageKey, _Facts]) -> dict[str, list[tuple[str, int]]]:
    counts: dict[str, Counter[str]] = {facet: Counter() for facet in FACETS}
    for (subset, _), fact in facts.items():
        counts["subset"][subset] += 1
        counts["source"].update(fact.sources)
        counts["label"].update(label for label, count in fact.labels.items() if label is not None and count)
    return {facet: _ordered(counter.items()) for facet, counter in counts.items()}


def _ordered(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
