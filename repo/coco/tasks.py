"""COCO task and format names, and how a file name tells its task and subset."""

from __future__ import annotations

from pathlib import PurePath

from repo.errors import InputError

# The order in which tasks are read and written (Datumaro's task order).
TASKS: tuple[str, ...] = (
    "instances", "person_keypoints", "captions", "labels", "image_info", "panoptic", "stuff",
)

# Datumaro's format names: `coco` reads and writes every task, `coco_<task>` one.
FORMAT_TASKS: dict[str, tuple[str, ...]] = {"coco": TASKS} | {f"coco_{task}": (task,) for task in TASKS}

# Tasks whose annotations point at categories (and so whose files declare them).
LABELLED_TASKS = frozenset({"instances", "person_keypoints", "labels", "panoptic", "stuff"})

DEFAULT_SUBSET = "default"


def split_file_name(name: str) -> tuple[str, str] | None:
    """`instances_val2017.json` -> ("instances", "val2017"); None if no task prefix matches.

    The subset is everything after `<task>_`, a year included, as Datumaro documents it.
    """
    stem = PurePath(name).stem if name.endswith(".json") else None
    if not stem:
        return None
    for task in TASKS:
        prefix = task + "_"
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return task, stem[len(prefix):]
    return None


def checked_subset(subset: str, shown: str) -> str:
    """The subset, if it can be a folder name: it becomes images/<subset>/ at export, so '.',
    '..' and names holding a path separator are refused (`shown` names the file)."""
    if subset in (".", "..") or "/" in subset or "\\" in subset:
        raise InputError(
            shown, None, None, f"the subset '{subset}' taken from the file name is not a safe folder name; rename the file"
        )
    return subset


def file_name_for(task: str, subset: str) -> str:
    return f"{task}_{subset}.json"
