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
    """The request clashes with what is there: a taken name, colliding ids, a folder or
    database that is not empty, uncommitted changes, nothing to commit."""


class NotFoundError(DsrepoError):
    """Something the user named does not exist: a project, a database, a dataset path, a
    source, a revision or tag, a label, a format."""


class SchemaError(DsrepoError):
    """The project database has a schema this version of dsrepo cannot use as it is."""


class BusyError(DsrepoError):
    """Another process holds the project's write lock for longer than we are willing to wait."""


class OutputError(DsrepoError):
    """A file or folder the user asked dsrepo to write cannot be written there."""


class UnsupportedError(DsrepoError):
    """The data cannot be written in the chosen format: a name, a count or an installed library
    the format needs is missing or out of its range."""


class OptionError(DsrepoError):
    """An argument of an action is invalid: an unknown format option or a bad value for one,
    an empty commit message, an unknown merge strategy."""


class ConfigError(DsrepoError):
    """The settings that choose or reach the database are unusable: a malformed URL or
    project settings file, a bad DSREPO_* environment variable, a server that refuses us."""


class QueryError(DsrepoError):
    """A user's SQL (`query`, `export --where`) failed or tried to write."""
