"""The `dsrepo` command line: parse options, call the library, print. Nothing else lives here.

Formats, their `-f` choices and their options come from the registry
(`repo.formats.registry`). A user mistake (any DsrepoError) is printed as one line on stderr
with exit status 1; click's own usage errors (an unknown option, a format option the chosen
format does not take) exit with 2.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from repo.errors import DsrepoError, OptionError
from repo.formats.registry import (
    BOOLEAN,
    CHOICE,
    FLAG,
    PATH,
    ExportResult,
    Format,
    FormatOption,
    get_format,
    list_formats,
)
from repo.progress import Progress, Silent, eta_seconds, format_eta
from repo.project import Project
from repo.store.user_sql import DEFAULT_TIMEOUT, Rows

if TYPE_CHECKING:
    from repo.changes import AnnotationChange, DiffDetails
    from repo.importing import ImportResult

# Each command imports the modules of its work when it runs: numpy, pycocotools and Pillow come
# with those that read and write COCO files, and every module costs each command's start.
MERGE_STRATEGIES = ("union", "exact", "intersect")  # repo.merge.STRATEGIES, which checks them too


class BarProgress:
    """A progress bar on stderr, one stage at a time; its ETA waits for a rate (see
    repo.progress.eta_seconds) instead of click's, which guesses from the first steps."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._bar: Any = None
        self._clock = clock
        self._started = 0.0
        self._done = 0
        self._total = 0

    def start(self, label: str, total: int) -> None:
        self.finish()
        self._started, self._done, self._total = self._clock(), 0, total
        self._bar = click.progressbar(
            length=max(total, 1), label=label, file=sys.stderr, show_eta=False, item_show_func=self.eta_text
        )
        self._bar.__enter__()

    def eta_text(self, _item: object = None) -> str | None:
        """`eta HH:MM:SS` once the stage has a rate, else None (nothing shown)."""
        left = eta_seconds(self._clock() - self._started, self._done, self._total)
        return None if left is None else format_eta(left)

    def advance(self, steps: int = 1) -> None:
        self._done += steps
        if self._bar is not None:
            self._bar.update(steps)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _progress(quiet: bool) -> Progress:
    return Silent() if quiet or not sys.stderr.isatty() else BarProgress()


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except DsrepoError as exc:
        raise click.ClickException(str(exc)) from None


def project_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-p, --db and --quiet, which every command takes."""

    @click.option("-p", "--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("."), show_default=True, help="The project folder.")
    @click.option("--db", metavar="URL", help="Database URL (else DSREPO_DB, the URL remembered "
                  "in the project folder, or DIR/project.db).")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return command(*args, **kwargs)

    return wrapper


def _options(*options: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A group of click options that several commands share, as one decorator."""
    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command
    return apply


