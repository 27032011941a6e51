"""One archive format for backup, restore, moving datasets, and SQLite <-> PostgreSQL.

- ``values``: each column's logical kind, its archive encoding and its canonical form;
- ``tables``: which tables an archive holds, read in one snapshot, written in bulk;
- ``fileformat``: the zip file: members, manifest, checksums, and what makes it invalid;
- ``export``, ``load`` (import), ``copy``, ``verify``, ``backup`` (before an upgrade).
"""
