"""The format registry: the one seam through which every format plugs into dsrepo.

A format is registered once, as data: its name, a line of help, a reader (import support), a
writer (export support) and the options each takes. The command line builds `-f` choices,
`--help`, the options accepted after `--` (and before it) from the registry; `import_dataset`,
`update_source`, `export_dataset` and `convert` find the reader or writer and check the options
here. Nothing else in dsrepo names a format.

Adding a format
---------------
1. Write one module, `repo/formats/NAME.py`, that ends with `register(Format(...))`, and its
   tests (`tests/test_format_NAME.py`).
2. Add the module to `BUILTIN` in `repo/formats/__init__.py` (one line).

A writer is a function `write(context: ExportContext) -> ExportResult`. It runs inside the
export's read transaction and receives, in the context:

- `connection` and `snapshot`: the project database and the revision to export (the working
  state, or `--rev`). Read with `repo.store.fetch` (sources, files, images and annotations in
  file order, streamed), with the query views at that snapshot (`repo.query.annotations_view`
  and `items_view`), or through `repo._internal.compose`, which composes the union of the
  stored COCO files of a task and subset as COCO objects (the COCO writer does this);
- `selected`: the row ids of the annotations `--where` kept (`annotations_v.row_id`), or None
  for all; images and categories are written regardless;
- `out_dir`: the folder to write into: a new one beside the output folder, renamed into place
  when the writer returns (see `repo._internal.output`); build every path with
  `context.output_path(...)`, which refuses paths that leave it, and copy images with
  `repo.exporting.copy_image`;
- `reports`: files the user asked for outside the output folder (a reindex map): write them
  with `context.reports.write(path, document)`; they are moved into place after the export;
- `options`: the format's export options, checked and with their defaults (a dict by option
  name);
- `progress`: a `repo.progress.Progress`; call `start(label, total)` and `advance()`.

A reader is a function `open_reader(request: ImportRequest) -> DatasetReader`. It finds the
files under `request.path` (or `request.path / request.relpath`) and raises a DsrepoError if
there are none; nothing is read yet and no transaction is open. The import then calls
`reader.read(policy, progress, previous)`, which yields one `ReadFile` per file: its validated records
(`repo.model.records.TaskFile`, with content hashes and masks) and where its images are. A bad
record goes to `policy.report(InputError(...))`, which fails the import or, with
`--on-error skip`, drops the record. The import writes the records, finds and hashes the
images, applies `--label-map`, and stores image files when `reader.store_images` is true.
An update passes `previous` (see `PreviousImport`): a reader may then yield an `UnchangedFile`
for a file whose bytes are those last read, and reuse the masks of unchanged PNGs.

Options are declared with `flag`, `boolean`, `choice`, `comma_list`, `path`, `integer` and
`text`, e.g.

    flag("save_images", "--save-images", "--save-media", help="Also write the images.")
    boolean("reindex", "--reindex", help="New ids 1..N.")   # --reindex, --reindex true|false|1|0
    choice("segmentation_mode", "--segmentation-mode", choices=("guess", "polygons", "mask"),
           default="guess", help="...")
    comma_list("tasks", "--tasks", choices=TASKS, help="...")   # --tasks instances,captions

`name` is the keyword of the Python API (`export_dataset(..., save_images=True)`); the flags
are the command line's spellings (the first one is shown in messages).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection

from repo._internal.reports import StagedReports
from repo.errors import NotFoundError, OptionError
from repo.model.paths import output_path
from repo.model.policy import ErrorPolicy
from repo.model.records import KeptPng, TaskFile
from repo.model.windows import LastWindows
from repo.progress import Progress
from repo.store.file_digests import FileDigests
from repo.store.versions import Snapshot

# Option kinds: how a value is given on the command line and in Python.
FLAG = "flag"  # a switch: `--save-images`; True or False in Python
BOOLEAN = "boolean"  # a switch that also takes a value: `--reindex`, `--reindex false`
CHOICE = "choice"  # one of `choices`
COMMA_LIST = "comma_list"  # `--tasks a,b`; a sequence of strings (or "a,b") in Python
PATH = "path"  # a file or folder; str or os.PathLike in Python
TEXT = "text"  # a string
INTEGER = "integer"  # a whole number, at least `minimum`

_TRUE = frozenset({"true", "1", "yes", "y", "on", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "f"})

# Options of the import, export, update and convert commands themselves: not a format's.
RESERVED_FLAGS = frozenset({
    "--project", "--db", "--quiet", "--help", "--format", "--input-format", "--input", "--output", "--name",
    "--relpath", "--on-error", "--error-report", "--label-map", "--overwrite", "--rev", "--where",
})
# Keywords of the API functions that take format options: a format option must not take one.
RESERVED_NAMES = frozenset({
    "project", "format_name", "path", "name", "relpath", "on_error", "error_report", "label_map",
    "progress", "out_dir", "rev", "where", "overwrite", "options",
})


@dataclass(frozen=True)
class FormatOption:
    """One option of a format, declared as data (see the module docstring for the helpers)."""

    name: str
    flags: tuple[str, ...]
    kind: str
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    requires: str | None = None  # the name of a boolean option that must be on
    minimum: int | None = None  # the smallest value of an integer option

    @property
    def shown(self) -> str:
        return self.flags[0]

    @property
    def metavar(self) -> str | None:
        """How help shows the option's value (None for a switch)."""
        if self.kind == FLAG:
            return None
        if self.kind == BOOLEAN:
            return "[true|false]"
        if self.kind == CHOICE:
            return "|".join(self.choices)
        if self.kind == COMMA_LIST:
            return ",".join(self.choices[:2]) + ",..." if self.choices else "A,B,..."
        return {PATH: "PATH", INTEGER: "N"}.get(self.kind, "TEXT")

    def convert(self, value: Any) -> Any:
        """The option's value from a Python caller or the command line, checked."""
        if self.kind in (FLAG, BOOLEAN):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            if type(value) is int and value in (0, 1):
                return bool(value)
            raise self._invalid(value, "true or false")
        if value is None:
            return None
        if self.kind == CHOICE:
            if value not in self.choices:
                raise self._invalid(value, "one of " + ", ".join(self.choices))
            return value
        if self.kind == COMMA_LIST:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, Sequence) or not all(isinstance(item, str) for item in items):
                raise self._invalid(value, "names separated by commas, or a list of names")
            items = tuple(item.strip() for item in items if item.strip())
            unknown = [item for item in items if self.choices and item not in self.choices]
            if unknown:
                raise self._invalid(unknown[0], "names from " + ", ".join(self.choices))
            return items
        if self.kind == INTEGER:
            number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
            if type(number) is not int or (self.minimum is not None and number < self.minimum):
                least = f" of at least {self.minimum}" if self.minimum is not None else ""
                raise self._invalid(value, f"a whole number{least}")
            return number
        if self.kind == PATH:
            if not isinstance(value, (str, os.PathLike)):
                raise self._invalid(value, "a path")
            return Path(value)
        if not isinstance(value, str):
            raise self._invalid(value, "a string")
        return value

    def _invalid(self, value: Any, expected: str) -> OptionError:
        return OptionError(f"option {self.shown} ({self.name}): {value!r} is not valid; expected {expected}")


