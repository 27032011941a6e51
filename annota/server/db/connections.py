"""Connections whose failures are one clear, masked line.

SQLAlchemy is imported inside the functions: read-only commands on SQLite use the
standard library's ``sqlite3`` and never pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from annota.errors import DatabaseUnreachableError
from annota.urls import DatabaseURL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def unreachable(url: DatabaseURL, exc: BaseException) -> DatabaseUnreachableError:
    return DatabaseUnreachableError(
        f"cannot open the database at {url.masked}: {url.scrub(first_line(exc))}"
    )


def report_connect_errors(database: Engine, url: DatabaseURL) -> None:
    """Every failure to open a connection, wherever it happens, is one masked line."""
    import sqlalchemy as sa

    @sa.event.listens_for(database, "handle_error")
    def _on_error(context) -> None:  # noqa: ANN001
        if context.connection is None or context.is_disconnect:
            raise unreachable(url, context.original_exception)


@contextmanager
def connect(database: Engine, url: DatabaseURL) -> Iterator[Connection]:
    """``database.connect()`` whose connection failures raise ``DatabaseUnreachableError``."""
    from sqlalchemy.exc import DBAPIError

    try:
        connection = database.connect()
    except DBAPIError as exc:
        raise unreachable(url, exc) from None
    with connection:
        yield connection
