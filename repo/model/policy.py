"""What to do with a bad record: fail the import, or skip the record and report it."""

from __future__ import annotations

from repo.errors import InputError


class ErrorPolicy:
    """`fail` raises the first error; `skip` drops the bad record and remembers why.

    File-level problems (unreadable JSON, a section of the wrong type) always fail: there is
    no good record to keep from such a file.
    """

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.skipped: list[InputError] = []

    def report(self, error: InputError) -> None:
        if not self.skip:
            raise error
        self.skipped.append(error)