def _option(kind: str, name: str, flags: tuple[str, ...], help: str, **details: Any) -> FormatOption:
    if not flags or not all(flag.startswith("--") for flag in flags):
        raise ValueError(f"format option {name}: give its command-line flags, e.g. '--{name.replace('_', '-')}'")
    if name in RESERVED_NAMES:
        raise ValueError(f"format option {name}: the name is a keyword of the API functions")
    taken = set(flags) & RESERVED_FLAGS
    if taken:
        raise ValueError(f"format option {name}: {sorted(taken)[0]} is an option of the commands themselves")
    return FormatOption(name, flags, kind, help, **details)


def flag(name: str, *flags: str, help: str) -> FormatOption:
    """A switch, off unless given: `--save-images`."""
    return _option(FLAG, name, flags, help, default=False)


def boolean(name: str, *flags: str, help: str, default: bool = False) -> FormatOption:
    """A switch that also takes a value, as Datumaro's: `--reindex` (on), `--reindex false`,
    `--reindex 1`. On the command line a bare one must come last or before another option."""
    return _option(BOOLEAN, name, flags, help, default=default)


def choice(name: str, *flags: str, choices: Sequence[str], default: str | None, help: str) -> FormatOption:
    """One value of a fixed set: `--segmentation-mode mask`."""
    return _option(CHOICE, name, flags, help, default=default, choices=tuple(choices))