def _echo(message: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(message)


def _echo_err(message: str, quiet: bool = False) -> None:
    """A message beside the output (stdout may be JSON)."""
    if not quiet:
        click.echo(message, err=True)


# -- format options, from the registry ------------------------------------------------------

def _declared(role: str) -> list[FormatOption]:
    """Every option of the formats that support `role`, once each (the registry makes sure
    that formats declaring the same option declare it alike)."""
    options: dict[str, FormatOption] = {}
    for registered in list_formats():
        for option in _options_of(registered, role):
            options.setdefault(option.name, option)
    return list(options.values())


def _options_of(registered: Format, role: str) -> tuple[FormatOption, ...]:
    return registered.import_options if role == "import" else registered.export_options


@functools.cache
def _click_option(option: FormatOption) -> click.Option:
    """A format option as click parses it; hidden from the generic list, since the command's
    help lists format options per format."""
    common: dict[str, Any] = {"hidden": True, "help": option.help}
    if option.kind == FLAG:
        return click.Option([option.name, *option.flags], is_flag=True, default=False, **common)
    if option.kind == BOOLEAN:
        return click.Option([option.name, *option.flags], type=click.BOOL, is_flag=False, flag_value=True,
                            default=option.default, **common)
    kind = {CHOICE: click.Choice(option.choices), PATH: click.Path(path_type=Path)}.get(option.kind, str)
    return click.Option([option.name, *option.flags], type=kind, default=option.default, **common)


def _format_names(role: str) -> list[str]:
    return [f.name for f in list_formats() if (f.reader if role == "import" else f.writer)]


class FormatName(click.Choice):
    """`-f`: the name of a registered format that supports `role`, as the registry has them
    when the command runs."""

    def __init__(self, role: str):
        self.role = role
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(_format_names(self.role))

    @choices.setter
    def choices(self, value: Any) -> None:
        pass  # click.Choice's constructor sets them; here they come from the registry


class FormatCommand(click.Command):
    """A command that takes the options of the formats supporting `role` (import or export):
    after `--`, as in Datumaro, or before it; its help lists them per format."""

    def __init__(self, *args: Any, role: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.role = role

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return [*super().get_params(ctx), *(_click_option(option) for option in _declared(self.role))]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            args = args[:split] + args[split + 1:]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        _write_format_options(formatter, self.role, f"Format options ({self.role}; after --, or before it)")


def _write_format_options(formatter: click.HelpFormatter, role: str, title: str) -> None:
    """The options of every format, formats with the same options listed together."""
    groups: dict[tuple[FormatOption, ...], list[str]] = {}
    for registered in list_formats():
        if registered.reader if role == "import" else registered.writer:
            groups.setdefault(_options_of(registered, role), []).append(registered.name)
    with formatter.section(title):
        for options, names in groups.items():
            formatter.write_text(", ".join(names) + ":")
            with formatter.indentation():
                formatter.write_dl([_help_record(option) for option in options] or [("(none)", "")])


def _help_record(option: FormatOption) -> tuple[str, str]:
    flags = ", ".join(option.flags) + (f" {option.metavar}" if option.metavar else "")
    shown = str(option.default).lower() if isinstance(option.default, bool) else option.default
    default = f"  [default: {shown}]" if option.kind not in (FLAG, PATH) and option.default not in (None, ()) else ""
    return flags, option.help + default


def _format_options_given(ctx: click.Context, role: str, format_name: str | None) -> dict[str, Any]:
    """The format options on the command line (not their defaults: the library fills those),
    checked against `format_name`'s when it is known here."""
    given = {
        option.name: ctx.params[option.name] for option in _declared(role)
        if ctx.get_parameter_source(option.name) is ParameterSource.COMMANDLINE
    }
    if format_name is None:
        return given
    chosen = get_format(format_name, role=role)
    own = {option.name for option in _options_of(chosen, role)}
    for option in _declared(role):
        if option.name in given and option.name not in own:
            valid = ", ".join(o.shown for o in _options_of(chosen, role)) or "none"
            raise click.UsageError(f"{option.shown} is not an option of format '{format_name}' (its options: {valid})", ctx)
    try:
        chosen.import_settings(given) if role == "import" else chosen.export_settings(given)
    except OptionError as exc:
        raise click.UsageError(str(exc), ctx) from None
    return given


# -- commands --------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dsrepo")
def main() -> None:
    """dsrepo: COCO datasets kept in a database (SQLite or PostgreSQL).

    \b
    Example:
        dsrepo create -p myproject
        dsrepo import -p myproject -f coco path/to/coco
        dsrepo export -p myproject -f coco -o out/
    """
    # numpy's OpenBLAS starts a thread per core when it loads, and they spin: 0.05-0.1 s of CPU
    # per command on two cores, taken from dsrepo's own threads. dsrepo does no linear algebra.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@main.command()
@project_options
def create(project_dir: Path, db: str | None, quiet: bool) -> None:
    """Create a project: a folder and an empty database with dsrepo's schema.

    \b
    Example:
        dsrepo create -p myproject
        dsrepo create -p myproject --db postgresql://me@localhost/datasets
    """
    project = Project.create(project_dir, db)
    _echo(f"created project {project_dir} on {project.shown_url}", quiet)


@main.command("formats")
def formats_command() -> None:
    """List the formats, what each can do, and their options.

    \b
    Example:
        dsrepo formats
    """
    for registered in list_formats():
        can = [role for role, supported in (("import", registered.reader), ("export", registered.writer)) if supported]
        click.echo(f"{registered.name}  [{', '.join(can)}]  {registered.help}")
        for role in can:
            options = _options_of(registered, role)
            click.echo(f"  {role} options:" + ("" if options else " none"))
            for flags, text in map(_help_record, options):
                click.echo(f"    {flags}  {text}")


_reading_options = _options(
    click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                 help="fail: change nothing if any record is bad; skip: keep the good records."),
    click.option("--error-report", type=click.Path(dir_okay=False, path_type=Path),
                 help="With --on-error skip: where to write the skipped records "
                      "(default: DIR/import-errors-NAME.json)."),
)


@main.command("import", cls=FormatCommand, role="import")
@project_options
@click.option("-f", "--format", "format_name", type=FormatName("import"), required=True,
              help="Input format (see `dsrepo formats`).")
@click.option("-n", "--name", help="Name of the new source (default: from PATH).")
@click.option("-r", "--relpath", metavar="RELPATH", help="A file or folder inside PATH to import.")
@_reading_options
@click.option("--label-map", type=click.Path(dir_okay=False, path_type=Path),
              help='JSON {"old name": "new name" or null} applied to the categories.')
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def import_command(
    ctx: click.Context, project_dir: Path, db: str | None, quiet: bool, format_name: str, name: str | None,
    relpath: str | None, on_error: str, error_report: Path | None, label_map: Path | None, path: Path,
    **_: Any,
) -> None:
    """Import a dataset (a folder, or one file) as a new source.

    \b
    Example:
        dsrepo import -p myproject -f coco path/to/coco
        dsrepo import -p myproject -f coco_instances -n vendor_a instances_val2017.json
        dsrepo import -p myproject -f coco path/to/coco -- --copy-images
        dsrepo import -p myproject -f coco path/to/coco --label-map labels.json
    """
    from repo.importing import import_dataset

    format_options = _format_options_given(ctx, "import", format_name)
    result = import_dataset(
        Project.open(project_dir, db), format_name, path, name=name, relpath=relpath, on_error=on_error,
        error_report=error_report, label_map=label_map, progress=_progress(quiet), **format_options,
    )
    _echo(
        f"imported source '{result.source}': {len(result.files)} files, {result.images} images, "
        f"{result.annotations} annotations", quiet,
    )
    if result.missing_images:
        click.echo(f"note: {result.missing_images} image files were not found (see `dsrepo info`)", err=True)
    _report_outside(result)
    _report_skipped(result)


def _report_outside(result: ImportResult) -> None:
    if result.outside_images:
        click.echo(
            f"note: {result.outside_images} image files lead outside the dataset folder (symlinks) and were not used",
            err=True,
        )


def _report_skipped(result: ImportResult) -> None:
    if result.error_report is not None:
        click.echo(f"skipped {len(result.skipped)} bad records; details in {result.error_report}", err=True)


_export_options = _options(
    click.option("-f", "--format", "format_name", type=FormatName("export"), required=True,
                 help="Output format (see `dsrepo formats`)."),
    click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder."),
    click.option("--overwrite", is_flag=True, help="Write into a non-empty output folder."),
)


@main.command("export", cls=FormatCommand, role="export")
@project_options
@_export_options
@click.option("--rev", metavar="REV", help="Export what this revision held (HEAD, HEAD~N, a tag, an id).")
@click.option("--where", metavar="SQL", help="Only annotations for which this condition on annotations_v holds.")
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds the database may spend on --where (0: no limit).")
@click.pass_context
def export_command(
    ctx: click.Context, project_dir: Path, db: str | None, quiet: bool, format_name: str, out_dir: Path,
    overwrite: bool, rev: str | None, where: str | None, timeout: float, **_: Any,
) -> None:
    """Export the project's data (the working state, or one revision).

    Several sources are exported as their union; ids that would collide in a file are
    refused unless --reindex gives new ones.

    \b
    Example:
        dsrepo export -p myproject -f coco -o out/
        dsrepo export -p myproject -f coco_instances -o out/ --rev v1 -- --save-images
        dsrepo export -p myproject -f coco -o out/ --where "label = 'person' AND area > 1000"
        dsrepo export -p myproject -f coco -o out/ -- --reindex --reindex-map ids.json
    """
    from repo.exporting import export_dataset

    format_options = _format_options_given(ctx, "export", format_name)
    result = export_dataset(
        Project.open(project_dir, db), format_name, out_dir, rev=rev, where=where, overwrite=overwrite,
        timeout=timeout or None, progress=_progress(quiet), **format_options,
    )
    _report_export(result, out_dir, quiet)


def _report_export(result: ExportResult, out_dir: Path, quiet: bool) -> None:
    _echo(f"exported {len(result.files)} files, {result.images} images, {result.annotations} annotations to {out_dir}", quiet)
    if result.saved_images:
        _echo(f"saved {result.saved_images} images", quiet)
    if result.unavailable_images:
        shown = ", ".join(result.unavailable_images[:3]) + (", ..." if len(result.unavailable_images) > 3 else "")
        click.echo(f"note: {len(result.unavailable_images)} images are neither in the database nor on disk: {shown}", err=True)
    _report_changes(result, quiet)


def _report_changes(result: ExportResult, quiet: bool) -> None:
    """What export options changed or made: IoU of traced polygons, cropped, derived files."""
    if result.iou_line:
        _echo(result.iou_line, quiet)
    for line in result.emptied:
        click.echo(f"note: --crop-covered left no pixels to {line}; it is not written", err=True)
    for line in result.derived:
        _echo(line, quiet)
    for line in result.image_losses:
        click.echo(f"note: {line}", err=True)
    for line in result.left_out:
        click.echo(f"note: left out {line}", err=True)
    for note in result.notes:  # what the format left out or warns about (e.g. YOLO's crowd)
        click.echo(f"note: {note}", err=True)


@main.command("convert", cls=FormatCommand, role="export")
@click.option("-if", "--input-format", "input_format", type=FormatName("import"), required=True,
              help="Input format.")
@click.option("-i", "--input", "input_path", type=click.Path(path_type=Path), required=True, help="Input dataset.")
@_export_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def convert_command(
    ctx: click.Context, input_format: str, input_path: Path, format_name: str, out_dir: Path, overwrite: bool,
    quiet: bool, **_: Any,
) -> None:
    """Import a dataset into a temporary project and export it again; format options are the
    output format's.

    \b
    Example:
        dsrepo convert -if coco -i path/to/coco -f coco_instances -o out/
    """
    from repo.exporting import convert

    export_options = _format_options_given(ctx, "export", format_name)
    with user_errors():
        result = convert(
            input_format, input_path, format_name, out_dir, overwrite=overwrite, export_options=export_options,
            progress=_progress(quiet),
        )
    _echo(f"converted {result.images} images, {result.annotations} annotations into {out_dir}", quiet)
    _report_changes(result, quiet)


@main.command()
@project_options
def upgrade(project_dir: Path, db: str | None, quiet: bool) -> None:
    """Migrate the project's database to the schema of this version of dsrepo.

    \b
    Example:
        dsrepo upgrade -p myproject
    """
    old, new = Project.upgrade(project_dir, db)
    _echo(f"schema {old} -> {new}" if old != new else f"schema {new} is current", quiet)


@main.command()
@project_options
def info(project_dir: Path, db: str | None, quiet: bool) -> None:
    """Show the database, the schema, and each source's files with their counts.

    \b
    Example:
        dsrepo info -p myproject
    """
    from repo.info import summarize

    summary = summarize(Project.open(project_dir, db))
    click.echo(f"project: {project_dir}")
    click.echo(f"database: {summary.url}")
    click.echo(f"schema: {summary.schema}")
    click.echo(f"revisions: {summary.head}")
    click.echo(f"sources: {len(summary.sources)}")
    for source in summary.sources:
        origin = f"from {source.path}" if source.path else f"merged from {', '.join(source.merged_from)}"
        click.echo(f"  {source.name} (format {source.format}, {origin})")
        click.echo(f"    images: {source.items}, image files not found: {source.missing_images}")
        for file in source.files:
            click.echo(
                f"    {file.task:<17} {file.subset:<12} {file.images:>8} images {file.annotations:>9} annotations"
                f"  ({file.name})"
            )


@main.command(cls=FormatCommand, role="import")
@project_options
@_reading_options
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def update(
    ctx: click.Context, project_dir: Path, db: str | None, quiet: bool, on_error: str, error_report: Path | None,
    name: str, path: Path, **_: Any,
) -> None:
    """Update source NAME from a newer copy of its files: only what differs is stored.

    \b
    Example:
        dsrepo update -p myproject vendor_a path/to/new/coco
    """
    from repo.sources import update_source

    format_options = _format_options_given(ctx, "import", None)  # the source's format checks them
    result = update_source(
        Project.open(project_dir, db), name, path, on_error=on_error, error_report=error_report,
        progress=_progress(quiet), **format_options,
    )
    _report_outside(result)
    _report_skipped(result)
    for note in result.notes:
        _echo(note, quiet)
    changes = result.changes
    if changes.empty:
        _echo(f"source '{name}' is unchanged", quiet)
        return
    parts = [f"{verb} {_counts(getattr(changes, verb))}" for verb in ("added", "changed", "removed") if getattr(changes, verb)]
    _echo(f"updated source '{name}': " + "; ".join(parts), quiet)


def _counts(per_table: dict[str, int]) -> str:
    return ", ".join(f"{count} {table}" for table, count in per_table.items())


@main.command()
@project_options
@click.argument("name")
def remove(project_dir: Path, db: str | None, quiet: bool, name: str) -> None:
    """Remove source NAME from the working state (older revisions keep it).

    \b
    Example:
        dsrepo remove -p myproject vendor_a
        dsrepo commit -p myproject -m "drop vendor_a"
    """
    from repo.sources import remove_source

    remove_source(Project.open(project_dir, db), name)
    _echo(f"removed source '{name}'", quiet)


@main.command("commit")
@project_options
@click.option("-m", "--message", required=True, help="What this revision is.")
@click.option("--allow-empty", is_flag=True, help="Commit even if nothing changed.")
def commit_command(project_dir: Path, db: str | None, quiet: bool, message: str, allow_empty: bool) -> None:
    """Record the working state as a new revision.

    \b
    Example:
        dsrepo commit -p myproject -m "import vendor A"
    """
    from repo.history import commit

    revision = commit(Project.open(project_dir, db), message, allow_empty=allow_empty)
    _echo(f"[{revision.short}] {revision.message} ({_change_summary(revision.changes)})", quiet)


def _change_summary(changes: dict[str, dict[str, int]]) -> str:
    from repo.history import REPORTED

    shown = []
    for table in REPORTED:
        counts = changes.get(table)
        if counts:
            shown.append(f"{table} +{counts['added']} -{counts['removed']} ~{counts['changed']}")
    return ", ".join(shown) or "no changes"


@main.command("log")
@project_options
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N revisions.")
def log_command(project_dir: Path, db: str | None, quiet: bool, limit: int | None) -> None:
    """List revisions, newest first: id, date, message, change counts.

    \b
    Example:
        dsrepo log -p myproject -n 5
    """
    from repo.history import log

    for revision in log(Project.open(project_dir, db), limit=limit):
        tags = f" ({', '.join(revision.tags)})" if revision.tags else ""
        when = revision.created_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{revision.short} {when} {revision.message}{tags}  [{_change_summary(revision.changes)}]")


@main.command("tag")
@project_options
@click.argument("name")
@click.argument("rev", default="HEAD")
def tag_command(project_dir: Path, db: str | None, quiet: bool, name: str, rev: str) -> None:
    """Name revision REV (default HEAD) as NAME.

    \b
    Example:
        dsrepo tag -p myproject v1
        dsrepo tag -p myproject before-merge HEAD~2
    """
    from repo.history import tag

    revision = tag(Project.open(project_dir, db), name, rev)
    _echo(f"tagged {revision.short} as {name}", quiet)


@main.command("status")
@project_options
def status_command(project_dir: Path, db: str | None, quiet: bool) -> None:
    """Show the uncommitted changes of each source.

    \b
    Example:
        dsrepo status -p myproject
    """
    from repo.history import status

    entries = status(Project.open(project_dir, db))
    if not entries:
        click.echo("nothing to commit: the working state equals HEAD")
        return
    for entry in entries:
        click.echo(f"{entry.source}:")
        for table, counts in entry.changes.items():
            click.echo(f"  {table}: +{counts['added']} -{counts['removed']} ~{counts['changed']}")


@main.command("checkout")
@project_options
@click.option("-f", "--force", is_flag=True, help="Drop uncommitted changes.")
@click.argument("rev")
def checkout_command(project_dir: Path, db: str | None, quiet: bool, force: bool, rev: str) -> None:
    """Make the working state what revision REV held (commit to record it).

    \b
    Example:
        dsrepo checkout -p myproject v1
        dsrepo checkout -p myproject HEAD --force    # drop uncommitted changes
    """
    from repo.history import checkout

    revision = checkout(Project.open(project_dir, db), rev, force=force)
    _echo(f"working state is now {revision.short} {revision.message}", quiet)


@main.command("diff")
@project_options
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--details", is_flag=True,
              help="Name each item and annotation added, removed or changed (with the fields that differ) "
                   "and each label renamed, instead of counting them.")
