"""dsrepo: COCO datasets kept in a database (SQLite or PostgreSQL).

The Python API; the `dsrepo` command line is a thin layer over these functions.

    from repo import Project, import_dataset, export_dataset, commit

    project = Project.create("myproject")                  # or Project.open("myproject")
    import_dataset(project, "coco", "path/to/coco", name="vendor_a")
    commit(project, "import vendor A")
    export_dataset(project, "coco", "out", save_images=True)

Names are imported on first use, so that a module deep in the package (e.g. `repo.coco.panoptic`)
does not pull in the database layer with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "BusyError": "repo.errors", "ConfigError": "repo.errors", "ConflictError": "repo.errors",
    "DsrepoError": "repo.errors", "InputError": "repo.errors", "NotFoundError": "repo.errors",
    "OptionError": "repo.errors", "OutputError": "repo.errors", "QueryError": "repo.errors", "SchemaError": "repo.errors",
    "UnsupportedError": "repo.errors",
    "Project": "repo.project",
    "DatasetBuilder": "repo.builder", "BuiltItem": "repo.builder",
    "ImportResult": "repo.importing", "import_dataset": "repo.importing",
    "ExportResult": "repo.formats.registry", "export_dataset": "repo.exporting", "convert": "repo.exporting",
    "update_source": "repo.sources", "remove_source": "repo.sources",
    "Revision": "repo.store.revisions", "SourceStatus": "repo.history", "DiffRow": "repo.history",
    "checkout": "repo.history", "commit": "repo.history", "diff_revisions": "repo.history", "log": "repo.history",
    "status": "repo.history", "tag": "repo.history",
    "rename_label": "repo.labels", "merge_labels": "repo.labels", "delete_label": "repo.labels",
    "load_label_map": "repo.labels",
    "MergeResult": "repo.merge", "merge_sources": "repo.merge",
    "QueryResult": "repo.query", "open_query": "repo.query", "run_query": "repo.query",
    "Stats": "repo.stats", "compute_stats": "repo.stats",
    "ProjectSummary": "repo.info", "summarize": "repo.info",
    "Progress": "repo.progress", "Silent": "repo.progress",
    "Format": "repo.formats.registry", "FormatOption": "repo.formats.registry", "list_formats": "repo.formats.registry",
    "get_format": "repo.formats.registry", "register": "repo.formats.registry",
    "Annotation": "repo.dataset", "Item": "repo.dataset", "find_items": "repo.dataset", "get_item": "repo.dataset",
    "read_items": "repo.dataset",
    "RenderResult": "repo.render", "render_item": "repo.render",
    "DiffDetails": "repo.changes", "diff_details": "repo.changes",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'repo' has no attribute '{name}'")
    return getattr(import_module(target), name)
