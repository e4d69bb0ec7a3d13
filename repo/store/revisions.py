"""Revisions in SQL: naming them, recording them, moving the working state between them, and
counting what differs between two of them.

A revision is a number (`seq`) with a 40-hex hash for people. The working state is whatever
rows have `rev_to IS NULL`; the uncommitted part of it is stamped with `pending = HEAD + 1`.
So committing only inserts the `revisions` row, discarding uncommitted work deletes the
pending rows and reopens the ones they closed, and checking out revision r closes the working
rows r did not have and copies back, as new versions, the rows r had that were closed since.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Connection,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Select

from repo.errors import ConflictError, NotFoundError
from repo.store import schema
from repo.store.versions import Snapshot, head_seq

_revisions, _tags = schema.revisions, schema.tags
_RELATIVE = re.compile(r"^HEAD~(\d+)$")
_HEX = re.compile(r"^[0-9a-f]{4,40}$")


@dataclass(frozen=True)
class Revision:
    """A recorded revision: its number, 40-hex id, message, time, change counts per table
    (added / removed / changed) and tags."""

    seq: int
    hash: str
    message: str
    created_at: datetime
    changes: dict[str, dict[str, int]]
    tags: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return self.hash[:7]


def _revision(connection: Connection, row: Any) -> Revision:
    tags = connection.execute(
        select(_tags.c.name).where(_tags.c.seq == row.seq).order_by(_tags.c.name)
    ).scalars().all()
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    return Revision(row.seq, row.hash, row.message, created, row.changes or {}, tuple(tags))


def get(connection: Connection, seq: int) -> Revision:
    row = connection.execute(select(_revisions).where(_revisions.c.seq == seq)).one()
    return _revision(connection, row)


def history(connection: Connection, limit: int | None = None) -> list[Revision]:
    query = select(_revisions).order_by(_revisions.c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_revision(connection, row) for row in connection.execute(query).all()]


def resolve(connection: Connection, reference: str) -> int:
    """The seq a reference names: HEAD, HEAD~N, a tag, or a unique hash prefix (>= 4 chars)."""
    head = head_seq(connection)
    if reference == "HEAD" or _RELATIVE.match(reference):
        if head == 0:
            raise NotFoundError(f"unknown revision '{reference}': the project has no revisions yet; commit first")
        match = _RELATIVE.match(reference)
        back = int(match.group(1)) if match else 0
        if back >= head:
            raise NotFoundError(f"unknown revision '{reference}': the history has only {head} revisions")
        return head - back
    tagged = connection.execute(select(_tags.c.seq).where(_tags.c.name == reference)).scalar()
    if tagged is not None:
        return tagged
    if _HEX.match(reference):
        found = connection.execute(
            select(_revisions.c.seq, _revisions.c.hash).where(_revisions.c.hash.startswith(reference)).limit(2)
        ).all()
        if len(found) == 1:
            return found[0].seq
        if len(found) > 1:
            raise NotFoundError(f"revision prefix '{reference}' is ambiguous; give more characters")
    raise NotFoundError(f"unknown revision '{reference}' (expected HEAD, HEAD~N, a tag or a revision id)")


def snapshot(connection: Connection, reference: str | None) -> Snapshot:
    return Snapshot() if reference is None else Snapshot(resolve(connection, reference))


def record(connection: Connection, seq: int, message: str, changes: dict[str, dict[str, int]]) -> Revision:
    """Insert the revision row for `seq` (the pending revision)."""
    created = datetime.now(timezone.utc)
    parent = connection.execute(select(_revisions.c.hash).where(_revisions.c.seq == seq - 1)).scalar() or ""
    digest = hashlib.sha1(
        f"{parent}\n{seq}\n{created.isoformat()}\n{message}\n{sorted(changes.items())}".encode()
    ).hexdigest()
    connection.execute(insert(_revisions).values(
        seq=seq, hash=digest, message=message, created_at=created, changes=changes
    ))
    return get(connection, seq)


def add_tag(connection: Connection, name: str, seq: int) -> None:
    if connection.execute(select(_tags.c.seq).where(_tags.c.name == name)).first() is not None:
        raise ConflictError(f"a tag named '{name}' already exists")
    if name == "HEAD" or _RELATIVE.match(name):
        raise ConflictError(f"'{name}' cannot be a tag name: it is a revision reference")
    connection.execute(insert(_tags).values(name=name, seq=seq))


# -- the pending revision --------------------------------------------------------------------

def source_of(table: Table) -> Any:
    """A column expression naming the source of each row of `table` (None for labels).

    Rows that hang off a file find their source through any version of that file, since a
    file never moves between sources.
    """
    if table is schema.sources:
        return table.c.id
    if table in (schema.items, schema.files):
        return table.c.source_id
    if "file_id" in table.c:
        files = schema.files
        return (
            select(files.c.source_id).where(files.c.id == table.c.file_id).limit(1).scalar_subquery()
        )
    return None


def pending_changes(connection: Connection, pending: int) -> dict[str, dict[Any, dict[str, int]]]:
    """Uncommitted changes: per table, per source id, counts of added/removed/changed records."""
    result: dict[str, dict[Any, dict[str, int]]] = {}
    for table in schema.VERSIONED:
        source = source_of(table)
        source_column = (source if source is not None else literal(None)).label("source")
        older = table.alias("older")
        replaced = exists().where(older.c.id == table.c.id, older.c.rev_to == pending)
        newer = table.alias("newer")
        replacing = exists().where(newer.c.id == table.c.id, newer.c.rev_from == pending)
        counts: dict[Any, dict[str, int]] = {}
        added = select(source_column, replaced.label("changed"), func.count()).where(table.c.rev_from == pending)
        for source_id, changed, count in connection.execute(added.group_by(source_column, replaced)).all():
            entry = counts.setdefault(source_id, {"added": 0, "removed": 0, "changed": 0})
            entry["changed" if changed else "added"] += count
        removed = (
            select(source_column, func.count())
            .where(table.c.rev_to == pending, ~replacing)
            .group_by(source_column)
        )
        for source_id, count in connection.execute(removed).all():
            counts.setdefault(source_id, {"added": 0, "removed": 0, "changed": 0})["removed"] += count
        if counts:
            result[table.name] = counts
    return result


def totals(changes: dict[str, dict[Any, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Per-table counts summed over sources."""
    summed: dict[str, dict[str, int]] = {}
    for table, per_source in changes.items():
        entry = summed.setdefault(table, {"added": 0, "removed": 0, "changed": 0})
        for counts in per_source.values():
            for key, value in counts.items():
                entry[key] += value
    return summed


