"""dsrepo: COCO datasets kept in a database (SQLite or PostgreSQL).

The Python API; the `dsrepo` command line is a thin layer over these functions.

    from pathlib import Path
    from repo import Project, import_dataset, export_dataset, commit

    project = Project.create(Path("myproject"))            # or Project.open(...)
    import_dataset(project, "coco", Path("path/to/coco"), name="vendor_a")
    commit(project, "import vendor A")
    export_dataset(project, "coco", Path("out"))
"""

from repo.diff import diff
from repo.errors import BusyError, ConflictError, DsrepoError, InputError, NotFoundError, SchemaError
from repo.exporting import ExportOptions, export_dataset
from repo.history import checkout, commit, log, status, tag
from repo.importing import import_dataset, update_source
from repo.info import summarize
from repo.merge import MergeOptions, merge_sources
from repo.project import Project
from repo.query import run_query
from repo.sources import remove as remove_source
from repo.stats import compute as compute_stats

__all__ = [
    "BusyError", "ConflictError", "DsrepoError", "ExportOptions", "InputError", "MergeOptions",
    "NotFoundError", "Project", "SchemaError", "checkout", "commit", "compute_stats", "diff",
    "export_dataset", "import_dataset", "log", "merge_sources", "remove_source", "run_query",
    "status", "summarize", "tag", "update_source",
]
