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
_SCHEME = re.compile(r"[a-zA-Z][\w+.\-]*://")
# secret query parameters: password=, sslpassword=, token=, api_key= ...
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:[\w.-]*pass(?:word|wd)?|pwd|[\w.-]*secret|[\w.-]*token"
    r"|api[_-]?key|apikey)=)(?P<pw>[^&\s]*)", re.I)

EXAMPLES = "sqlite:////path/to/annota.db or postgresql://user:password@host:5432/annota"


def split_userinfo(rest: str) -> tuple[str | None, str | None, str]:
    """``user:password@host...`` (what follows ``scheme://``) -> (user, password as written,
    what follows the userinfo). The userinfo ends at the *last* ``@``, so a password may
    hold any character, ``@``, ``:``, ``/``, ``?``, ``#`` and spaces included, encoded or not."""
    at = rest.rfind("@")
    if at < 0:
        return None, None, rest
    user, colon, password = rest[:at].partition(":")
    return user, (password if colon else None), rest[at + 1:]


def encode_userinfo(url: str) -> str:
    """``url`` with its user and password percent-encoded (each decoded first), so that a
    client library parses them back whatever characters they hold."""
    scheme, sep, rest = url.partition("://")
    user, password, after = split_userinfo(rest)
    if not sep or user is None:
        return url
    userinfo = quote(unquote(user), safe="")
    if password is not None:
        userinfo += ":" + quote(unquote(password), safe="")
    return f"{scheme}://{userinfo}@{after}"


def url_password(url: str) -> str | None:
    """The decoded password in a URL's userinfo, if any."""
    _, sep, rest = url.partition("://")
    password = split_userinfo(rest)[1] if sep else None
    return unquote(password) if password else None


def mask_url(text: str) -> str:
    """Replace every password in ``text`` (URL user info or a secret query parameter) with
    ``***``. Each URL runs to the next URL or line end; its user info to its last ``@``."""
    out: list[str] = []
    for line in text.split("\n"):
        starts = [m.end() for m in _SCHEME.finditer(line)]
        if not starts:
            out.append(line)
            continue
        pieces, done = [], 0
        for start, end in zip(starts, [*starts[1:], len(line)], strict=True):
            segment = line[start:end]
            user, password, after = split_userinfo(segment)
            if password:
                segment = f"{user}:{MASK}@{after}"
            pieces.append(line[done:start] + segment)
            done = end
        out.append("".join(pieces))
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK, "\n".join(out))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every URL password masked and each of ``secrets`` replaced, in the forms
    it may take (as is, percent-encoded)."""
    text = mask_url(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, MASK)
    return text


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
        """The URL as written, its password (wherever it ends) replaced with ``***``."""
        scheme, _, rest = self.raw.partition("://")
        user, password, after = split_userinfo(rest)
        if password is not None:
            rest = f"{user}:{MASK}@{after}"
        return _QUERY_SECRET.sub(lambda m: m["head"] + MASK, f"{scheme}://{rest}")

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with annota's driver spelled out (``postgresql://`` -> psycopg 3) and its
        user info percent-encoded, whatever characters the password has."""
        return encode_userinfo(f"{self.driver}://{self.raw.split('://', 1)[1]}")

    def scrub(self, text: str) -> str:
        """Mask this URL's password wherever it appears in ``text`` (e.g. a driver error)."""
        return scrub(text, [self.password or "", self.raw_password or ""])

    @property
    def raw_password(self) -> str | None:
        """The password as written in the URL (maybe percent-encoded)."""
        return split_userinfo(self.raw.split("://", 1)[1])[1] if "://" in self.raw else None

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
        _, password, after = split_userinfo(raw.split("://", 1)[1])
        try:
            parts = urlsplit(f"//{after}")
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise ConfigurationError(f"{setting} is malformed: {shown!r} ({exc})") from None
        if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
            raise ConfigurationError(f"{setting} has no host: {shown!r} (expected {EXAMPLES})")
        return cls(raw, driver, unquote(password) if password else None, None)


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
