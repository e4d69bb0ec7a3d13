"""dsrepo: COCO datasets kept in a database (SQLite or PostgreSQL).

The Python API; the `dsrepo` command line is a thin layer over these functions.

    from pathlib import Path
    from repo import Project, import_dataset, export_dataset, commit

    project = Project.create(Path("myproject"))            # or Project.open(...)
    import_dataset(project, "coco", Path("path/to/coco"), name="vendor_a")
    commit(project, "import vendor A")
    export_dataset(project, "coco", Path("out"))

Names are imported on first use, so that a module deep in the package (a PNG worker process
imports only `repo.coco.panoptic`) does not pull in the database layer with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "BusyError": "repo.errors", "ConflictError": "repo.errors", "DsrepoError": "repo.errors",
    "InputError": "repo.errors", "NotFoundError": "repo.errors", "SchemaError": "repo.errors",
    "Project": "repo.project",
    "import_dataset": "repo.importing", "update_source": "repo.importing",
    "ExportOptions": "repo.exporting", "export_dataset": "repo.exporting",
    "checkout": "repo.history", "commit": "repo.history", "log": "repo.history", "status": "repo.history",
    "tag": "repo.history",
    "diff_revisions": "repo.history",
    "MergeOptions": "repo.merge", "merge_sources": "repo.merge",
    "run_query": "repo.query",
    "remove_source": ("repo.sources", "remove"),
    "compute_stats": ("repo.stats", "compute"),
    "summarize": "repo.info",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'repo' has no attribute '{name}'")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(import_module(module), attribute)