def discard_pending(connection: Connection, pending: int) -> None:
    """Back to HEAD: drop uncommitted rows, reopen the rows they closed."""
    for table in schema.VERSIONED:
        connection.execute(delete(table).where(table.c.rev_from == pending))
        connection.execute(update(table).where(table.c.rev_to == pending).values(rev_to=null()))


def restore(connection: Connection, seq: int, pending: int) -> None:
    """Make the working state equal to revision `seq`'s rows (from a clean working state)."""
    target = Snapshot(seq)
    for table in schema.VERSIONED:
        connection.execute(
            update(table).where(table.c.rev_to.is_(None), ~target.visible(table)).values(rev_to=pending)
        )
        connection.execute(_copy_back(table, target, pending, connection.dialect.name))


def _copy_back(table: Table, target: Snapshot, pending: int, dialect: str) -> Any:
    """INSERT ... SELECT of the rows `target` had that the working state no longer has."""
    data_columns = [c for c in table.c if c.name not in ("row_id", "rev_from", "rev_to")]
    row_id = func.nextval("dsrepo_row_ids") if dialect == "postgresql" else null()
    rows: Select[Any] = select(
        row_id.label("row_id"), literal(pending).label("rev_from"), *data_columns
    ).where(target.visible(table), table.c.rev_to.is_not(None), table.c.rev_to <= pending)
    names = ["row_id", "rev_from"] + [c.name for c in data_columns]
    return insert(table).from_select(names, rows)


def changed_rows(connection: Connection, pending: int) -> bool:
    return any(
        connection.execute(
            select(table.c.row_id).where((table.c.rev_from == pending) | (table.c.rev_to == pending)).limit(1)
        ).first()
        for table in schema.VERSIONED
    )


# -- differences between two snapshots -------------------------------------------------------

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


def count_differences(
    connection: Connection, table: Table, before: Snapshot, after: Snapshot
) -> dict[tuple[int, str], tuple[int, int, int]]:
    """Per (source id, subset): records of `table` added, removed, and changed (content hash or
    place differ) from snapshot `before` to snapshot `after`; records are matched by lineage id."""
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
