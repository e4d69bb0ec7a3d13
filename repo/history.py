"""History of a project: commit, log, tag, status, checkout, diff.

History is linear and lives in the database: the storage side is `repo.store.revisions` (the
revision rows, references, moving the working state) and `repo.store.versions` (which row
versions a snapshot sees, and how a change writes them). Every action that changes data
leaves its rows stamped with the pending revision; `commit` names that state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from repo.errors import ConflictError, OptionError
from repo.project import Project
from repo.store import revisions, schema
from repo.store.revisions import Revision
from repo.store.sources import source_names_by_id
from repo.store.versions import head_seq

# Tables whose changes `status` and `log` report, in this order.
REPORTED = ("sources", "items", "annotations", "categories", "labels", "files")


@dataclass(frozen=True)
class SourceStatus:
    """Uncommitted changes of one source (or of the project-wide labels)."""

    source: str  # "(labels)" for project-wide labels
    changes: dict[str, dict[str, int]]  # table -> added / removed / changed


def commit(project: Project, message: str, *, allow_empty: bool = False) -> Revision:
    """Record the working state as a new revision; nothing to commit is an error unless
    `allow_empty`."""
    if not message.strip():
        raise OptionError("a commit needs a message (-m MESSAGE)")
    with project.writing(exclusive=True) as connection:
        pending = head_seq(connection) + 1
        changes = revisions.totals(revisions.pending_changes(connection, pending))
        if not changes and not allow_empty:
            raise ConflictError("nothing to commit: the working state equals HEAD (use --allow-empty to commit anyway)")
        return revisions.record(connection, pending, message, changes)


def log(project: Project, *, limit: int | None = None) -> list[Revision]:
    """Revisions, newest first (at most `limit`)."""
    with project.reading() as connection:
        return revisions.history(connection, limit)


def tag(project: Project, name: str, rev: str = "HEAD") -> Revision:
    """Name revision `rev` (HEAD, HEAD~N, a tag or a revision id) `name`."""
    with project.writing() as connection:
        seq = revisions.resolve(connection, rev)
        revisions.add_tag(connection, name, seq)
        return revisions.get(connection, seq)


def status(project: Project) -> list[SourceStatus]:
    """Uncommitted changes, per source: counts of added, removed and changed rows per table."""
    with project.reading() as connection:
        pending = head_seq(connection) + 1
        return _per_source(connection, revisions.pending_changes(connection, pending))


def _per_source(connection: Any, changes: dict[str, dict[Any, dict[str, int]]]) -> list[SourceStatus]:
    names = source_names_by_id(connection)
    grouped: dict[str, dict[str, dict[str, int]]] = {}
    for table in REPORTED:
        for source_id, counts in changes.get(table, {}).items():
            source = "(labels)" if source_id is None else names.get(source_id, f"#{source_id}")
            grouped.setdefault(source, {})[table] = counts
    return [SourceStatus(source, tables) for source, tables in grouped.items()]


def checkout(project: Project, rev: str, *, force: bool = False) -> Revision:
    """Make the working state what revision `rev` held; HEAD stays where it is. Uncommitted
    changes are an error unless `force` drops them."""
    with project.writing(exclusive=True) as connection:
        seq = revisions.resolve(connection, rev)
        pending = head_seq(connection) + 1
        if revisions.changed_rows(connection, pending):
            if not force:
                raise ConflictError(
                    "the working state has uncommitted changes (see `dsrepo status`); "
                    "commit them, or pass --force to drop them"
                )
            revisions.discard_pending(connection, pending)
        revisions.restore(connection, seq, pending)
        return revisions.get(connection, seq)


# -- diff -----------------------------------------------------------------------------------

# What `diff` compares, in the order it reports.
DIFF_KINDS = {"items": schema.items, "annotations": schema.annotations, "categories": schema.categories}


@dataclass(frozen=True)
class DiffRow:
    """Counts of one kind of record of one source and subset that differ between revisions."""

    source: str
    subset: str
    kind: str
    added: int
    removed: int
    changed: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def diff_revisions(project: Project, rev_a: str, rev_b: str | None = None) -> list[DiffRow]:
    """Items, annotations and categories added, removed and changed from `rev_a` to `rev_b`
    (None: the working state), per source and subset. A record is "changed" when its content
    hash or its place in the file differs."""
    with project.reading() as connection:
        before = revisions.snapshot(connection, rev_a)
        after = revisions.snapshot(connection, rev_b)
        names = source_names_by_id(connection)
        rows: list[DiffRow] = []
        for kind, table in DIFF_KINDS.items():
            counts = revisions.count_differences(connection, table, before, after)
            for (source_id, subset), (added, removed, changed) in counts.items():
                if added or removed or changed:
                    rows.append(DiffRow(names.get(source_id, f"#{source_id}"), subset, kind, added, removed, changed))
        rows.sort(key=lambda row: (row.source, row.subset, list(DIFF_KINDS).index(row.kind)))
        return rows
