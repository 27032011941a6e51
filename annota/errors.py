"""The one error hierarchy: every failure a user can cause is an ``AnnotaError``.

Each type carries its exit code. The command line turns them into a one-line message and
that code (``annota.cli``), the HTTP API into a status; anything else is a bug and keeps
its traceback. The README's exit-code table is checked against this module by a test.
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


class ForeignDatabaseError(AnnotaError):
    """The database holds another application's tables and no ``alembic_version``."""

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


class RevisionLockTimeoutError(MigrationError):
    """A revision could not take its table locks within the lock timeout, every time it was
    tried; the database stays at the previous revision."""

    exit_code = 6


class SchemaNotReadyError(AnnotaError):
    """The schema is not at this code's head (``check``; ``start`` refuses to serve)."""

    exit_code = 3


class AsyncMigrationError(AnnotaError):
    """An async migration failed; its row says why, and a rerun retries it."""

    def __init__(self, message: str, rows: list | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


class InvalidInputError(AnnotaError):
    """Input that does not fit the dataset's settings (the HTTP API answers 422 with each
    problem's location)."""

    def __init__(self, message: str, problems: list[dict] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [{"loc": [], "msg": message}]


class ConflictError(AnnotaError):
    """What the request would create exists already (the HTTP API answers 409)."""


class NotFoundError(AnnotaError):
    """A thing named by the user (a dataset id, ...) does not exist."""

    exit_code = 11


class SearchEngineError(AnnotaError):
    """A search engine call failed."""


class SearchEngineUnreachableError(SearchEngineError):
    """No search engine answers at the configured URL."""

    exit_code = 8


class SearchEngineOverloadedError(SearchEngineError):
    """The engine refused a whole request with HTTP 429; bulk work retries, others fail."""


class WrongSearchEngineError(SearchEngineError):
    """The server at the URL is not the configured kind (Elasticsearch vs OpenSearch)."""

    exit_code = 9


class ReindexError(AnnotaError):
    """A reindex did not complete: documents were rejected or counts did not match."""

    exit_code = 10


class ReindexBusyError(AnnotaError):
    """Another reindex of the dataset holds its lease for longer than we may wait."""

    exit_code = 13


class IndexDriftError(SearchEngineError):
    """``search-engine status``: an index differs from the database or from its settings."""

    exit_code = 12


class BackfillsUnfinishedError(AnnotaError):
    """``backfills status``: some jobs are still pending, queued or running."""

    exit_code = 3


class BackfillsFailedError(AnnotaError):
    """``backfills status`` / ``run``: a job failed or was canceled."""

    exit_code = 4


class RedisUnreachableError(AnnotaError):
    """ANNOTA_REDIS_URL is set but no Redis answers there."""

    exit_code = 5


class HistoryChangedError(AnnotaError):
    """``check``: a revision file changed after it was applied to this database."""

    exit_code = 14


class SchemaDriftError(AnnotaError):
    """``check``: the live schema at head differs from the models (changed by hand?)."""

    exit_code = 15


class ReleaseGateError(AnnotaError):
    """The schema would cross a revision whose required jobs (backfills, async
    migrations) are unfinished; the database stays before that revision. Carries what
    the gated revision, what the run did (``result``) and the jobs (``jobs``)."""

    exit_code = 16

    def __init__(self, message: str, *, revision: object = None, result: object = None,
                 jobs: list | None = None) -> None:
        super().__init__(message)
        self.revision, self.result, self.jobs = revision, result, jobs or []


class InvalidArchiveError(AnnotaError):
    """A file that is not an annota archive, or one that was truncated, corrupted or edited
    (a member's SHA-256 or row count differs from its manifest)."""

    exit_code = 17


class ArchiveTooNewError(AnnotaError):
    """An archive written at a revision (or in a format) this annota does not know."""

    exit_code = 18


class ImportConflictError(AnnotaError):
    """``import --on-conflict fail``: a dataset of the archive exists in the database."""

    exit_code = 19


class TargetNotEmptyError(AnnotaError):
    """``copy``: the target database holds data already."""

    exit_code = 20


class ArchiveMismatchError(AnnotaError):
    """``verify``, ``copy``: the two sides' row counts or digests differ."""

    exit_code = 21

    def __init__(self, message: str, differences: list | None = None) -> None:
        super().__init__(message)
        self.differences = differences or []


class CopyFailedError(AnnotaError):
    """``copy``: the target refused the rows (a value it cannot store, a broken key or
    reference) or failed while they went in; its transaction was rolled back."""

    exit_code = 25


class PreflightError(AnnotaError):
    """``upgrade``: a preflight check failed; nothing was changed."""

    exit_code = 22

    def __init__(self, message: str, checks: list | None = None) -> None:
        super().__init__(message)
        self.checks = checks or []


class PreflightSearchError(PreflightError):
    """``upgrade``: a search engine check failed (product or version, vectors, health,
    disk watermarks, read-only indices); nothing was changed."""

    exit_code = 23


class PreflightRedisError(PreflightError):
    """``upgrade``: Redis, configured, does not answer; nothing was changed."""

    exit_code = 24
