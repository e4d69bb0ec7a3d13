"""File names from datasets, kept inside their folders.

A file name in a dataset (an image's `file_name`, a panoptic PNG's) is a path relative to the
dataset folder; one that is absolute or climbs out with `..` is refused at import, and every
path an export writes is checked to stay inside the output folder (symbolic links included).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from repo.errors import InputError
from repo.model.jsonio import describe


def unsafe_path_problem(name: str) -> str | None:
    """Why a file name from a dataset could write or read outside its folder, or None."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL character"
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.drive or flavour.root:
            return f"{describe(name)} is an absolute path; expected a path inside the dataset folder"
        if ".." in flavour.parts:
            return f"{describe(name)} climbs out of the dataset folder with '..'"
    return None


def output_path(out_dir: Path, *parts: str) -> Path:
    """A path inside the export folder; refuses anything that would land outside it."""
    target = out_dir.joinpath(*parts)
    resolved_out = out_dir.resolve()
    resolved = target.resolve()
    if resolved != resolved_out and resolved_out not in resolved.parents:
        raise InputError(str(target), None, None, "would be written outside the output folder; refused")
    return target
