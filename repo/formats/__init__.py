"""Formats dsrepo reads and writes, each registered through `repo.formats.registry`.

The built-in formats below are registered the first time the registry is asked; adding a
format is one module in this package and one line here.
"""

BUILTIN = (
    "repo.formats.coco",
    "repo.formats.voc",
    "repo.formats.yolo",
    "repo.formats.parquet",
)
