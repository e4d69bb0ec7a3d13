"""Cross-task COCO export: a task asked for that the project does not hold is derived from
the tasks that hold its content, or the export fails naming what is missing (see
`repo.transforms.derive`). Everything is decided before any file is written.

Derived here: instances from panoptic thing segments, stuff from panoptic stuff segments
(RLE masks, `area` and `bbox` from the pixels, annotation ids 1..N per file); instances from
person_keypoints records without their keypoints; image_info from the images of one other
task (the first held, in Datumaro's task order); panoptic from instances (things) and stuff,
painted without overlaps (a later or higher-`z_order` one keeps shared pixels; one left
without pixels, or without a segmentation, is reported in `left_out`). A panoptic derivation
holds one subset's annotations in memory. A task nothing derives (person_keypoints,
captions, labels) fails in one line.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Row

from repo._internal.compose import ComposedFile, Contributor, compose, panoptic_records
from repo.coco.layout import annotation_path
from repo.coco.tasks import file_name_for
from repo.coco.writer import annotation_object, panoptic_object, segment_object, write_task_file
from repo.errors import ConflictError, UnsupportedError
from repo.formats.registry import ExportContext, ExportResult
from repo.store import fetch
from repo.transforms.attributes import without_attributes
from repo.transforms.derive import (
    annotations_from_keypoints,
    annotations_from_segments,
    panoptic_from_annotations,
    sources_for,
)
from repo.transforms.segmentation import NEW_RLE_FORM, RLE_FORMS


@dataclass
class Derivation:
    """One output file made from stored files of another task."""

    task: str
    subset: str
    files: list[Row[Any]]  # the stored files it is made from, in source order

    @property
    def name(self) -> str:
        return file_name_for(self.task, self.subset)

    def line(self) -> str:
        sources = sorted({file_name_for(row.task, row.subset) for row in self.files})
        return f"{self.name} derived from {', '.join(sources)}"


def plan_derivations(wanted: Sequence[str], files: Sequence[Row[Any]]) -> list[Derivation]:
    """The derived files of an export of `wanted` tasks from the chosen stored `files`: one per
    subset for each wanted task the files do not hold. Raises a one-line NotFoundError for a
    task that cannot be made."""
    held = {row.task for row in files}
    plans = []
    for task in wanted:
        if task in held:
            continue
        sources = sources_for(task, held)
        by_subset: dict[str, list[Row[Any]]] = {}
        for row in files:
            if row.task in sources:
                by_subset.setdefault(row.subset, []).append(row)
        if task == "image_info":  # the images of one task: categories of several could clash
            for subset, rows in by_subset.items():
                first = min(rows, key=lambda row: sources.index(row.task)).task
                by_subset[subset] = [row for row in rows if row.task == first]
        plans += [Derivation(task, subset, rows) for subset, rows in sorted(by_subset.items())]
    return plans


def write_derivation(
    context: ExportContext, derivation: Derivation, source_names: Mapping[int, str], rewrite: Any, planned: Any,
    result: ExportResult,
) -> ComposedFile:
    """Write one derived file and count it in `result`; returns its composed file (images
    and categories, for the images and dataset_meta.json the export writes after)."""
    target = annotation_path(context.out_dir, derivation.task, derivation.subset)
    target.parent.mkdir(parents=True, exist_ok=True)
    if derivation.task == "panoptic":
        composed, _, written, pngs = write_derived_panoptic(
            context, derivation, source_names, target, planned, result.left_out
        )
        result.pngs += pngs
    else:
        composed, _, written = write_derived(context, derivation, source_names, target, rewrite, planned)
    result.files.append(target)
    result.derived.append(derivation.line())
    result.annotations += written
    return composed


def write_derived(
    context: ExportContext, derivation: Derivation, source_names: Mapping[int, str], target: Path, rewrite: Any,
    planned: Any,
) -> tuple[ComposedFile, int, int]:
    """Write instances or stuff made from panoptic segments, instances from person_keypoints
    records (without their keypoints), or image_info from the images of other tasks
    (`rewrite`: the export's `coco_options.Rewrite`; `planned`: its
    `coco_images.PlannedImages`, either may be None); returns the composed file (its images
    and categories), and the numbers of images and annotations written."""
    contributors = [Contributor(row, source_names[row.source_id]) for row in derivation.files]
    composed = compose(context.connection, context.snapshot, derivation.name, contributors, context.options["reindex"])
    if derivation.files[0].task != "panoptic":
        return _write_without_segments(context, derivation, composed, contributors, target, rewrite, planned)
    things = derivation.task == "instances"
    isthing = {}
    for category in composed.sections["categories"]:
        if category.get("isthing") not in (0, 1) or type(category.get("isthing")) is bool:
            raise UnsupportedError(
                f"cannot derive {derivation.name}: panoptic category id {category['id']} '{category['name']}' has no "
                "'isthing' 0 or 1, so it is neither thing nor stuff"
            )
        isthing[category["id"]] = category["isthing"] == 1
    composed.sections["categories"] = [
        {k: v for k, v in c.items() if k != "isthing"} for c in composed.sections["categories"] if isthing[c["id"]] == things
    ]
    composed.name, composed.task = derivation.name, derivation.task
    if planned is not None:
        planned.rename(composed)
    form = RLE_FORMS[context.options["rle_form"]] if context.options.get("rle_form") else NEW_RLE_FORM
    rows = _derived_rows(context, composed, isthing, things, form)
    if rewrite is not None:
        rows = rewrite.rows(rows, derivation.name)
    records: Iterator[dict[str, Any]] = (
        annotation_object(row, placement.coco_id, placement.height, placement.width) for row, placement in rows
    )
    if not context.options["allow_attributes"]:
        records = map(without_attributes, records)
    images, written = write_task_file(target, composed.layout, composed.sections, composed.images, records)
    return composed, images, written


def _write_without_segments(
    context: ExportContext, derivation: Derivation, composed: ComposedFile, contributors: list[Contributor],
    target: Path, rewrite: Any, planned: Any,
) -> tuple[ComposedFile, int, int]:
    """image_info (images only), or instances from person_keypoints records."""
    composed.name, composed.task = derivation.name, derivation.task
    if planned is not None:
        planned.rename(composed)
    records: Iterator[dict[str, Any]] = iter(())
    if derivation.task == "image_info":
        composed.sections["categories"] = []
    else:
        dropped = ("keypoints", "skeleton")
        composed.sections["categories"] = [
            {k: v for k, v in c.items() if k not in dropped} for c in composed.sections["categories"]
        ]
        records = _instances_of_keypoints(context, derivation, composed, contributors, rewrite)
    if not context.options["allow_attributes"]:
        records = map(without_attributes, records)
    images, written = write_task_file(target, composed.layout, composed.sections, composed.images, records)
    return composed, images, written


def _instances_of_keypoints(
    context: ExportContext, derivation: Derivation, composed: ComposedFile, contributors: list[Contributor], rewrite: Any
) -> Iterator[dict[str, Any]]:
    for contributor in contributors:
        pairs = candidate_rows(context, composed, contributor)
        rows = iter(zip(annotations_from_keypoints([row for row, _ in pairs]), (placement for _, placement in pairs)))
        if rewrite is not None:
            rows = rewrite.rows(rows, derivation.name)
        for row, placement in rows:
            obj = annotation_object(row, placement.coco_id, placement.height, placement.width)
            if "id" in obj:
                obj["id"] = composed.annotation_ids.assign(obj["id"], f"source {contributor.source}", contributor.source)
            yield obj


def _derived_rows(
    context: ExportContext, composed: ComposedFile, isthing: Mapping[int, bool], things: bool, form: str
) -> Iterator[tuple[Mapping[str, Any], Any]]:
    ids = itertools.count(1)
    for record, segments, placement in panoptic_records(context.connection, context.snapshot, composed, context.selected):
        mapped = [
            dict(row._mapping, category_id=composed.categories.get((record.file_id, row.category_id), row.category_id))
            for row in segments
        ]
        for row in annotations_from_segments(mapped, isthing, things, placement.height, placement.width, ids, rle_form=form):
            yield row, placement


def write_derived_panoptic(
    context: ExportContext, derivation: Derivation, source_names: Mapping[int, str], target: Path, planned: Any,
    left_out: list[str],
) -> tuple[ComposedFile, int, int, int]:
    """Write panoptic records and PNGs painted from instances (things) and stuff; returns the
    composed file and the numbers of images, segments and PNGs written."""
    from repo.coco.panoptic import encode_png  # Pillow and ISA-L: an export that paints none does not load them

    contributors = [Contributor(row, source_names[row.source_id]) for row in derivation.files]
    composed = compose(context.connection, context.snapshot, derivation.name, contributors, context.options["reindex"])
    composed.name, composed.task = derivation.name, "panoptic"
    if planned is not None:
        planned.rename(composed)
    thing_ids = {out for (file_id, _), out in composed.categories.items() if _task_of(derivation, file_id) == "instances"}
    composed.sections["categories"] = [dict(c, isthing=int(c["id"] in thing_ids)) for c in composed.sections["categories"]]
    by_image: dict[int, tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}
    for contributor in contributors:
        things = contributor.file.task == "instances"
        pairs = candidate_rows(context, composed, contributor)
        for row, placement in pairs:
            by_image.setdefault(placement.coco_id, ([], []))[0 if things else 1].append(row)
    png_folder = target.with_suffix("").name
    png_names: dict[str, str] = {}  # PNG name -> image file_name
    for image in composed.images:
        png_name = _png_name(image["file_name"])
        other = png_names.setdefault(png_name, image["file_name"])
        if other != image["file_name"]:
            raise ConflictError(
                f"{derivation.name}: images '{other}' and '{image['file_name']}' would share the PNG {png_folder}/{png_name}"
            )
    painted = [0, 0]

    def records() -> Iterator[dict[str, Any]]:
        for image in composed.images:
            things, stuff = by_image.pop(image["id"], ([], []))
            derived = panoptic_from_annotations(things, stuff, image["height"], image["width"])
            for row, why in derived.left_out:
                left_out.append(f"{derivation.name}: annotation id {row.get('coco_id')} (image id {image['id']}) {why}")
            png_name = _png_name(image["file_name"])
            png = context.output_path("annotations", png_folder, *png_name.split("/"))
            png.parent.mkdir(parents=True, exist_ok=True)
            png.write_bytes(encode_png(derived.id_map))
            painted[0] += 1
            painted[1] += len(derived.segments)
            yield panoptic_object(image["id"], png_name, None, [segment_object(segment) for segment in derived.segments])

    objects: Iterator[dict[str, Any]] = records()
    if not context.options["allow_attributes"]:
        objects = map(without_attributes, objects)
    images, _ = write_task_file(target, composed.layout, composed.sections, composed.images, objects)
    return composed, images, painted[1], painted[0]


def _png_name(file_name: str) -> str:
    """The PNG of a derived panoptic record: the image's name (sub-folders kept) with .png."""
    return str(PurePosixPath(file_name).with_suffix(".png"))


def _task_of(derivation: Derivation, file_id: int) -> str:
    return next(row.task for row in derivation.files if row.id == file_id)


def candidate_rows(context: ExportContext, composed: ComposedFile, contributor: Contributor) -> list[tuple[dict[str, Any], Any]]:
    """One stored file's annotations (of `--where`'s selection) with their output category
    ids, and their placements."""
    file_id = contributor.file.id
    found = []
    for row in fetch.annotation_rows(context.connection, context.snapshot, file_id):
        if context.selected is not None and row.row_id not in context.selected:
            continue
        mapping = dict(row._mapping)
        if mapping["category_id"] is not None:
            mapping["category_id"] = composed.categories.get((file_id, mapping["category_id"]), mapping["category_id"])
        found.append((mapping, composed.placements[(file_id, row.item_id)]))
    return found
