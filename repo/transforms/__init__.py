"""Changes to the data that an export makes only when the user asks for them.

A plain export gives back what was imported. Datumaro's export options ask for changes:
masks as polygons or polygons as masks (`segmentation`), no overlapping instances
(`covered`), one COCO task made from another (`derive`), images in another format or in
one folder (`images`), no `attributes` (`attributes`). Each module here is a set of pure
functions over stored annotation rows (the fields of `repo.model.records.AnnotationRecord`)
and image bytes; the export calls them as it streams. `masks` holds the pixel operations
they share.
"""
