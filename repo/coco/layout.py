"""Where a COCO dataset keeps its files, for reading and for writing.

    <root>/annotations/<task>_<subset>.json
    <root>/annotations/panoptic_<subset>/<png file_name>
    <root>/images/<subset>/<file_name>    (or <root>/images/<file_name>, or beside the JSON)

A task format given a single file accepts any file name; a name of the form
`<task>_<subset>.json` keeps its subset, any other name gets the subset `default`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from repo.coco.tasks import DEFAULT_SUBSET, FORMAT_TASKS, TASKS, file_name_for, split_file_name
from repo.errors import InputError, NotFoundError
from repo.model.paths import output_path


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation file to import, and where its images and PNGs live."""

    task: str
    subset: str
    path: Path
    shown_as: str  # how messages name the file: the path as the user gave it
    root: Path  # the dataset folder (parent of annotations/)

    @property
    def png_dir(self) -> Path:
        """Panoptic PNGs: the JSON's path without `.json`."""
        return self.path.with_suffix("")

    def image_dirs(self) -> list[Path]:
        """Folders to look for images in, most specific first."""
        candidates = [self.root / "images" / self.subset, self.root / "images", self.path.parent]
        return [folder for folder in dict.fromkeys(candidates) if folder.is_dir()]


def _root_of(json_path: Path) -> Path:
    parent = json_path.parent
    return parent.parent if parent.name == "annotations" else parent


def discover(format_name: str, path: Path, relpath: str | None = None) -> list[AnnotationFile]:
    """The annotation files a format reads from PATH (optionally PATH/RELPATH), in task order."""
    tasks = FORMAT_TASKS[format_name]
    shown = str(path)
    if relpath:
        path = path / relpath
        shown = os.path.join(shown, relpath)
    if not path.exists():
        raise NotFoundError(f"{shown}: no such file or folder")
    if path.is_file():
        return [_single_file(format_name, tasks, path, shown)]
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    shown_folder = shown if folder == path else os.path.join(shown, "annotations")
    found: list[AnnotationFile] = []
    for task in tasks:
        for json_path in sorted(folder.glob(f"{task}_*.json")):
            parsed = split_file_name(json_path.name)
            if parsed is None or parsed[0] != task:
                continue  # e.g. person_keypoints_x.json does not belong to a task "person"
            found.append(AnnotationFile(
                task, parsed[1], json_path, os.path.join(shown_folder, json_path.name), _root_of(json_path),
            ))
    if not found:
        wanted = ", ".join(f"{t}_<subset>.json" for t in tasks) if len(tasks) < 3 else "<task>_<subset>.json"
        raise NotFoundError(f"{shown}: no {format_name} annotation files found (looked for annotations/{wanted})")
    return found


def _single_file(format_name: str, tasks: tuple[str, ...], path: Path, shown: str) -> AnnotationFile:
    parsed = split_file_name(path.name)
    if len(tasks) == 1:
        task = tasks[0]
        subset = parsed[1] if parsed and parsed[0] == task else DEFAULT_SUBSET
        return AnnotationFile(task, subset, path, shown, _root_of(path))
    if parsed is None:
        names = ", ".join(f"coco_{t}" for t in TASKS)
        raise InputError(
            shown, None, None,
            f"cannot tell the task from the file name (expected <task>_<subset>.json); "
            f"import it with a task format ({names})",
        )
    return AnnotationFile(parsed[0], parsed[1], path, shown, _root_of(path))


def annotation_path(out_dir: Path, task: str, subset: str) -> Path:
    return output_path(out_dir, "annotations", file_name_for(task, subset))
