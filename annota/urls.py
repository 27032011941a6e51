"""URLs: parse, validate and mask database URLs, and mask any URL's password.

At the bottom of the layers (beside ``errors``): the settings validate URLs with it, and
every layer masks with it. Free of heavy imports so read-only commands start fast; each
database dialect turns a ``DatabaseURL`` into its SQLAlchemy engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from annota.errors import ConfigurationError

MASK = "***"

# scheme as written -> the SQLAlchemy driver annota uses for it
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|pass|pwd)=)(?P<pw>[^&\s]*)", re.I)

EXAMPLES = "sqlite:////path/to/annota.db or postgresql://user:password@host:5432/annota"


def mask_url(url: str) -> str:
    """Replace any password in ``url`` (user info or query string) with ``***``."""
    url = _USERINFO_PASSWORD.sub(lambda m: m["head"] + MASK, url)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + MASK, url)


@dataclass(frozen=True)
class DatabaseURL:
    """A validated database URL as the user wrote it, plus what annota derives from it."""

    raw: str = field(repr=False)  # may carry the password; show ``masked``
    driver: str  # the SQLAlchemy drivername: "sqlite" or "postgresql+psycopg"
    password: str | None = field(repr=False)
    sqlite_path: Path | None  # None for PostgreSQL and for in-memory SQLite

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r})"

    @property
    def backend(self) -> str:
        return "sqlite" if self.driver == "sqlite" else "postgresql"

    @property
    def masked(self) -> str:
        return mask_url(self.raw)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with annota's driver spelled out (``postgresql://`` -> psycopg 3)."""
        scheme, rest = self.raw.split(":", 1)
        return f"{self.driver}:{rest}" if scheme != self.driver else self.raw

    def scrub(self, text: str) -> str:
        """Mask this URL's password wherever it appears in ``text`` (e.g. a driver error)."""
        text = mask_url(text)
        if self.password:
            text = text.replace(self.password, MASK)
        return text

    @classmethod
    def for_sqlite_file(cls, path: Path) -> DatabaseURL:
        """The URL of a SQLite file, built from its path: any character works, and the URL
        text is percent-encoded so that it parses back to the same path."""
        return cls("sqlite:///" + quote(str(path), safe="/"), "sqlite", None, path)

    @classmethod
    def parse(cls, raw: str, *, setting: str = "ANNOTA_DATABASE_URL") -> DatabaseURL:
        raw = raw.strip()
        shown = mask_url(raw)
        scheme, sep, _ = raw.partition("://")
        if not sep or not scheme:
            raise ConfigurationError(f"{setting} is not a URL: {shown!r} (expected {EXAMPLES})")
        driver = _DRIVERS.get(scheme.lower())
        if driver is None:
            raise ConfigurationError(
                f"{setting} uses an unsupported database {scheme!r} in {shown!r}; "
                f"annota supports SQLite and PostgreSQL (psycopg 3): {EXAMPLES}"
            )
        if driver == "sqlite":
            return cls(raw, driver, None, _sqlite_path(raw, shown, setting))
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise ConfigurationError(f"{setting} is malformed: {shown!r} ({exc})") from None
        if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
            raise ConfigurationError(f"{setting} has no host: {shown!r} (expected {EXAMPLES})")
        password = unquote(parts.password) if parts.password else None
        return cls(raw, driver, password, None)


def _sqlite_path(raw: str, shown: str, setting: str) -> Path | None:
    # sqlite:///relative/path, sqlite:////absolute/path, sqlite:// or sqlite:///:memory:
    rest = raw.split("://", 1)[1].split("?", 1)[0]
    if rest in ("", "/", "/:memory:"):
        return None
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"{setting} is malformed: {shown!r} (a SQLite URL has three slashes before a "
            "relative path and four before an absolute one)"
        )
    return Path(unquote(rest[1:]))
