"""A panoptic file's segments cut from its PNGs at import, on all cores: every segment's mask
as compressed RLE, from one decode of its PNG. A file read whole is cut at once; a file read in
parts (repo.model.chunked_json) a part at a time, so that memory holds one part's masks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from repo._internal.heap import keep_freed_memory
from repo._internal.parallel import Workers
from repo.coco.layout import AnnotationFile
from repo.coco.reader import refuse_first_record_problem
from repo.errors import InputError
from repo.formats.registry import PreviousImport
from repo.model.paths import FolderFiles
from repo.model.policy import ErrorPolicy
from repo.model.records import FilePart, ImageRecord, PanopticRecord, TaskFile
from repo.progress import Progress

if TYPE_CHECKING:
    from repo.coco.panoptic import DecodeJob

# repo.coco.panoptic (Pillow, ISA-L, libspng) is imported where it is used: an update that
# decodes no PNG does not load it.


def image_sizes(images: list[ImageRecord]) -> dict[int, tuple[int, int]]:
    return {image["coco_id"]: (image["width"], image["height"]) for image in images}


class PngCutter:
    """Cuts a panoptic file's records' segments from their PNGs, on all cores. In an update
    (`previous`), a PNG whose bytes did not change is not decoded again (`notes` says how
    many), and one whose `stat` is the one remembered with its digest is not even read."""

    def __init__(
        self, annotation_file: AnnotationFile, task_file: TaskFile, policy: ErrorPolicy, progress: Progress,
        previous: PreviousImport | None, notes: list[str],
    ):
        self.annotation_file, self.task_file, self.policy, self.progress = annotation_file, task_file, policy, progress
        self.kept = previous.kept_pngs(task_file.task, task_file.subset) if previous is not None else {}
        self.digests = previous.digests if previous is not None else None
        self.notes = notes
        self.records_cut = self.pngs_reused = 0
        self.shown = False  # the progress bar of the file's decoding
        self.files = FolderFiles(annotation_file.root)  # a PNG counts only inside the dataset folder

    def cut(
        self, records: list[PanopticRecord], sizes: Mapping[int, tuple[int, int]], expected: int
    ) -> list[PanopticRecord]:
        """The records whose PNGs decoded, their masks attached; a bad PNG fails the import,
        or under `skip` drops its record. The file has about `expected` records in all."""
        from repo.coco.panoptic import decode_job

        if not self.shown:
            self.progress.start(f"decoding {self.annotation_file.png_dir.name}/", expected)
            self.shown = True
        keep_freed_memory()  # PNG after PNG frees and allocates the same megabytes
        with Workers(len(records)) as workers:
            jobs = self._jobs(records, sizes)
            decoded = self._attach(records, jobs, workers.map(decode_job, jobs))
        self.records_cut += len(decoded)
        return decoded

    def cut_parts(self, parts: Iterator[FilePart]) -> Iterator[FilePart]:
        """A file read in parts: each part's records cut as it is taken. A bad PNG fails the
        import with the problem a whole-file read names first, which is a later record's
        if one has a problem (records are all checked before any PNG is decoded)."""
        sizes: dict[int, tuple[int, int]] = {}
        for part in parts:
            sizes.update(image_sizes(part.images))
            if part.panoptic:
                try:  # at most one record per image, and every image is read by now
                    part.panoptic = self.cut(part.panoptic, sizes, len(sizes))
                except InputError:
                    source = self.annotation_file
                    refuse_first_record_problem(source.path, source.shown_as, self.task_file)
                    raise
            yield part
        self.note()

    def note(self) -> None:
        if self.kept:
            counts = f"{self.pngs_reused} of {self.records_cut}"
            self.notes.append(f"{self.annotation_file.shown_as}: {counts} PNGs unchanged, not decoded")

    def _jobs(self, records: list[PanopticRecord], sizes: Mapping[int, tuple[int, int]]) -> list[DecodeJob]:
        """Each record's decoding job. A PNG in `kept`, for an image of the same size and the
        same segment ids, may reuse its kept masks if its bytes did not change."""
        from repo.coco.panoptic import DecodeJob

        png_dir, shown_dir = self.annotation_file.png_dir, self.annotation_file.shown_as.removesuffix(".json")
        jobs = []
        for record in records:
            width, height = sizes[record.image_id]
            segment_ids = tuple(segment["coco_id"] for segment in record.segments)
            known = self.kept.get(record.png_name)
            reusable = (
                known is not None and (known.width, known.height) == (width, height)
                and len(set(segment_ids)) == len(segment_ids) and set(segment_ids) == set(known.masks)
            )
            png_path = str(png_dir / record.png_name)
            found = self.files.find(png_path)
            jobs.append(DecodeJob(
                png_path, found[0] if found is not None else None, f"{shown_dir}/{record.png_name}", record.image_id, width, height, segment_ids,
                known.sha256 if known is not None and reusable else None,
                tuple(known.masks[i] for i in segment_ids) if known is not None and reusable else None,
                self.digests.entry(png_path) if known is not None and reusable and self.digests is not None else None,
            ))
        return jobs

    def _attach(
        self, records: list[PanopticRecord], jobs: list[DecodeJob], outcomes: Iterator[Any]
    ) -> list[PanopticRecord]:
        """Each record's per-segment masks from its PNG's outcome; the digests of PNGs read are
        remembered."""
        from repo.coco.panoptic import attach_segment_masks

        decoded = []
        for record, job, outcome in zip(records, jobs, outcomes):
            self.progress.advance()
            if isinstance(outcome, tuple):
                self.policy.report(InputError(*outcome))
                continue
            attach_segment_masks(record, outcome.masks)
            record.png_path, record.png_sha256 = job.real_path, outcome.sha256
            if self.digests is not None and outcome.status is not None:
                self.digests.remember(job.png_path, outcome.status, outcome.sha256)
            self.pngs_reused += not outcome.decoded
            decoded.append(record)
        return decoded