def comma_list(name: str, *flags: str, help: str, choices: Sequence[str] = ()) -> FormatOption:
    """Names separated by commas: `--tasks instances,captions` (a tuple in Python); `choices`,
    if given, are the names allowed."""
    return _option(COMMA_LIST, name, flags, help, default=(), choices=tuple(choices))


def path(name: str, *flags: str, help: str, requires: str | None = None) -> FormatOption:
    """A file or folder: `--reindex-map ids.json` (a Path in Python). `requires` names a
    boolean option that must be on for this one to be given."""
    return _option(PATH, name, flags, help, requires=requires)


def integer(name: str, *flags: str, help: str, default: int, minimum: int | None = None) -> FormatOption:
    """A whole number: `--row-group-rows 5000`."""
    return _option(INTEGER, name, flags, help, default=default, minimum=minimum)


def text(name: str, *flags: str, help: str, default: str | None = None) -> FormatOption:
    """A string: `--image-ext .png`."""
    return _option(TEXT, name, flags, help, default=default)


# -- what readers and writers receive and give -----------------------------------------------

@dataclass(frozen=True)
class ImportRequest:
    """What a reader is asked to read."""

    format: str
    path: Path  # as the user gave it (messages show it so)
    relpath: str | None  # a file or folder inside `path`, or None
    options: Mapping[str, Any]  # the format's import options, checked, defaults filled


@dataclass
class ReadFile:
    """One file a reader read: its records, and where its images are."""

    task_file: TaskFile
    shown_as: str  # how messages and the import's result name the file
    image_dirs: Sequence[Path]  # folders that may hold its images, most specific first
    notes: Sequence[str] = ()  # what an update did not redo (e.g. PNGs not decoded again)


@dataclass(frozen=True)
class UnchangedFile:
    """A file an update did not read: its bytes (and its PNGs') are those last read."""

    task: str
    subset: str
    shown_as: str


class PreviousImport(Protocol):
    """What an update knows of the files the source was last read from (an import: nothing,
    but the digests of files the project has read)."""

    digests: FileDigests  # files' digests, known again by their `stat`; taken ones are remembered

    def unchanged(self, task: str, subset: str, sha256: str) -> bool:
        """Whether a file with these bytes can be left unread: its rows are what they gave."""
        ...

    def png_digests(self, task: str, subset: str) -> Mapping[str, str | None]:
        """The SHA-256 of each panoptic PNG of the file as last read, by PNG name (None: not
        known); an unchanged panoptic file is left unread only if its PNGs are too."""
        ...

    def kept_pngs(self, task: str, subset: str) -> Mapping[str, KeptPng]:
        """The file's panoptic PNGs as last imported, by PNG name (those whose stored
        segments are still the ones cut from them)."""
        ...

    def last_windows(self, task: str, subset: str) -> LastWindows | None:
        """The annotations windows of the file as last read in windows, with the records its
        rows still hold, for a big file to be read again only where it changed."""
        ...


class DatasetReader(Protocol):
    """The files a reader found, read one at a time (memory holds one file)."""

    root: Path  # the dataset folder: the source's origin; image paths are stored relative to it
    store_images: bool  # whether the import stores the image files in the database

    def read(
        self, policy: ErrorPolicy, progress: Progress, previous: PreviousImport | None = None
    ) -> Iterator[ReadFile | UnchangedFile]: ...


@dataclass
class ExportContext:
    """What a writer receives (see the module docstring)."""

    format: str
    connection: Connection
    snapshot: Snapshot
    selected: set[int] | None
    out_dir: Path
    options: Mapping[str, Any]
    progress: Progress
    reports: StagedReports = field(default_factory=StagedReports)

    def output_path(self, *parts: str) -> Path:
        """A path inside the output folder; an InputError for one that would leave it."""
        return output_path(self.out_dir, *parts)


