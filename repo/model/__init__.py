"""The format-neutral model that every other layer speaks.

A format's reader (`repo.coco.reader`, ...) turns files into the validated records of
`records`; the store (`repo.store`) writes those records into tables and reads rows back; a
format's writer turns rows into files again. Neither side imports the other: both import
this package, which holds the records, the JSON codec both use for stored JSON values
(`jsonio`), content hashes (`hashing`), and the policy for bad records (`policy`).
"""
