"""The one error hierarchy: every failure a user can cause is an ``AnnotaError``.

The command line turns these into a one-line message and the exit code they carry;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AnnotaError(Exception):
    """Base of every error annota reports to a user."""

    exit_code = 1


class ConfigurationError(AnnotaError):
    """A setting is missing or malformed (an environment variable, an option)."""

    exit_code = 2


class DatabaseUnreachableError(AnnotaError):
    """The database could not be opened or connected to."""

    exit_code = 5


class UnknownRevisionError(AnnotaError):
    """A release tag or revision that this code's history does not contain."""

    def __init__(self, message: str, known: list[str] | None = None) -> None:
        super().__init__(message)
        self.known = known or []


class SchemaAheadError(AnnotaError):
    """The database is at a revision this code does not know (a newer annota wrote it)."""

    exit_code = 4


class ConfirmationRequiredError(AnnotaError):
    """A destructive step needs consent: answer the prompt or pass ``--yes``."""

    exit_code = 7


class AbortedError(AnnotaError):
    """The user answered no."""

    exit_code = 1


class MigrationLockTimeoutError(AnnotaError):
    """Another migration held the lock for longer than we were told to wait."""

    exit_code = 6


class ConcurrentChangeError(AnnotaError):
    """The schema moved while we waited for the lock, so the confirmed plan is stale."""

    exit_code = 6


class UnsupportedOperationError(AnnotaError):
    """The operation cannot be done on this backend (the message says why)."""

    exit_code = 2


class MigrationError(AnnotaError):
    """A revision failed while running; the database stays at the last completed one."""

    exit_code = 1


class NotFoundError(AnnotaError):
    """A thing named by the user (a dataset id, ...) does not exist."""

    exit_code = 11


class SearchEngineError(AnnotaError):
    """A search engine call failed."""


class SearchEngineUnreachableError(SearchEngineError):
    """No search engine answers at the configured URL."""

    exit_code = 8


class WrongSearchEngineError(SearchEngineError):
    """The server at the URL is not the configured kind (Elasticsearch vs OpenSearch)."""

    exit_code = 9


class ReindexError(AnnotaError):
    """A reindex did not complete: documents were rejected or counts did not match."""

    exit_code = 10


class RedisUnreachableError(AnnotaError):
    """ANNOTA_REDIS_URL is set but no Redis answers there."""

    exit_code = 5
