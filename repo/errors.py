"""The errors a user can cause.

Every mistake a user can make (a broken file, an unknown revision, a name that is taken)
raises a subclass of `DsrepoError`. The CLI prints its message as one line on stderr and exits
with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DsrepoError(Exception):
    """A user-facing error: the message says what is wrong and, where it can, what to do."""


class InputError(DsrepoError):
    """A dataset file (JSON, PNG, image) is not what the format requires.

    The message names the file, the record and the field, so the user can find and fix it.
    """

    def __init__(self, file: str, record: str | None, field: str | None, problem: str):
        self.file = file
        self.record = record
        self.field = field
        self.problem = problem
        where = [file]
        if record:
            where.append(record)
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {problem}")


class ConflictError(DsrepoError):
    """The request clashes with what the project holds (a taken name, colliding ids, ...)."""


class NotFoundError(DsrepoError):
    """A source, revision, tag or label that the user named does not exist."""


class SchemaError(DsrepoError):
    """The project database has a schema this version of dsrepo cannot use as it is."""


class BusyError(DsrepoError):
    """Another process holds the project's write lock for longer than we are willing to wait."""
