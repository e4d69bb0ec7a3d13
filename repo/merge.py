"""Merging sources into one new source, which replaces them in the same change.

The merged source is what an export of the inputs would write (see `compose`), read back as
a new source, so every rule of a union export holds: images are matched by file name, labels
by name, ids are kept unless they collide (then --reindex). Strategies decide what happens to
the annotations of an image that several sources have:

- union: all of them are kept;
- exact: they must be the same annotations (ids aside) in every source; one copy is kept;
- intersect: annotations are matched across sources by IoU (boxes, polygons, masks) or OKS
  (keypoints), image by image, so the cost grows with the number of images, not its square.
  A match found in at least `quorum` sources is kept once (label by majority vote, geometry
  of the member closest to the others), the other members are merged into it as duplicates;
  a match below the quorum is dropped. Every disagreement goes to a JSON merge report, which
  names each annotation's label.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repo._internal.compose import (
    Candidate,
    ComposedFile,
    Contributor,
    candidates,
    compose,
    panoptic_records,
    with_output_id,
)
from repo._internal.reports import StagedReports, staged_reports
from repo.coco.reader import read_task_document
from repo.coco.tasks import file_name_for
from repo.coco.writer import image_record_object, panoptic_object
from repo.errors import ConflictError, OptionError
from repo.matching import closest_member, cluster, similarities
from repo.model.hashing import record_hash, segment_hash
from repo.model.policy import ErrorPolicy
from repo.model.records import RLE_STRING
from repo.progress import Progress, Silent
from repo.project import Project
from repo.store import fetch
from repo.store.positions import fresh_positions
from repo.store.source_writer import ImageRef, SourceWriter
from repo.store.sources import close_source, find_source, insert_source, release_name
from repo.store.versions import WORKING_STATE, VersionWriter

STRATEGIES = ("union", "exact", "intersect")


@dataclass(frozen=True)
class _Options:
    strategy: str
    reindex: bool
    iou: float
    quorum: int


@dataclass
class MergeResult:
    """The merged source, what it holds, and for `intersect` (or conflicts) the report."""

    source: str
    files: int = 0
    images: int = 0
    annotations: int = 0
    merged: int = 0  # annotations folded into a kept one as its duplicates (exact, intersect)
    dropped: int = 0  # annotations not kept at all (intersect: a match below the quorum)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def merge_sources(
    project: Project,
    new_name: str,
    names: Sequence[str],
    *,
    strategy: str = "union",
    reindex: bool = False,
    iou: float = 0.5,
    quorum: int = 1,
    report: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> MergeResult:
    """Merge sources `names` into a new source `new_name`, which replaces them (see the module
    docstring for the strategies). `iou` is the similarity from which two annotations match
    and `quorum` the number of sources a match needs (intersect). The report goes to `report`
    (default `PROJECT/merge-report-NEW.json`)."""
    progress = progress or Silent()
    if strategy not in STRATEGIES:
        raise OptionError(f"unknown merge strategy '{strategy}' (known: {', '.join(STRATEGIES)})")
    if len(set(names)) < 2:
        raise OptionError("merge needs at least two different sources")
    options = _Options(strategy, reindex, iou, quorum)
    result = MergeResult(new_name)
    with staged_reports() as reports, project.writing() as connection:
        versions = VersionWriter.begin(connection)
        inputs = [find_source(connection, name) for name in dict.fromkeys(names)]
        file_rows = [row for source in inputs for row in fetch.file_rows(connection, WORKING_STATE, source.id)]
        roots = {source.id: source.path for source in inputs}
        names_by_id = {source.id: source.name for source in inputs}
        groups: dict[tuple[str, str], list[Contributor]] = {}
        for row in file_rows:
            groups.setdefault((row.task, row.subset), []).append(Contributor(row, names_by_id[row.source_id]))
        for source in inputs:  # frees the names; their rows go below, in the same change
            release_name(versions, source)
        options_record = {"merged_from": [s.name for s in inputs], "strategy": options.strategy}
        source_id = insert_source(versions, new_name, "coco", None, options_record)
        writer = SourceWriter(versions, source_id, new_source=True, image_object=image_record_object)
        merger = _Merger(options, result)
        for position, ((task, subset), contributors) in zip(fresh_positions(len(groups)), groups.items()):
            name = file_name_for(task, subset)
            progress.start(f"merging {name}", 1)
            composed = compose(connection, WORKING_STATE, name, contributors, options.reindex)
            task_file, refs = merger.merged_file(connection, composed, subset, roots)
            writer.write_file(task_file, position, refs)
            result.files += 1
            result.annotations += len(task_file.annotations) + sum(len(r.segments) for r in task_file.panoptic)
            progress.advance()
        result.images = writer.item_count
        writer.finish()
        for source in inputs:
            close_source(versions, source)
        if options.strategy == "intersect" or result.conflicts:  # a bad path rolls back; in place after the commit
            result.report = Path(report) if report is not None else project.directory / f"merge-report-{new_name}.json"
            _write_report(reports, result, list(dict.fromkeys(names)), options)
    project.refresh_statistics()
    progress.finish()
    return result


class _Merger:
    def __init__(self, options: _Options, result: MergeResult):
        self.options = options
        self.result = result

    def merged_file(
        self, connection: Any, composed: ComposedFile, subset: str, roots: dict[int, str | None]
    ) -> tuple[Any, dict[str, ImageRef]]:
        document: dict[str, Any] = dict(composed.sections)
        document["images"] = composed.images
        masks: dict[tuple[int, int], bytes] = {}
        if composed.task == "panoptic":
            records = []
            for record, segments, placement in panoptic_records(connection, WORKING_STATE, composed, None):
                for row in segments:
                    masks[(placement.coco_id, row.coco_id)] = bytes(row.rle)
                records.append(panoptic_object(
                    placement.coco_id, record.png_name, record.extra,
                    [composed.segment_object(row, record.file_id) for row in segments],
                ))
            document["annotations"] = records
        else:
            document["annotations"] = self._annotations(connection, composed)
        ordered = {key: document[key] for key in composed.layout if key in document}
        if "annotations" not in ordered and document["annotations"]:
            ordered["annotations"] = document["annotations"]
        task_file = read_task_document(
            ordered, f"merged {composed.name}", composed.task, subset, composed.name, ErrorPolicy()
        )
        for panoptic in task_file.panoptic:
            for segment in panoptic.segments:
                rle = masks[(panoptic.image_id, segment["coco_id"])]
                segment["rle"], segment["rle_form"] = rle, RLE_STRING
                segment["hash"] = segment_hash(segment["hash"], rle)
        refs = {}
        for image in composed.image_files:
            if image.path is None or image.sha256 is None:
                continue
            root = roots.get(image.source_id)
            path = str(Path(root) / image.path) if root else image.path
            refs[image.file_name] = ImageRef(path, image.size or 0, image.sha256)
        return task_file, refs

    def _annotations(self, connection: Any, composed: ComposedFile) -> list[dict[str, Any]]:
        found = candidates(connection, WORKING_STATE, composed, None)
        if self.options.strategy == "union":
            return [with_output_id(composed, candidate) for candidate in found]
        by_image: dict[int, list[Candidate]] = {}
        for candidate in found:
            by_image.setdefault(candidate.obj["image_id"], []).append(candidate)
        file_names = {image["id"]: image["file_name"] for image in composed.images}
        kept: list[Candidate] = []
        for image_id, group in by_image.items():
            sources = list(dict.fromkeys(composed.listed_by[image_id]))
            if len(sources) == 1:
                kept.extend(group)
            elif self.options.strategy == "exact":
                kept.extend(self._exact(composed, file_names[image_id], group, sources))
            else:
                kept.extend(self._intersect(composed, file_names[image_id], group, sources))
        return [with_output_id(composed, candidate) for candidate in kept]

    # -- exact ------------------------------------------------------------------------------

    def _exact(self, composed: ComposedFile, file_name: str, group: list[Candidate], sources: list[str]) -> list[Candidate]:
        contents: dict[str, Counter[bytes]] = {source: Counter() for source in sources}
        for candidate in group:
            content = {key: value for key, value in candidate.obj.items() if key != "id"}
            contents[candidate.contributor.source][record_hash(content)] += 1
        first = sources[0]
        for other in sources[1:]:
            if contents[other] != contents[first]:
                raise ConflictError(
                    f"exact merge: {composed.name}: image '{file_name}' has different annotations in "
                    f"sources {first} and {other}; use --strategy union or intersect"
                )
        kept = [candidate for candidate in group if candidate.contributor.source == first]
        self.result.merged += len(group) - len(kept)
        return kept

    # -- intersect --------------------------------------------------------------------------

    def _intersect(
        self, composed: ComposedFile, file_name: str, group: list[Candidate], sources: list[str]
    ) -> list[Candidate]:
        sources_of = [c.contributor.source for c in group]
        similarity = similarities([c.obj for c in group], composed.task, _size(composed, group[0]), sources_of)
        kept = []
        for members_at in cluster(similarity, sources_of, self.options.iou):
            members = [group[m] for m in members_at]
            agreeing = [m.contributor.source for m in members]
            if len(members) < len(sources):
                self._conflict("no_match", composed, file_name, members,
                               missing=[s for s in sources if s not in agreeing])
            if len(members) < self.options.quorum:
                self.result.dropped += len(members)
                continue
            votes = Counter(m.obj.get("category_id") for m in members)
            winner, count = votes.most_common(1)[0]
            if len(votes) > 1:
                self._conflict("label_vote", composed, file_name, members, votes=[
                    {"category_id": category, "label": _label(composed, category), "votes": n}
                    for category, n in votes.most_common()
                ])
            voters = [m for m in members_at if group[m].obj.get("category_id") == winner]
            kept.append(group[closest_member(voters, members_at, similarity)])
            self.result.merged += len(members) - 1
        order = {id(candidate): position for position, candidate in enumerate(group)}
        return sorted(kept, key=lambda candidate: order[id(candidate)])

    def _conflict(self, kind: str, composed: ComposedFile, file_name: str, members: list[Candidate], **details: Any) -> None:
        self.result.conflicts.append({
            "kind": kind, "file": composed.name, "image": file_name,
            "annotations": [
                {"source": m.contributor.source, "id": m.obj.get("id"), "label": _label(composed, m.obj.get("category_id"))}
                for m in members
            ],
            **details,
        })


def _label(composed: ComposedFile, category_id: int | None) -> str | None:
    """The name of an output category id of the file (None for none)."""
    for category in composed.sections["categories"]:
        if category["id"] == category_id:
            return category.get("name")
    return None


def _size(composed: ComposedFile, candidate: Candidate) -> tuple[int, int]:
    placement = composed.placements[(candidate.contributor.file.id, candidate.row.item_id)]
    return placement.height, placement.width


def _write_report(reports: StagedReports, result: MergeResult, inputs_names: list[str], options: _Options) -> None:
    assert result.report is not None
    reports.write(result.report, {
        "merged_source": result.source, "sources": inputs_names, "strategy": options.strategy,
        "iou_threshold": options.iou, "quorum": options.quorum,
        "annotations_kept": result.annotations, "annotations_merged_as_duplicates": result.merged,
        "annotations_dropped": result.dropped,
        "conflicts": result.conflicts,
    })
