"""The schema lifecycle: the release-tagged history (read fast), plan, migrate, back up,
and the async migrations that run heavy SQL outside a revision's transaction."""
