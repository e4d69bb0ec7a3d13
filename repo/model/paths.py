"""File names from datasets, kept inside their folders.

A file name in a dataset (an image's `file_name`, a panoptic PNG's) is a path relative to the
dataset folder; one that is absolute or climbs out with `..` is refused at import, and every
path an export writes is checked to stay inside the output folder (symbolic links included).

Image files and panoptic PNGs stay inside their dataset folder, whatever symlinks say. A dataset handed over as
an archive can hold symlinks: `images/train/a.jpg -> /etc/passwd`, or `images/train ->
/home/someone`. Following them would store (`--copy-images`) or export (`--save-images`) files
that were never part of the dataset. So an image file counts only when its real path (every
symlink resolved) lies inside the real dataset folder; otherwise it is treated as missing (a
panoptic PNG's record is refused).
Symlinks that stay inside the folder are followed. The check is repeated at export time, for
the folder may have changed since the import, and files are opened without following a
symlink put in place after the check.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from repo.errors import InputError
from repo.model.jsonio import describe


# A relative path of plain names (letters, digits, `_`, `-`, `.`, none starting with `.`) joined
# by single `/`: nothing in it can be a root, a drive or `..`. Most names are such, and this
# test is twenty times cheaper than taking the path apart.
_PLAIN_RELATIVE = re.compile(r"[\w-][\w.-]*(?:/[\w-][\w.-]*)*", re.ASCII)


def unsafe_path_problem(name: str) -> str | None:
    """Why a file name from a dataset could write or read outside its folder, or None."""
    if _PLAIN_RELATIVE.fullmatch(name):
        return None
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


def real_file(path: Path, inside: Path | None) -> Path | None:
    """The real path of the file `path` names, if it exists and, symlinks resolved, lies inside
    the real folder `inside`; with `inside` None, `path` must already be real (absolute, and
    no symlink on the way). Else None."""
    try:
        os.stat(path)  # a missing file, common when a dataset comes without its images, in one call
        real = path.resolve(strict=True)
        if inside is None:
            if real != Path(os.path.abspath(path)):
                return None
        elif not real.is_relative_to(inside.resolve(strict=True)):
            return None
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    return real if real.is_file() else None


Stamp = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def stamp(status: os.stat_result) -> Stamp:
    """What must not change for a file to keep its bytes (see repo.store.file_digests); device
    and inode as signed 64 bits, which a database's BIGINT holds."""
    return _signed(status.st_dev), _signed(status.st_ino), status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _signed(number: int) -> int:
    return number - (1 << 64) if number >= 1 << 63 else number


class FolderFiles:
    """`real_file` for the many files of one dataset folder, with what `stat` says of each.

    Resolving a path walks it one component at a time, an `lstat` and some Python each; for
    thousands of images in a few directories that walk was most of finding them. Here each
    directory is resolved once; a file that is not itself a symlink has the real path of its
    directory plus its name. A symlink, or a name like `..`, takes the full walk."""

    def __init__(self, inside: Path):
        self.inside = inside
        self._inside_real: Path | None = None
        self._directories: dict[str, str | None] = {}  # directory -> its real path, None if outside or missing

    def find(self, path: str) -> tuple[str, os.stat_result] | None:
        """The real path of the file `path` names and its `stat`, if it exists, is a regular
        file and, symlinks resolved, lies inside the folder. Else None. (Paths as strings:
        pathlib's objects cost more than the lookups here.)"""
        try:
            status = os.lstat(path)  # a missing file, common when a dataset comes without its images, in one call
        except OSError:
            return None
        directory, name = os.path.split(path)
        if stat.S_ISLNK(status.st_mode) or name in ("", ".", ".."):
            real = real_file(Path(path), self.inside)
            if real is None:
                return None
            try:
                return str(real), os.stat(real)
            except OSError:
                return None
        if not stat.S_ISREG(status.st_mode):
            return None
        real_directory = self._real_directory(directory)
        return (os.path.join(real_directory, name), status) if real_directory is not None else None

    def _real_directory(self, directory: str) -> str | None:
        if directory not in self._directories:
            try:
                if self._inside_real is None:
                    self._inside_real = self.inside.resolve(strict=True)
                real = Path(directory).resolve(strict=True)
                self._directories[directory] = str(real) if real.is_relative_to(self._inside_real) else None
            except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
                self._directories[directory] = None
        return self._directories[directory]


def read_real_file(real: str | os.PathLike[str]) -> bytes:
    """The bytes of a file found by `real_file`, refusing a symlink swapped in since."""
    descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read()


def copy_real_file(real: Path, target: Path) -> None:
    """Copy a file found by `real_file` to `target`, a path the caller made or checked."""
    descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as source, open_new(target) as sink:
        shutil.copyfileobj(source, sink)


def open_new(target: Path) -> BinaryIO:
    """`target` opened for writing, never through a symlink: one found there is removed."""
    if target.is_symlink():
        target.unlink()
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    return os.fdopen(descriptor, "wb")
