"""Managing the sources of a project (importing and updating them lives in `importing`)."""

from __future__ import annotations

from repo.project import Project
from repo.store import sources
from repo.store.versions import VersionWriter


def remove(project: Project, name: str) -> None:
    """Remove a source from the working state; older revisions keep it."""
    with project.writing() as connection:
        versions = VersionWriter.begin(connection)
        sources.close_source(versions, sources.find_source(connection, name))
