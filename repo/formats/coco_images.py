"""`--image-ext` and `--merge-images` in a COCO export: every image's place and name are
planned (`repo.transforms.images.plan_images`) before any file is written, so a clash fails
the export with nothing half-written; the JSON files then write the planned `file_name`s.

Two images clash when they would share a path and their bytes differ (as stored hashes say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from repo._internal.compose import ComposedFile
from repo.errors import OptionError
from repo.exporting import copy_image
from repo.formats.registry import ExportContext, ExportResult, boolean, text
from repo.store import fetch
from repo.transforms.images import ImageEntry, ImagePlan, normalised_ext, plan_images, reencode

EXPORT_OPTIONS = (
    text("image_ext", "--image-ext",
         help="With --save-images: save images in this format (.png, .jpg, .bmp, .tif, .webp) and name them so in the JSON."),
    boolean("merge_images", "--merge-images",
            help="With --save-images: every image in images/, not images/<subset>/ (two different images of one name fail)."),
)


@dataclass
class PlannedImages:
    plan: ImagePlan
    ext: str | None
    origins: dict[tuple[str, str], Row[Any]]  # (subset, file_name) -> an image row of it

    def rename(self, composed: ComposedFile) -> None:
        """Give the file's image objects their planned `file_name`."""
        for obj, image in zip(composed.images, composed.image_files):
            obj["file_name"] = self.plan.file_names[(image.subset, image.file_name)]


def planned_images(context: ExportContext, files: Iterable[Row[Any]]) -> PlannedImages | None:
    """The plan of the images the export saves, or None when neither option is given."""
    options = context.options
    ext, merge = options.get("image_ext"), bool(options.get("merge_images"))
    if ext is None and not merge:
        return None
    if not options["save_images"]:
        raise OptionError(f"option {'--image-ext' if ext is not None else '--merge-images'} needs --save-images")
    ext = normalised_ext(ext) if ext is not None else None
    origins: dict[tuple[str, str], Row[Any]] = {}
    for file in files:
        for row in fetch.image_rows(context.connection, context.snapshot, file.id):
            origins.setdefault((row.subset, row.file_name), row)
    entries = (ImageEntry(subset, file_name, row.image_sha256) for (subset, file_name), row in origins.items())
    return PlannedImages(plan_images(entries, merge=merge, ext=ext), ext, origins)


def save_planned(context: ExportContext, planned: PlannedImages, source_roots: Mapping[int, str | None], result: ExportResult) -> None:
    """Write each planned image once, re-encoded where `--image-ext` changes its format;
    what a lossy re-encoding changed goes to `result.image_losses`."""
    context.progress.start("saving images", len(planned.plan.writes))
    for entry, path in planned.plan.writes:
        row = planned.origins[(entry.subset, entry.file_name)]
        target = context.output_path("images", *path.split("/"))
        if not copy_image(context.connection, row.image_sha256, source_roots[row.source_id], row.image_path, target):
            result.unavailable_images.append(f"{entry.subset}/{entry.file_name}")
            context.progress.advance()
            continue
        if planned.ext is not None:
            encoded = reencode(target.read_bytes(), planned.ext, f"{entry.subset}/{entry.file_name}")
            target.write_bytes(encoded.data)
            if encoded.loss:
                result.image_losses.append(f"images/{path}: {encoded.loss}")
        result.saved_images += 1
        context.progress.advance()
