"""What changed between two revisions (or a revision and the working state).

Records are matched by lineage id; a record present in both is "changed" when its content
hash or its place in the file differs. Counts are grouped per source and subset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Connection, Subquery, Table, and_, case, func, or_, select

from repo.project import Project
from repo.store import revisions, schema
from repo.store.sources import source_names_by_id
from repo.store.versions import Snapshot

KINDS = {"items": schema.items, "annotations": schema.annotations, "categories": schema.categories}


@dataclass(frozen=True)
class DiffRow:
    source: str
    subset: str
    kind: str
    added: int
    removed: int
    changed: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def diff(project: Project, reference_a: str, reference_b: str | None = None) -> list[DiffRow]:
    with project.reading() as connection:
        before = revisions.snapshot(connection, reference_a)
        after = revisions.snapshot(connection, reference_b)
        names = source_names_by_id(connection)
        rows: list[DiffRow] = []
        for kind, table in KINDS.items():
            counts = _compare(connection, table, before, after)
            for (source_id, subset), (added, removed, changed) in counts.items():
                if added or removed or changed:
                    rows.append(DiffRow(names.get(source_id, f"#{source_id}"), subset, kind, added, removed, changed))
        rows.sort(key=lambda row: (row.source, row.subset, list(KINDS).index(row.kind)))
        return rows


def _versions(table: Table, snapshot: Snapshot) -> Subquery:
    """The records a snapshot sees, with their source and subset.

    `detail` is what else makes a version differ besides its content hash: the place in its
    file, or for items the image file behind them.
    """
    if table is schema.items:
        query = select(
            table.c.id, table.c.hash, table.c.image_sha256.label("detail"), table.c.source_id, table.c.subset
        )
        return query.where(snapshot.visible(table)).subquery()
    files = select(schema.files.c.id, schema.files.c.source_id, schema.files.c.subset).distinct().subquery()
    query = (
        select(table.c.id, table.c.hash, table.c.position.label("detail"), files.c.source_id, files.c.subset)
        .join(files, files.c.id == table.c.file_id)
        .where(snapshot.visible(table))
    )
    return query.subquery()


def _compare(
    connection: Connection, table: Table, before: Snapshot, after: Snapshot
) -> dict[tuple[int, str], tuple[int, int, int]]:
    old, new = _versions(table, before), _versions(table, after)
    differs = or_(old.c.hash != new.c.hash, old.c.detail.is_distinct_from(new.c.detail))
    forward = (
        select(
            new.c.source_id, new.c.subset,
            func.sum(case((old.c.id.is_(None), 1), else_=0)),
            func.sum(case((and_(old.c.id.is_not(None), differs), 1), else_=0)),
        )
        .select_from(new.outerjoin(old, old.c.id == new.c.id))
        .group_by(new.c.source_id, new.c.subset)
    )
    backward = (
        select(old.c.source_id, old.c.subset, func.count())
        .select_from(old.outerjoin(new, new.c.id == old.c.id))
        .where(new.c.id.is_(None))
        .group_by(old.c.source_id, old.c.subset)
    )
    counts: dict[tuple[int, str], list[int]] = {}
    for source_id, subset, added, changed in connection.execute(forward).all():
        counts.setdefault((source_id, subset), [0, 0, 0])
        counts[(source_id, subset)][0] += int(added or 0)
        counts[(source_id, subset)][2] += int(changed or 0)
    for source_id, subset, removed in connection.execute(backward).all():
        counts.setdefault((source_id, subset), [0, 0, 0])[1] += int(removed)
    return {key: (a, r, c) for key, (a, r, c) in counts.items()}