@click.argument("rev_a", default="HEAD")
@click.argument("rev_b", required=False)
def diff_command(
    project_dir: Path, db: str | None, quiet: bool, output: str, details: bool, rev_a: str, rev_b: str | None
) -> None:
    """Count items, annotations and categories added, removed and changed from REV_A
    (default: HEAD) to REV_B (default: the working state), per source and subset.

    \b
    Example:
        dsrepo diff -p myproject                 # uncommitted changes
        dsrepo diff -p myproject v1
        dsrepo diff -p myproject HEAD~2 HEAD --format json
        dsrepo diff -p myproject v1 v2 --details
    """
    from repo.changes import diff_details
    from repo.history import diff_revisions

    if details:
        _print_details(diff_details(Project.open(project_dir, db), rev_a, rev_b), output)
        return
    rows = diff_revisions(Project.open(project_dir, db), rev_a, rev_b)
    if output == "json":
        click.echo(json.dumps([row.as_dict() for row in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no differences")
        return
    _table(["source", "subset", "kind", "added", "removed", "changed"],
           [[r.source, r.subset, r.kind, r.added, r.removed, r.changed] for r in rows])


def _print_details(found: DiffDetails, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(found.as_dict(), ensure_ascii=False, indent=2, default=_jsonable))
        return
    if not (found.label_renames or found.items or found.annotations):
        click.echo("no differences")
        return
    for rename in found.label_renames:
        click.echo(f"label renamed: {rename.old} -> {rename.new}")
    if found.items:
        click.echo("\nitems:" if found.label_renames else "items:")
        _table(["change", "source", "image", "fields"],
               [[c.change, c.source, f"{c.subset}/{c.file_name}", ", ".join(c.fields)] for c in found.items])
    if found.annotations:
        click.echo("\nannotations:" if found.label_renames or found.items else "annotations:")
        _table(["change", "source", "image", "task", "id", "label", "what changed"], [
            [c.change, c.source, f"{c.subset}/{c.file_name}", c.task, c.id, c.label, _what_changed(c)]
            for c in found.annotations
        ])


def _what_changed(change: AnnotationChange) -> str:
    """`bbox [..] -> [..]; polygons` : shown fields with their values, the others by name."""
    return "; ".join(
        f"{name} {change.before[name]} -> {change.after[name]}" if name in change.before else name
        for name in change.fields
    )


TABLE_SAMPLE = 1000  # rows that set the column widths of a table written as rows arrive
WRITE_CHUNK = 1000  # lines (or JSON records) written at once


def _table(header: list[str], rows: Iterable[Iterable[object]], sample: int | None = None) -> None:
    """Columns padded to their widest cell; numbers aligned right. With `sample`, only the
    first `sample` rows set the widths, so that the rest can be written as they arrive (a
    wider cell later on widens its own line only)."""
    rows = iter(rows)
    head = [list(row) for row in (itertools.islice(rows, sample) if sample else rows)]
    numeric = [all(isinstance(row[i], (int, float)) for row in head if row[i] is not None) for i in range(len(header))]
    widths = [max([len(header[i])] + [len(_cell(row[i])) for row in head]) for i in range(len(header))]

    def line(values: Iterable[object]) -> str:
        cells = [_cell(value) for value in values]
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(cells, widths, numeric)).rstrip()

    _write(line(values) + "\n" for values in itertools.chain([header], head, rows))


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _write(pieces: Iterable[str]) -> None:
    """Write text in chunks of pieces: one call per line is slow for millions of rows."""
    pieces = iter(pieces)
    while chunk := list(itertools.islice(pieces, WRITE_CHUNK)):
        click.echo("".join(chunk), nl=False)


@main.group("labels")
def labels_group() -> None:
    """Rename, merge or delete labels (each a change to commit like any other).

    \b
    Example:
        dsrepo labels rename -p myproject pedestrian person
        dsrepo labels merge -p myproject people persons --into person
        dsrepo labels delete -p myproject junk
    """


@labels_group.command("rename")
@project_options
@click.argument("old")
@click.argument("new")
def labels_rename(project_dir: Path, db: str | None, quiet: bool, old: str, new: str) -> None:
    """Rename label OLD to NEW in every source.

    \b
    Example:
        dsrepo labels rename -p myproject pedestrian person
    """
    from repo.labels import rename_label

    rename_label(Project.open(project_dir, db), old, new)
    _echo(f"renamed label '{old}' to '{new}'", quiet)


@labels_group.command("merge")
@project_options
@click.argument("names", nargs=-1, required=True)
@click.option("--into", required=True, help="The label that remains.")
def labels_merge(project_dir: Path, db: str | None, quiet: bool, names: tuple[str, ...], into: str) -> None:
    """Merge labels NAMES into the label INTO; their annotations follow.

    \b
    Example:
        dsrepo labels merge -p myproject people persons --into person
    """
    from repo.labels import merge_labels

    merge_labels(Project.open(project_dir, db), list(names), into=into)
    _echo(f"merged {', '.join(repr(n) for n in names)} into '{into}'", quiet)


@labels_group.command("delete")
@project_options
@click.argument("name")
def labels_delete(project_dir: Path, db: str | None, quiet: bool, name: str) -> None:
    """Delete label NAME with its categories and annotations.

    \b
    Example:
        dsrepo labels delete -p myproject junk
    """
    from repo.labels import delete_label

    removed = delete_label(Project.open(project_dir, db), name)
    _echo(f"deleted label '{name}' and {removed} annotations", quiet)


@main.command("query")
@project_options
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds the database may spend on the statement (0: no limit).")
@click.option("--rev", metavar="REV", help="The views show this revision instead of the working state.")
@click.argument("sql")
def query_command(
    project_dir: Path, db: str | None, quiet: bool, output: str, timeout: float, rev: str | None, sql: str
) -> None:
    """Run one read-only SQL statement; the views items_v and annotations_v are the
    documented way in (see the README). Rows are written as they arrive.

    \b
    Example:
        dsrepo query -p myproject "SELECT label, count(*) FROM annotations_v GROUP BY label"
        dsrepo query -p myproject --format csv "SELECT * FROM items_v WHERE width < 100"
        dsrepo query -p myproject --rev v1 "SELECT count(*) FROM annotations_v"
    """
    from repo.query import open_query

    with open_query(Project.open(project_dir, db), sql, timeout or None, rev=rev) as rows:
        if output == "json":
            _json_rows(rows)
        elif output == "csv":
            _csv_rows(rows)
        else:
            _table(rows.columns, rows, sample=TABLE_SAMPLE)


def _json_rows(rows: Rows) -> None:
    """A JSON array of one object per row, laid out as json.dumps(indent=2) would. Scalars go
    through json's C encoder (with an indent, json encodes in Python, several times slower);
    lists and objects get the indented layout."""
    scalar = json.JSONEncoder(ensure_ascii=False, default=_jsonable)
    nested = json.JSONEncoder(ensure_ascii=False, default=_jsonable, indent=2)
    keys = {column: scalar.encode(column) for column in rows.columns}

    def record(row: tuple[Any, ...]) -> str:
        fields = [
            f"    {keys[key]}: "
            + (nested.encode(value).replace("\n", "\n    ") if isinstance(value, (dict, list, tuple)) else scalar.encode(value))
            for key, value in dict(zip(rows.columns, row)).items()
        ]
        return "  {\n" + ",\n".join(fields) + "\n  }" if fields else "  {}"

    records = map(record, rows)
    first = next(records, None)
    if first is None:
        click.echo("[]")
        return
    _write(itertools.chain(["[\n" + first], (",\n" + text for text in records), ["\n]\n"]))


def _csv_rows(rows: Rows) -> None:
    for batch in itertools.chain([[rows.columns]], rows.batches):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(batch)
        click.echo(buffer.getvalue(), nl=False)


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, (bytes, memoryview)) else str(value)


@main.command("merge")
@project_options
@click.option("-n", "--name", "new_name", required=True, help="Name of the merged source.")
@click.option("--strategy", type=click.Choice(MERGE_STRATEGIES), default="union", show_default=True,
              help="union: keep all annotations; exact: shared images must have the same annotations; "
                   "intersect: match annotations by IoU/OKS and keep those enough sources agree on.")
@click.option("--reindex", is_flag=True, help="New ids 1..N where ids would collide.")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="intersect: the IoU (or OKS) from which two annotations match.")
@click.option("--quorum", type=click.IntRange(min=1), default=1, show_default=True,
              help="intersect: keep a match only if this many sources have it.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the merge report (default: DIR/merge-report-NAME.json).")
