"""The windows of a big annotation file, known again by their digests, so that an update reads
only those that changed.

A file read in windows (repo.model.chunked_json) is remembered as the digest of each window of
its `annotations` array, with how many elements it holds, and one digest of every other byte
(the "frame": header, categories, images). Windows are cut where the content says, so an edit
leaves the other windows' bytes as they were. When an update meets the file again with the same
frame, a window whose digest it knows holds the records the source's rows already have: the
update takes them from the rows, in the window's order, and parses only the other windows.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

from repo.model.records import AnnotationRecord, WindowDigests


class LastWindows:
    """The windows of a file as last read, and how to read the records its rows hold (in file
    order, of the form `SourceWriter.last_windows` makes; None when the rows are not one per
    element), for an update to take from. The rows are read at the first window whose digest
    is known: an update whose file changed outside its annotations reads none of them."""

    def __init__(self, digests: WindowDigests, load_records: Callable[[], list[AnnotationRecord] | None]):
        self.frame = digests.frame
        self._by_digest: defaultdict[bytes, deque[tuple[int, int, int]]] = defaultdict(deque)
        first = 0
        for index, (digest, count) in enumerate(digests.windows):
            self._by_digest[digest].append((index, first, count))
            first += count
        self._load_records = load_records
        self._records: list[AnnotationRecord] | None = None
        self._last_taken = -1
        self.taken = 0  # windows taken so far
        self.read = 0  # windows read instead

    def take(self, digest: bytes) -> list[AnnotationRecord] | None:
        """The records of a window with this digest, if one came after the last taken (the rows
        keep their order, so their places stay: see store.positions); None: read the window."""
        candidates = self._by_digest.get(digest)
        while candidates and candidates[0][0] <= self._last_taken:
            candidates.popleft()
        if candidates and self._records is None:
            self._records = self._load_records()
            if self._records is None:
                self._by_digest.clear()  # the rows cannot be matched to the windows: read them all
                candidates = None
        if not candidates:
            self.read += 1
            return None
        self._last_taken, first, count = candidates.popleft()
        self.taken += 1
        return self._records[first:first + count]  # type: ignore[index]
