"""`--allow-attributes false`: no `attributes` key in the annotations written.

`attributes` is Datumaro's extension of COCO (an object of free-form values per annotation,
and per panoptic segment). Readers that validate COCO strictly refuse it; this option drops
it from every annotation object and every entry of a panoptic record's `segments_info`.
"""

from __future__ import annotations

from typing import Any


def without_attributes(obj: dict[str, Any]) -> dict[str, Any]:
    """The COCO annotation object (or panoptic record) without `attributes`, at every level
    COCO defines: the object itself and the segments of a panoptic record."""
    if "attributes" in obj:
        obj = {key: value for key, value in obj.items() if key != "attributes"}
    segments = obj.get("segments_info")
    if isinstance(segments, list) and any(isinstance(s, dict) and "attributes" in s for s in segments):
        obj = dict(obj, segments_info=[without_attributes(s) if isinstance(s, dict) else s for s in segments])
    return obj
