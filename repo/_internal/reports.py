"""Writing the JSON reports a user asks for (skipped records, merge conflicts, reindex maps).

A report belongs with the change it describes: written after the commit, a report that cannot
be written loses the list of skipped records of a committed import; written in place before
it, a failed commit leaves a report of a change that never happened. So a report is written
to a temporary file beside its place before the commit (a path that cannot be written then
fails the action and nothing is committed) and moved into place after it (one rename in the
same folder); when the action fails, the temporary file is removed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from repo.errors import OutputError


class StagedReports:
    """Reports written beside their place, to be moved there (`publish`) or dropped (`discard`)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temporary file, final path)

    def write(self, path: Path, document: Any) -> None:
        """Write `document` as indented JSON to a temporary file beside `path`; a path that
        cannot be written is an OutputError now, before anything is committed."""
        path = Path(path)
        if path.is_dir():
            raise OutputError(f"{path}: cannot be written (it is a folder)")
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
            self._pending.append((temporary, path))
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:
            raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None

    def publish(self) -> None:
        """Move every report into place (after the commit)."""
        pending, self._pending = self._pending, []
        for temporary, path in pending:
            try:
                os.replace(temporary, path)
            except OSError as exc:
                raise OutputError(
                    f"{path}: cannot be written ({exc.strerror or exc}); the change is committed and the "
                    f"report is in {temporary}"
                ) from None

    def discard(self) -> None:
        """Remove the temporary files (the action failed: nothing to report)."""
        pending, self._pending = self._pending, []
        for temporary, _ in pending:
            temporary.unlink(missing_ok=True)


@contextmanager
def staged_reports() -> Iterator[StagedReports]:
    """Reports published when the block ends well, discarded when it raises. Open it outside
    the action's transaction, so that the transaction commits first:
    `with staged_reports() as reports, project.writing() as connection: ...`."""
    reports = StagedReports()
    try:
        yield reports
    except BaseException:
        reports.discard()
        raise
    reports.publish()

