"""Where a COCO dataset keeps its files, for reading and for writing.

dsrepo writes, and reads first, the layout of COCO and of Datumaro's documentation:

    <root>/annotations/<task>_<subset>.json
    <root>/annotations/panoptic_<subset>/<png file_name>
    <root>/images/<subset>/<file_name>    (or <root>/images/<file_name>, or beside the JSON)

A folder without `annotations/<task>_<subset>.json` files is read in the other layouts
Datumaro imports, first match wins:

- task files directly in the folder (`<root>/<task>_<subset>.json`);
- Roboflow: `<root>/<subset>/_annotations.coco.json`, images beside each file (any depth; the
  subset is the name of the file's folder);
- relaxed COCO (Kaggle's): one JSON file of any name in the folder, images beside it, subset
  `default`.

MMDetection's layout is COCO's with the images in `<root>/<subset>/`: it is found as COCO's,
and `<root>/<subset>/` is one more place to look for images. Roboflow and relaxed files hold
instances for the `coco` format (as Datumaro reads them), and the task of a task format.

A task format given a single file accepts any file name; a name of the form
`<task>_<subset>.json` keeps its subset, any other name gets the subset `default`. `subset`
(the `--subset` option) names the subset of a single file instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from repo.coco.meta import META_FILE
from repo.coco.tasks import DEFAULT_SUBSET, FORMAT_TASKS, TASKS, checked_subset, file_name_for, split_file_name
from repo.errors import ConflictError, InputError, NotFoundError, OptionError
from repo.model.paths import output_path

ROBOFLOW_FILE = "_annotations.coco.json"


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
        """Folders to look for images in, most specific first (the last but one is MMDetection's)."""
        candidates = [
            self.root / "images" / self.subset, self.root / "images", self.root / self.subset, self.path.parent,
        ]
        return [folder for folder in dict.fromkeys(candidates) if folder.is_dir()]


def _root_of(json_path: Path) -> Path:
    parent = json_path.parent
    return parent.parent if parent.name == "annotations" else parent


def discover(
    format_name: str, path: Path, relpath: str | None = None, subset: str | None = None
) -> list[AnnotationFile]:
    """The annotation files a format reads from PATH (optionally PATH/RELPATH), in task order.

    `subset` names the subset of the one file found (a file, or a folder holding one)."""
    tasks = FORMAT_TASKS[format_name]
    shown = str(path)
    if relpath:
        path = path / relpath
        shown = os.path.join(shown, relpath)
    if not path.exists():
        raise NotFoundError(f"{shown}: no such file or folder")
    if path.is_file():
        found = [_single_file(format_name, tasks, path, shown)]
    else:
        found = _task_files(path, shown, tasks) or _roboflow_files(path, shown, tasks) or _relaxed_files(path, shown, tasks)
    if not found:
        wanted = ", ".join(f"{t}_<subset>.json" for t in tasks) if len(tasks) < 3 else "<task>_<subset>.json"
        raise NotFoundError(
            f"{shown}: no {format_name} annotation files found (looked for annotations/{wanted}, "
            f"<subset>/{ROBOFLOW_FILE}, or one .json file beside the images)"
        )
    if subset is not None:
        if len(found) != 1:
            raise OptionError(
                f"{shown}: --subset names the subset of one annotation file, and this folder holds "
                f"{len(found)}; import one of them (-r FILE) with --subset"
            )
        found = [replace(found[0], subset=subset)]
    return found


def _task_files(path: Path, shown: str, tasks: tuple[str, ...]) -> list[AnnotationFile]:
    """COCO's layout: `annotations/<task>_<subset>.json`, or the same files in the folder itself."""
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    shown_folder = shown if folder == path else os.path.join(shown, "annotations")
    found: list[AnnotationFile] = []
    for task in tasks:
        for json_path in sorted(folder.glob(f"{task}_*.json")):
            parsed = split_file_name(json_path.name)
            if parsed is None or parsed[0] != task:
                continue  # e.g. person_keypoints_x.json does not belong to a task "person"
            shown_file = os.path.join(shown_folder, json_path.name)
            subset = checked_subset(parsed[1], shown_file)
            found.append(AnnotationFile(task, subset, json_path, shown_file, _root_of(json_path)))
    return found


def _roboflow_files(path: Path, shown: str, tasks: tuple[str, ...]) -> list[AnnotationFile]:
    """Roboflow's layout: `<subset>/_annotations.coco.json` at any depth, images beside it."""
    found: list[AnnotationFile] = []
    subsets: dict[str, Path] = {}
    for json_path in sorted(path.rglob(ROBOFLOW_FILE)):
        subset = json_path.parent.name
        if subset in subsets:
            raise ConflictError(
                f"{shown}: {subsets[subset].relative_to(path)} and {json_path.relative_to(path)} both hold "
                f"subset '{subset}'; import them as two sources (-r FOLDER)"
            )
        subsets[subset] = json_path
        shown_file = os.path.join(shown, str(json_path.relative_to(path)))
        found.append(AnnotationFile(_relaxed_task(tasks), subset, json_path, shown_file, path))
    return found


def _relaxed_files(path: Path, shown: str, tasks: tuple[str, ...]) -> list[AnnotationFile]:
    """Relaxed COCO: JSON files of any name in the folder (not task files, not dataset_meta.json)."""
    found = [
        AnnotationFile(_relaxed_task(tasks), DEFAULT_SUBSET, json_path, os.path.join(shown, json_path.name), path)
        for json_path in sorted(path.glob("*.json"))
        if json_path.name != META_FILE and split_file_name(json_path.name) is None
    ]
    if len(found) > 1:
        names = ", ".join(file.path.name for file in found)
        raise ConflictError(
            f"{shown}: several annotation files of no COCO task name ({names}); import each with "
            "-r FILE --subset NAME"
        )
    return found


def _relaxed_task(tasks: tuple[str, ...]) -> str:
    """The task of a file whose name does not tell it: instances for `coco`, as Datumaro reads
    Roboflow's and Kaggle's COCO files, else the task format's own."""
    return tasks[0] if len(tasks) == 1 else "instances"


def _single_file(format_name: str, tasks: tuple[str, ...], path: Path, shown: str) -> AnnotationFile:
    parsed = split_file_name(path.name)
    if len(tasks) == 1:
        task = tasks[0]
        subset = checked_subset(parsed[1], shown) if parsed and parsed[0] == task else DEFAULT_SUBSET
        return AnnotationFile(task, subset, path, shown, _root_of(path))
    if path.name == ROBOFLOW_FILE:
        return AnnotationFile("instances", DEFAULT_SUBSET, path, shown, _root_of(path))
    if parsed is None:
        names = ", ".join(f"coco_{t}" for t in TASKS)
        raise InputError(
            shown, None, None,
            f"cannot tell the task from the file name (expected <task>_<subset>.json); "
            f"import it with a task format ({names})",
        )
    return AnnotationFile(parsed[0], checked_subset(parsed[1], shown), path, shown, _root_of(path))


def annotation_path(out_dir: Path, task: str, subset: str) -> Path:
    return output_path(out_dir, "annotations", file_name_for(task, subset))
