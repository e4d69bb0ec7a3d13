"""`dataset_meta.json`: Datumaro's side file naming a dataset's labels (and mask colours).

Datumaro writes it at the dataset root with `--save-dataset-meta` and, when it finds one
there on import, takes its labels *instead of* the files' categories, reading label i as
COCO category id i+1:

    {"labels": ["person", "bicycle", ...],
     "label_map": {"0": "person", ...}, "segmentation_colors": [[220, 20, 60], ...],
     "background_label": "3"}

(`label_map`, `segmentation_colors` and `background_label` only when labels have colours;
`label_map` keys index `segmentation_colors`; written indented by two spaces.)

dsrepo keeps the categories its files declare, so it uses the file as a check: every
category of every labelled file must be the label Datumaro would read for its id (and have
its colour, if both give one); where they disagree the import fails naming the label.
Labels at ids no file declares are not a disagreement (Datumaro would only have more labels).

Writing follows the same reading, so that Datumaro labels a dsrepo export correctly: label
i is the category with id i+1. Ids missing below the largest are filled with placeholder
labels named `class-<id>` (Datumaro's own name for such gaps); category id 0 cannot be
written, since Datumaro reserves it for "no label". Colours come from the categories' `color`
key (panoptic categories have one); unlike Datumaro's writer, which lists only the colours
that exist and so shifts the ones after a gap, `segmentation_colors` has one entry per
label, `null` where a label has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from repo.model.jsonio import load_json_file
from repo.errors import ConflictError, InputError

META_FILE = "dataset_meta.json"
MAX_META_ID = 1 << 20  # placeholders up to this id; beyond, the file would be mostly filler
PLACEHOLDER = "class-{}"

Color = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetMeta:
    """What Datumaro reads from a dataset_meta.json: label names (label i = category id i+1)
    and the colours some of them have."""

    labels: list[str]
    colors: dict[str, Color] = field(default_factory=dict)


def find_meta(root: Path) -> Path | None:
    """The dataset_meta.json of a dataset root, where Datumaro looks for it."""
    path = root / META_FILE
    return path if path.is_file() else None


def read_meta(path: Path, shown_as: str) -> DatasetMeta:
    """Parse a dataset_meta.json as Datumaro does: `labels`, then `label_map` values not listed
    yet, each with `segmentation_colors[key]` as its colour."""
    document = load_json_file(path, shown_as)
    if not isinstance(document, dict):
        raise InputError(shown_as, None, None, "expected an object with 'labels' (and 'label_map', 'segmentation_colors')")
    labels = document.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InputError(shown_as, None, "labels", "expected a list of label names")
    names = dict.fromkeys(labels)
    label_map = document.get("label_map", {})
    colors_list = document.get("segmentation_colors", [])
    if not isinstance(label_map, dict):
        raise InputError(shown_as, None, "label_map", "expected an object of index -> label name")
    if not isinstance(colors_list, list):
        raise InputError(shown_as, None, "segmentation_colors", "expected a list of [r, g, b] colours")
    colors: dict[str, Color] = {}
    for key, name in label_map.items():
        if not isinstance(name, str) or not key.isdigit():
            raise InputError(shown_as, f"label_map key {key!r}", "label_map", "expected a label index and a name")
        names.setdefault(name)
        index = int(key)
        color = colors_list[index] if index < len(colors_list) else None
        if color is not None:
            if not (isinstance(color, list) and len(color) == 3 and all(type(c) is int and 0 <= c <= 255 for c in color)):
                raise InputError(shown_as, f"label '{name}'", "segmentation_colors", f"expected [r, g, b] from 0 to 255, got {color!r}")
            colors[name] = (color[0], color[1], color[2])
    return DatasetMeta(list(names), colors)


def check_categories(meta: DatasetMeta, meta_shown: str, file_shown: str, categories: Iterable[Mapping[str, Any]]) -> None:
    """Raise InputError naming the first label where the meta file and a file's categories
    (records with `coco_id`, `name`, `extra`) disagree."""
    for category in categories:
        coco_id, name = category["coco_id"], category["name"]
        if not 1 <= coco_id <= len(meta.labels):
            raise InputError(
                meta_shown, f"label '{name}'", "labels",
                f"{file_shown} declares category id {coco_id} '{name}', but Datumaro reads the "
                f"{len(meta.labels)} labels here as category ids 1 to {len(meta.labels)}; "
                "remove or fix the file, dsrepo does not choose between them",
            )
        label = meta.labels[coco_id - 1]
        if label != name:
            raise InputError(
                meta_shown, f"label '{label}'", "labels",
                f"Datumaro reads this label as category id {coco_id}, which {file_shown} names '{name}'; "
                "remove or fix the file, dsrepo does not choose between them",
            )
        color = _color_of(category)
        if color is not None and name in meta.colors and meta.colors[name] != color:
            raise InputError(
                meta_shown, f"label '{name}'", "segmentation_colors",
                f"the colour {list(meta.colors[name])} differs from {list(color)}, the 'color' of "
                f"category id {coco_id} in {file_shown}",
            )


def _color_of(category: Mapping[str, Any]) -> Color | None:
    color = (category.get("extra") or {}).get("color")
    if isinstance(color, list) and len(color) == 3 and all(type(c) is int for c in color):
        return (color[0], color[1], color[2])
    return None


def meta_document(categories: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The dataset_meta.json of the categories an export writes (from every labelled file,
    in any order; the same id must name the same label, and give it one colour)."""
    names: dict[int, str] = {}
    colors: dict[int, Color] = {}
    for category in categories:
        coco_id, name = category["coco_id"], category["name"]
        if not 1 <= coco_id <= MAX_META_ID:
            raise ConflictError(
                f"dataset_meta.json cannot list category id {coco_id} '{name}': Datumaro reads label i "
                f"as category id i+1 (ids 1 to {MAX_META_ID} can be written); use --reindex"
            )
        if names.setdefault(coco_id, name) != name:
            raise ConflictError(
                f"dataset_meta.json: category id {coco_id} is '{names[coco_id]}' in one file and "
                f"'{name}' in another; export the tasks separately or use --reindex"
            )
        color = _color_of(category)
        if color is not None and colors.setdefault(coco_id, color) != color:
            raise ConflictError(
                f"dataset_meta.json: label '{name}' has the colour {list(colors[coco_id])} in one file "
                f"and {list(color)} in another"
            )
    labels = [names.get(coco_id, PLACEHOLDER.format(coco_id)) for coco_id in range(1, max(names, default=0) + 1)]
    taken = set(names.values())
    clash = next((label for coco_id, label in enumerate(labels, 1) if coco_id not in names and label in taken), None)
    if clash is not None:
        raise ConflictError(f"dataset_meta.json: the placeholder '{clash}' for a missing category id is also a real label")
    document: dict[str, Any] = {"labels": labels}
    if colors:
        document["label_map"] = {str(coco_id - 1): names[coco_id] for coco_id in sorted(colors)}
        document["segmentation_colors"] = [list(colors[i]) if i in colors else None for i in range(1, len(labels) + 1)]
        background = next((coco_id for coco_id in sorted(colors) if colors[coco_id] == (0, 0, 0)), None)
        if background is not None:
            document["background_label"] = str(background - 1)
    return document


def write_meta(out_dir: Path, document: dict[str, Any]) -> Path:
    """Write dataset_meta.json at the export root, as Datumaro does (orjson, 2-space indent)."""
    path = out_dir / META_FILE
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return path