@click.argument("sources_", metavar="SOURCE...", nargs=-1, required=True)
def merge_command(
    project_dir: Path, db: str | None, quiet: bool, new_name: str, strategy: str, reindex: bool, iou: float,
    quorum: int, report: Path | None, sources_: tuple[str, ...],
) -> None:
    """Merge SOURCEs into a new source NAME, which replaces them (commit to record it).

    \b
    Example:
        dsrepo merge -p myproject -n all vendor_a vendor_b
        dsrepo merge -p myproject -n agreed --strategy intersect --iou 0.5 --quorum 2 a b c
    """
    from repo.merge import merge_sources

    result = merge_sources(
        Project.open(project_dir, db), new_name, list(sources_), strategy=strategy, reindex=reindex, iou=iou,
        quorum=quorum, report=report, progress=_progress(quiet),
    )
    _echo(
        f"merged {', '.join(sources_)} into '{result.source}': {result.files} files, {result.images} images, "
        f"{result.annotations} annotations", quiet,
    )
    if result.report:
        click.echo(
            f"{len(result.conflicts)} conflicts, {result.merged} annotations merged as duplicates, "
            f"{result.dropped} dropped; report: {result.report}",
            err=True,
        )


def _task_list(values: tuple[str, ...]) -> list[str] | None:
    """--tasks given once per task, comma-separated, or both."""
    tasks = [task.strip() for value in values for task in value.split(",") if task.strip()]
    return tasks or None


