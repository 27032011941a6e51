"""The embedded search engine: a SQLite file (FTS5, indexed side tables, exact cosine)."""