@dataclass
class ExportResult:
    """What an export wrote: files, numbers of images (distinct (subset, file name) pairs, however
    many files list them), annotations and PNGs, copied images."""

    files: list[Path] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    pngs: int = 0
    saved_images: int = 0
    unavailable_images: list[str] = field(default_factory=list)  # subset/file_name of images not found
    notes: list[str] = field(default_factory=list)  # what the format left out or warns about, a line each
    iou_line: str | None = None  # --segmentation-mode polygons: how closely polygons draw their masks
    emptied: list[str] = field(default_factory=list)  # annotations --crop-covered left without pixels
    image_losses: list[str] = field(default_factory=list)  # what --image-ext changed in saved images
    derived: list[str] = field(default_factory=list)  # files made from another task's files
    left_out: list[str] = field(default_factory=list)  # annotations a derived file could not hold


Reader = Callable[[ImportRequest], DatasetReader]
Writer = Callable[[ExportContext], ExportResult]


# -- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Format:
    """A registered format: import support if it has a reader, export support if a writer."""

    name: str
    help: str
    reader: Reader | None = None
    writer: Writer | None = None
    import_options: tuple[FormatOption, ...] = ()
    export_options: tuple[FormatOption, ...] = ()

    def import_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The import options of a call, checked, with defaults for the rest."""
        return _settings(self.name, "import", self.import_options, given)

    def export_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The export options of a call, checked, with defaults for the rest."""
        return _settings(self.name, "export", self.export_options, given)


def _settings(format_name: str, role: str, declared: tuple[FormatOption, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    by_name = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(f"{o.name} ({o.shown})" for o in declared) or "none"
        raise OptionError(f"format '{format_name}' has no {role} option '{unknown[0]}' (its {role} options: {valid})")
    settings = {name: option.convert(given[name]) if name in given else option.default for name, option in by_name.items()}
    for option in declared:
        if option.requires and settings[option.name] is not None and not settings[option.requires]:
            raise OptionError(f"option {option.shown} needs {by_name[option.requires].shown}")
    return settings


_FORMATS: dict[str, Format] = {}
_BUILTIN_LOADED = False


def register(format: Format) -> Format:
    """Make a format known. Names are unique. The command line parses the options of all
    formats at once, so an option name means the same flags, kind and choices in every format
    that declares it (its default and help may differ), and a flag belongs to one option."""
    if format.name in _FORMATS:
        raise ValueError(f"format '{format.name}' is already registered")
    for role in ("import_options", "export_options"):
        for option in getattr(format, role):
            for other in _FORMATS.values():
                for known in getattr(other, role):
                    same_name = known.name == option.name
                    if same_name and (known.flags, known.kind, known.choices) != (option.flags, option.kind, option.choices):
                        raise ValueError(
                            f"format '{format.name}' declares option '{option.name}' unlike format '{other.name}' "
                            "(flags, kind and choices must agree)"
                        )
                    shared = set(known.flags) & set(option.flags)
                    if shared and not same_name:
                        raise ValueError(
                            f"format '{format.name}': {sorted(shared)[0]} is option '{known.name}' of format "
                            f"'{other.name}'"
                        )
    _FORMATS[format.name] = format
    return format


def list_formats() -> list[Format]:
    """Every registered format, in registration order (the built-in ones are registered on
    first use, so that importing dsrepo stays light)."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from repo.formats import BUILTIN

        for module in BUILTIN:
            import_module(module)
    return list(_FORMATS.values())


def get_format(name: str, *, role: str | None = None) -> Format:
    """The format named `name`; with `role` ("import" or "export"), one that supports it."""
    known = [f for f in list_formats() if role is None or (f.reader if role == "import" else f.writer)]
    found = next((f for f in known if f.name == name), None)
    if found is None:
        what = f"{role} format" if role else "format"
        raise NotFoundError(f"unknown {what} '{name}' (known: {', '.join(f.name for f in known)})")
    return found