@main.command("render")
@project_options
@click.argument("item")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="The image file to write (.png, or any format Pillow writes).")
@click.option("--rev", metavar="REV", help="Draw what this revision held.")
@click.option("--tasks", "task_names", multiple=True, metavar="TASK[,TASK...]",
              help="Only annotations of these tasks (instances, panoptic, ...).")
@click.option("--where", metavar="SQL", help="Only annotations for which this condition on annotations_v holds.")
@click.option("--subset", help="The subset of the image, when ITEM names images of several.")
@click.option("--source", help="Only this source's annotations.")
@click.option("--scale", type=click.IntRange(min=1), default=1, show_default=True, help="Enlarge the picture N times.")
def render_command(
    project_dir: Path, db: str | None, quiet: bool, item: str, out: Path, rev: str | None,
    task_names: tuple[str, ...], where: str | None, subset: str | None, source: str | None, scale: int,
) -> None:
    """Draw ITEM (a file name or a COCO image id) with its annotations over it.

    Masks are filled in a colour per label (panoptic segments in their category's colour),
    crowd regions hatched, keypoints joined by their skeleton, captions written under the
    image. A missing image file gives a blank canvas of the image's size.

    \b
    Example:
        dsrepo render -p myproject 000000142238.jpg -o overlay.png
        dsrepo render -p myproject 142238 -o persons.png --tasks instances --where "label = 'person'"
        dsrepo render -p myproject a.jpg -o before.png --rev v1 --scale 4
    """
    from repo.render import render_item

    result = render_item(
        Project.open(project_dir, db), item, out, rev, tasks=_task_list(task_names), where=where, subset=subset,
        source=source, scale=scale,
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    label = "source" if len(result.sources) == 1 else "sources"
    _echo(
        f"rendered {result.subset}/{result.file_name} ({label} {', '.join(result.sources)}, "
        f"{result.annotations} annotations) to {out}", quiet,
    )


@main.command("serve")
@project_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; other than loopback only with --allow-remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--allow-remote", is_flag=True, help="Allow a --host that other machines can reach.")
def serve_command(project_dir: Path, db: str | None, quiet: bool, host: str, port: int, allow_remote: bool) -> None:
    """Browse the project in a web browser: items with their overlays, two revisions side by
    side, statistics. Read-only: nothing it does changes the project. Needs Flask:
    pip install 'dsrepo[viz]'.

    \b
    Example:
        dsrepo serve -p myproject
        dsrepo serve -p myproject --port 9000
        dsrepo serve -p myproject --host 0.0.0.0 --allow-remote
    """
    from repo.web import check_host, serve

    check_host(host, allow_remote)
    serve(Project.open(project_dir, db), host, port, allow_remote=allow_remote, quiet=quiet,
          announce=lambda line: click.echo(line))


@main.command("stats")
@project_options
@click.option("--rev", metavar="REV", help="Statistics of this revision instead of the working state.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the figures (labels, areas, aspect ratios, sources, subsets) into this PNG; "
                   "needs matplotlib: pip install 'dsrepo[viz]'.")
def stats_command(project_dir: Path, db: str | None, quiet: bool, rev: str | None, output: str, plot: Path | None) -> None:
    """Counts per subset, task and label; area and box-size distributions; images without
    annotations; the share of crowd annotations.

    \b
    Example:
        dsrepo stats -p myproject
        dsrepo stats -p myproject --format json --plot stats.png
    """
    from repo.stats import compute_stats

    figures = compute_stats(Project.open(project_dir, db), rev=rev, plot=plot)
    if plot:
        _echo_err(f"wrote the plots to {plot}", quiet)
    if output == "json":
        click.echo(json.dumps(figures.as_dict(), ensure_ascii=False, indent=2))
        return
    _table(["subset", "images", "without annotations"],
           [[s, n, figures.images_without_annotations.get(s, 0)] for s, n in figures.images.items()])
    click.echo()
    _table(["subset", "task", "annotations"],
           [[s, t, n] for s, per_task in figures.annotations.items() for t, n in per_task.items()])
    click.echo()
    _table(["task", "label", "annotations"],
           [[t, label, n] for t, per_label in figures.labels.items() for label, n in per_label.items()])
    click.echo()
    rows = []
    for name, dist in (("area", figures.area), ("bbox width", figures.bbox_width), ("bbox height", figures.bbox_height)):
        q = dist.quantiles
        rows.append([name, dist.count] + [round(q[k], 2) if q else None for k in ("min", "p25", "median", "p75", "max")])
    _table(["measure", "count", "min", "p25", "median", "p75", "max"], rows)
    buckets = figures.area.buckets
    if buckets:
        click.echo("\nareas: " + ", ".join(f"{name} {count}" for name, count in buckets.items()))
    if figures.crowd_share is not None:
        click.echo(f"crowd share: {figures.crowd_share:.2%}")


if __name__ == "__main__":
    main()
