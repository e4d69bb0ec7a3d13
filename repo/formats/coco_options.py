"""Datumaro's COCO options, on top of the lossless COCO format (`repo.formats.coco`).

Each option changes the output only when given; the pixel work is in `repo.transforms`.
Here: the options as the registry declares them, which stored files an export writes
(`--tasks`, `--subsets`, `--sources`), and the annotation rewrite that `--segmentation-mode`,
`--rle-form` and `--crop-covered` ask for, with what it reports. The rewrite streams, except
`--crop-covered`, which holds one output file's annotations to group them by image.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pathlib import Path

from repo.coco.meta import meta_document, write_meta
from repo.coco.rle import RleError
from repo.coco.tasks import TASKS
from repo.errors import InputError, NotFoundError
from repo.formats.registry import boolean, choice, comma_list, flag, text
from repo.transforms.covered import crop_covered
from repo.transforms.masks import MaskError
from repo.transforms.segmentation import MODES, RLE_FORMS, IouTally, convert_segmentation

IMPORT_OPTIONS = (
    flag("keep_original_category_ids", "--keep-original-category-ids",
         help="Accepted for Datumaro's sake: dsrepo always keeps the category ids of the files."),
    text("subset", "--subset", help="The subset of a single annotation file (any file name)."),
)
EXPORT_OPTIONS = (
    comma_list("tasks", "--tasks", choices=TASKS, help="Write only these tasks (coco); e.g. instances,captions."),
    comma_list("subsets", "--subsets", help="Write only these subsets."),
    comma_list("sources", "--sources", help="Write only the files of these sources."),
    choice("segmentation_mode", "--segmentation-mode", choices=MODES, default=None,
           help="Segmentations as polygons, masks (RLE), or guess: crowd as mask, others as polygons. "
                "Default: as imported."),
    choice("rle_form", "--rle-form", choices=tuple(RLE_FORMS), default=None,
           help="RLE of masks: uncompressed (a counts list, new masks' default) or compressed (a string)."),
    flag("crop_covered", "--crop-covered",
         help="No two non-crowd segments of an image overlap: later (or higher z_order) ones keep the pixels."),
    boolean("allow_attributes", "--allow-attributes", default=True,
            help="Write Datumaro's 'attributes' of annotations (--allow-attributes false: none)."),
    flag("save_dataset_meta", "--save-dataset-meta", help="Also write dataset_meta.json (labels, colours)."),
)


def chosen_files(files: Iterable[Any], options: Mapping[str, Any], source_names: Mapping[int, str]) -> list[Any]:
    """The stored files an export reads, narrowed by `--subsets` and `--sources` (an unknown
    subset or source is an error naming the known ones)."""
    files = list(files)
    for option, held in (("subsets", {row.subset for row in files}), ("sources", set(source_names.values()))):
        wanted = options.get(option) or ()
        unknown = [name for name in wanted if name not in held]
        if unknown:
            raise NotFoundError(f"--{option}: no {option[:-1]} '{unknown[0]}' (known: {', '.join(sorted(held)) or 'none'})")
    if options.get("subsets"):
        files = [row for row in files if row.subset in options["subsets"]]
    if options.get("sources"):
        files = [row for row in files if source_names[row.source_id] in options["sources"]]
    return files


def nothing_to_write(format_name: str, tasks: Sequence[str], options: Mapping[str, Any]) -> NotFoundError:
    """The error of an export that would write no file: never an empty success."""
    narrowed = [f"--{name} {','.join(options[name])}" for name in ("tasks", "subsets", "sources") if options.get(name)]
    why = f" with {' '.join(narrowed)}" if narrowed else ""
    return NotFoundError(f"nothing to export as {format_name}{why}: the project holds no {' or '.join(tasks)} files")


def write_dataset_meta(out_dir: Path, categories: Iterable[Mapping[str, Any]]) -> Path:
    """`--save-dataset-meta`: dataset_meta.json of the categories (output objects) written."""
    return write_meta(out_dir, meta_document([
        {"coco_id": c["id"], "name": c["name"], "extra": {"color": c.get("color")}} for c in categories
    ]))


Pair = tuple[Mapping[str, Any], Any]  # a stored annotation row and its placement (image id, size)


@dataclass
class Rewrite:
    """The annotation rewrite of one export: segmentation form, RLE form, cropping; and
    what it reports (the IoU of traced polygons, the annotations cropping emptied)."""

    mode: str | None
    rle_form: str | None
    crop: bool
    tally: IouTally = field(default_factory=IouTally)
    emptied: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> Rewrite | None:
        rewrite = cls(options.get("segmentation_mode"), options.get("rle_form"), bool(options.get("crop_covered")))
        return rewrite if rewrite.mode or rewrite.rle_form or rewrite.crop else None

    def iou_line(self) -> str | None:
        return self.tally.line() if self.tally.count else None

    def rows(self, pairs: Iterable[Pair], file_name: str) -> Iterator[Pair]:
        """The annotations of one output file, rewritten; a shape that cannot become pixels is
        an InputError naming the file and the annotation."""
        if self.crop:
            pairs = self._cropped(list(pairs), file_name)
        form = RLE_FORMS[self.rle_form] if self.rle_form else None
        for row, placement in pairs:
            if self.mode is None and form is None:
                yield row, placement
                continue
            with _named(file_name, row, placement):
                yield convert_segmentation(
                    row, self.mode, placement.height, placement.width, rle_form=form, tally=self.tally
                ), placement

    def _cropped(self, pairs: list[Pair], file_name: str) -> Iterator[Pair]:
        """Each image's annotations cropped together; the file's order is kept."""
        by_image: dict[int, list[int]] = {}
        for index, (_, placement) in enumerate(pairs):
            by_image.setdefault(placement.coco_id, []).append(index)
        out: dict[int, Mapping[str, Any] | None] = {}
        for indexes in by_image.values():
            placement = pairs[indexes[0]][1]
            rows = [pairs[index][0] for index in indexes]
            with _named(file_name, rows[0], placement, "an annotation of "):
                cropped = crop_covered(rows, placement.height, placement.width)
            emptied = {id(row) for row in cropped.emptied}
            kept = iter(cropped.rows)
            for index, row in zip(indexes, rows):
                if id(row) in emptied:
                    out[index] = None
                    self.emptied.append(f"{file_name}: annotation id {row.get('coco_id')} (image id {placement.coco_id})")
                else:
                    out[index] = next(kept)
        for index, (_, placement) in enumerate(pairs):
            row = out[index]
            if row is not None:
                yield row, placement


class _named:
    """Turns a pixel error into an InputError naming the output file and the annotation."""

    def __init__(self, file_name: str, row: Mapping[str, Any], placement: Any, prefix: str = ""):
        self.file_name, self.row, self.placement, self.prefix = file_name, row, placement, prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, (MaskError, RleError)):
            where = f"{self.prefix}annotation id {self.row.get('coco_id')} (image id {self.placement.coco_id})"
            raise InputError(self.file_name, where, "segmentation", str(exc)) from None
        return False
