"""Label changes: rename a label, merge labels into one, delete a label with its annotations.

Each is one transaction and a change like any other (see `repo.store.labelling`).
"""

from __future__ import annotations

from repo.errors import ConflictError
from repo.project import Project
from repo.store import labelling
from repo.store.versions import Stamp


def rename(project: Project, old: str, new: str) -> None:
    with project.writing() as connection:
        stamp = Stamp.begin(connection)
        labelling.rename_label(stamp, labelling.require_label(connection, old), new)


def merge(project: Project, names: list[str], into: str) -> None:
    """Merge labels `names` into `into` (which is created by renaming the first if missing)."""
    with project.writing() as connection:
        stamp = Stamp.begin(connection)
        labels = [labelling.require_label(connection, name) for name in dict.fromkeys(names)]
        if any(label.name == into for label in labels):
            raise ConflictError(f"cannot merge label '{into}' into itself")
        target = labelling.live_label(connection, into)
        if target is None:
            labelling.rename_label(stamp, labels[0], into)
            labels = labels[1:]
            target = labelling.require_label(connection, into)
        for label in labels:
            labelling.merge_label(stamp, label, target)


def delete(project: Project, name: str) -> int:
    """Delete a label, its categories and their annotations; returns the annotations removed."""
    with project.writing() as connection:
        stamp = Stamp.begin(connection)
        return labelling.delete_label(stamp, labelling.require_label(connection, name))
