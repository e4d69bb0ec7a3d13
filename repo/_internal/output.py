"""An export's output folder, written whole or not at all.

Writing into `-o` itself leaves, after a failure or a kill, a folder of valid-looking files
with others missing (which a later import reads as a dataset), and `--overwrite` would leave an
earlier export's files beside the new ones. So an export writes into a new folder beside `-o`
(`.NAME.dsrepo-PID-TOKEN`, on the same file system, hence a rename away) and renames it into
place when the writer has finished. Until then `-o` is as it was; a failure removes the new
folder; with `--overwrite` the old `-o` is renamed aside, the new one put in its place and the
old one removed, so no stale file remains.

When the folder holding `-o` cannot be written but `-o` can, the new folder is made inside
`-o` and its entries replace `-o`'s at the end: a failure still leaves `-o` as it was.

A kill leaves the new folder behind (or, in the instant between the two renames of an
overwrite, the old `-o` aside): the next export to the same `-o` removes what a dead process
left there, putting an old `-o` back first if `-o` is missing.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repo.errors import ConflictError, OutputError

_STAGING = "new"  # the folder being written
_ASIDE = "old"  # an overwritten -o, between the two renames


@contextmanager
def staged_folder(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """A new, empty folder beside `out_dir` to write the export into; moved into place as
    `out_dir` when the block ends well, removed when it raises. `out_dir` must be missing or
    an empty folder unless `overwrite`."""
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.is_symlink():
        out_dir = out_dir.resolve()  # the user's own link: the export goes where it leads
    inside = False
    try:
        if out_dir.parent.is_dir():
            _clean_abandoned(out_dir)
        check_output(out_dir, overwrite)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = _new_sibling(out_dir, _STAGING)
        try:
            os.mkdir(staging)
        except PermissionError:
            if not out_dir.is_dir():
                raise
            inside = True  # -o exists in a folder we may not write: stage inside it
            staging = out_dir / staging.name
            os.mkdir(staging)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot be made ({exc.strerror or exc})") from None
    try:
        yield staging
        if inside:
            _move_up(staging, out_dir)
        else:
            _move_into_place(staging, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output(out_dir: Path, overwrite: bool) -> None:
    """Refuse an output path that is a file, or a folder that is not empty (unless `overwrite`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConflictError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConflictError(f"{out_dir} is not empty; choose an empty folder or pass --overwrite")


def _new_sibling(out_dir: Path, kind: str) -> Path:
    return out_dir.with_name(f".{out_dir.name}.dsrepo-{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _move_into_place(staging: Path, out_dir: Path, overwrite: bool) -> None:
    try:
        os.rename(staging, out_dir)  # out_dir missing, or an empty folder: replaced at once
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not overwrite:  # files appeared in it while we wrote
        raise ConflictError(f"{out_dir} is not empty; choose an empty folder or pass --overwrite")
    aside = _new_sibling(out_dir, _ASIDE)  # --overwrite of a folder with files
    os.rename(out_dir, aside)
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(aside, out_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _move_up(staging: Path, out_dir: Path) -> None:
    """The fallback when `out_dir`'s parent cannot be written: replace `out_dir`'s entries by
    the staged ones, one rename each (a kill in this last step can leave a mix)."""
    for entry in out_dir.iterdir():
        if entry != staging:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for entry in staging.iterdir():
        os.rename(entry, out_dir / entry.name)
    staging.rmdir()


def _clean_abandoned(out_dir: Path) -> None:
    """Remove the folders that killed exports to `out_dir` left beside it."""
    pattern = re.compile(rf"\.{re.escape(out_dir.name)}\.dsrepo-({_STAGING}|{_ASIDE})-(\d+)-[0-9a-f]+")
    for entry in out_dir.parent.iterdir():
        found = pattern.fullmatch(entry.name)
        if found is None or _alive(int(found.group(2))) or not entry.is_dir() or entry.is_symlink():
            continue
        if found.group(1) == _ASIDE and not out_dir.exists():
            os.rename(entry, out_dir)  # killed between the renames of an overwrite: -o comes back
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
