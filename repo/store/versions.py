"""Row versions: which rows a read sees, and how a change stamps the rows it touches.

See `schema` for the model. `Snapshot` turns "the working state" or "revision r" into a WHERE
clause; `VersionWriter` carries the pending revision of one write transaction and is the only
code that inserts, replaces or closes versioned rows, so the rules live in one place. It takes
rows whose content hash is already computed: hashing is the business of whoever read or
changed the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, delete, func, or_, select, text, update

from repo.store.bulk import insert_rows
from repo.store.engine import LABELS_LOCK
from repo.store.schema import revisions

BATCH_ROWS = 2000
# PostgreSQL row ids drawn from the sequence at a time: a draw is a statement, which waits for
# the COPYs handed over before it (see copy_pipe); ids left over at the end are never used.
DRAWN_IDS = 10_000


@dataclass(frozen=True)
class Snapshot:
    """The rows a read sees: the working state (seq None) or those of revision `seq`."""

    seq: int | None = None

    def visible(self, table: Table) -> ColumnElement[bool]:
        if self.seq is None:
            return table.c.rev_to.is_(None)
        return and_(
            table.c.rev_from <= self.seq,
            or_(table.c.rev_to.is_(None), table.c.rev_to > self.seq),
        )


WORKING_STATE = Snapshot()

_VERSION_COLUMNS = ("row_id", "rev_from", "rev_to")


def version_values(table: Table, row: Any, **changes: Any) -> dict[str, Any]:
    """The values of a new version of `row` with `changes` (its record id kept, its version
    columns left for `VersionWriter.replace` to fill)."""
    values = {c.name: getattr(row, c.name) for c in table.c if c.name not in _VERSION_COLUMNS}
    values.update(changes)
    return values


def head_seq(connection: Connection) -> int:
    """The newest revision's number; 0 before the first commit."""
    return connection.execute(select(func.coalesce(func.max(revisions.c.seq), 0))).scalar_one()


@dataclass
class VersionWriter:
    """Writes versioned rows for one transaction, stamped with the pending revision."""

    connection: Connection
    pending: int
    _next_row_id: dict[str, int] = field(default_factory=dict)
    _drawn_ids: list[int] = field(default_factory=list)
    _drawn_taken: int = 0  # how many of `_drawn_ids` were handed out

    @classmethod
    def begin(cls, connection: Connection) -> "VersionWriter":
        return cls(connection, head_seq(connection) + 1)

    @property
    def is_postgresql(self) -> bool:
        return self.connection.dialect.name == "postgresql"

    def lock_labels(self) -> None:
        """One creator or renamer of labels at a time (PostgreSQL; SQLite has one writer).

        Two imports adding the same new labels in opposite orders would otherwise each wait
        for the other's uncommitted rows, and deadlock."""
        if self.is_postgresql:
            self.connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LABELS_LOCK})")

    def allocate(self, table: Table, count: int) -> list[int]:
        """Fresh row ids. PostgreSQL draws them from a sequence, so concurrent writers never
        clash; SQLite has one writer at a time, so counting on from the largest id is safe."""
        if count == 0:
            return []
        if self.is_postgresql:
            left = len(self._drawn_ids) - self._drawn_taken
            if left < count:
                rows = self.connection.execute(
                    text("SELECT nextval('dsrepo_row_ids') FROM generate_series(1, :n)"),
                    {"n": max(DRAWN_IDS, count - left)},
                )
                self._drawn_ids = self._drawn_ids[self._drawn_taken:] + [row[0] for row in rows]
                self._drawn_taken = 0
            self._drawn_taken += count
            return self._drawn_ids[self._drawn_taken - count:self._drawn_taken]
        start = self._next_row_id.get(table.name)
        if start is None:  # AUTOINCREMENT's counter remembers ids of rows deleted since
            used = self.connection.execute(
                text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name}
            ).scalar() or 0
            start = max(used, self.connection.execute(select(func.coalesce(func.max(table.c.row_id), 0))).scalar_one()) + 1
        self._next_row_id[table.name] = start + count
        return list(range(start, start + count))

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert new records (new lineages); returns their ids, in order."""
        row_ids = self.allocate(table, len(rows))
        self._execute_insert(table, rows, row_ids, new_lineages=True)
        return row_ids

    def insert_versions(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new versions of existing records; each row carries its record's `id`."""
        self._execute_insert(table, rows, self.allocate(table, len(rows)), new_lineages=False)

    def replace(self, table: Table, rows: Sequence[Any], versions: Sequence[dict[str, Any]]) -> None:
        """Close the working `rows` and insert their new `versions` (see `version_values`)."""
        self.close_rows(table, [row.row_id for row in rows])
        self.insert_versions(table, versions)

    def fill_in_place(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Set cache columns (not content, see `source_writer.FILLED_IN_PLACE`) of stored rows,
        each row a dict of `row_id` and the columns' values, without a new version."""
        if not rows:
            return
        columns = [name for name in rows[0] if name != "row_id"]
        statement = (
            update(table).where(table.c.row_id == bindparam("target_row"))
            .values({name: bindparam(f"new_{name}") for name in columns})
        )
        self.connection.execute(
            statement, [{"target_row": row["row_id"], **{f"new_{name}": row[name] for name in columns}} for row in rows]
        )

    def _execute_insert(
        self, table: Table, rows: Sequence[dict[str, Any]], row_ids: list[int], new_lineages: bool
    ) -> None:
        """Rows are taken a batch at a time: a sequence that makes its rows when sliced (see
        source_writer) never has them all in memory."""
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start:start + BATCH_ROWS]
            for row, row_id in zip(batch, row_ids[start:start + BATCH_ROWS]):
                row["row_id"] = row_id
                if new_lineages:
                    row["id"] = row_id
                row["rev_from"] = self.pending
            insert_rows(self.connection, table, batch)

    def close(self, table: Table, condition: ColumnElement[bool]) -> int:
        """End the working versions of the rows matching `condition`; returns how many.

        A row made in this same pending revision was never committed: it is deleted, not kept
        as history.
        """
        live = and_(condition, table.c.rev_to.is_(None))
        dropped = self.connection.execute(
            delete(table).where(live, table.c.rev_from == self.pending)
        ).rowcount
        closed = self.connection.execute(
            update(table).where(live).values(rev_to=self.pending)
        ).rowcount
        return dropped + closed

    def close_rows(self, table: Table, row_ids: Iterable[int]) -> int:
        ids = list(row_ids)
        total = 0
        for start in range(0, len(ids), BATCH_ROWS):
            total += self.close(table, table.c.row_id.in_(ids[start:start + BATCH_ROWS]))
        return total
