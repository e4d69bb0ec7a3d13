"""The storage layer: the project database and nothing else.

Tables and migrations (`schema`, `migrate`), connecting and locking (`engine`), versioned
writes (`versions`, `source_writer`, `bulk`), reads (`fetch`, `revisions`), and the rows of
sources, labels, image files and the project itself (`sources`, `labels`, `blobs`,
`identity`). It knows tables, not files: formats hand it validated records from
`repo.model`, with their content hashes, and the actions at the top of the package decide
what to write. Functions here take an open connection (or a `VersionWriter`); the actions
open the transaction.
"""
