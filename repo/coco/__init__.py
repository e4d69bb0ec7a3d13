"""The COCO wire format only: where files live (`layout`), reading and validating them into
`repo.model` records (`reader`), writing them back (`writer`), RLE masks (`rle`), panoptic
PNGs (`panoptic`) and task names (`tasks`). Nothing here touches the database; the COCO
format is connected to the store by `repo.formats.coco`."""
