"""Every ``ANNOTA_*`` setting: typed, validated and documented in one place.

``Settings.from_env()`` is the one place annota reads its process environment. It is
called once, at the edge (a command, the RQ job, the tests), and the typed object is
passed inward; library code never looks at ``os.environ``. A malformed value of any
setting is a ``ConfigurationError`` naming the variable and what it expects, raised at
once, before anything connects anywhere.

The table ``SETTINGS`` drives parsing, the README's settings table and the tests that
feed every setting malformed values. Plain dataclasses rather than pydantic-settings:
pydantic's import alone costs more than ``annota server database revisions`` does in
all (about 0.12 s against 0.17 s, measured on this 2-core machine).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from annota.errors import ConfigurationError
from annota.urls import MASK, DatabaseURL, encode_userinfo, mask_url, url_password

SEARCH_ENGINES = ("sqlite", "elasticsearch", "opensearch")
DEFAULT_ENGINE_URL = "http://localhost:9200"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_STALE_SECONDS = 120.0


class Secret:
    """A secret value that prints as ``***`` (in ``str``, ``repr`` and f-strings)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- parsers: the stripped, non-empty raw text in, the typed value out ----------------------
# Each raises ValueError; ``Setting.read`` turns that into one line naming the variable.

def _text(raw: str) -> str:
    if _CONTROL.search(raw):
        raise ValueError("contains a control character")
    return raw


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value not in _TRUE + _FALSE:
        raise ValueError
    return value in _TRUE


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)  # ValueError for anything but a whole number
        if not low <= value <= high:
            raise ValueError
        return value
    return parse


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 < value < 10**7:  # also refuses nan and inf
        raise ValueError
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError
        return raw.lower()
    return parse


def _http_url(raw: str) -> str:
    from urllib.parse import urlsplit

    url = encode_userinfo(_text(raw).rstrip("/"))
    parts = urlsplit(url)
    parts.port  # noqa: B018 - ValueError for a port that is not a number
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
        raise ValueError
    return url


def _redis_url(raw: str) -> str:
    from urllib.parse import urlsplit

    url = encode_userinfo(_text(raw))
    parts = urlsplit(url)
    parts.port  # noqa: B018
    if parts.scheme not in ("redis", "rediss", "unix") or " " in url:
        raise ValueError
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError
    return url


def _index_prefix(raw: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,99}", raw):
        raise ValueError
    return raw


def _host(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:_\[\]-]{1,255}", raw):
        raise ValueError
    return raw


def _path(raw: str) -> Path:
    return Path(_text(raw)).expanduser().absolute()


def _secret(raw: str) -> Secret:
    return Secret(_text(raw))


class Setting(NamedTuple):
    """One environment variable: how to read it, its default, and what it means."""

    variable: str
    parse: Callable[[str], Any]
    default: Any
    expects: str  # completes "ANNOTA_X must be ..."
    meaning: str
    secret: bool = False  # never echo the value, even a malformed one
    strip: bool = True  # paths keep their spaces: a directory may be named " x "

    @property
    def attribute(self) -> str:
        return self.variable.removeprefix("ANNOTA_").lower()

    def read(self, env: Mapping[str, str]) -> Any:
        if self.variable not in env:
            return self.default
        raw = env[self.variable]
        if not raw.strip():
            # a secret or URL that came through empty must not quietly mean "the default"
            # (a production database URL would become an empty embedded database)
            raise ConfigurationError(f"{self.variable} is set but blank: unset it, or set it "
                                     f"to {self.expects}")
        raw = raw.strip() if self.strip else raw
        try:
            return self.parse(raw)
        except ConfigurationError:
            raise
        except ValueError:
            shown = "" if self.secret else f", not {_shown(raw)}"
            raise ConfigurationError(f"{self.variable} must be {self.expects}{shown}") from None


def _shown(raw: str) -> str:
    if _CONTROL.search(raw):
        return "(a value with a control character)"
    text = mask_url(raw)
    return repr(text if len(text) <= 80 else text[:77] + "...")


SETTINGS: tuple[Setting, ...] = (
    Setting("ANNOTA_HOME", _path, None, "a directory path (no control characters)",
            "where annota keeps its files (`~/.annota`)", strip=False),
    Setting("ANNOTA_DATABASE_URL", _text, None,
            "sqlite:///relative.db, sqlite:////abs/path.db or postgresql://user:pw@host/db",
            "the database (`sqlite:///$ANNOTA_HOME/annota.db`)"),
    Setting("ANNOTA_TRACEBACK", _flag, False, "true or false",
            "show full tracebacks instead of one-line errors (as `--traceback`)"),
    Setting("ANNOTA_SEARCH_ENGINE", _choice(*SEARCH_ENGINES), None,
            f"one of {', '.join(SEARCH_ENGINES)}",
            "`sqlite` (embedded: the default on a SQLite database with no "
            "ANNOTA_ELASTICSEARCH), `elasticsearch` (8 and 9; the default otherwise) or "
            "`opensearch` (2.x; vectors need k-NN)"),
    Setting("ANNOTA_ELASTICSEARCH", _http_url, None,
            "an http(s) URL such as http://localhost:9200",
            "the search engine's URL (`http://localhost:9200`; "
            "`https://user:password@host:9200` works)"),
    Setting("ANNOTA_SEARCH_PATH", _path, None, "a file path (no control characters)",
            "the embedded engine's file (beside a SQLite database: `annota.search.db`; "
            "else `$ANNOTA_HOME/search.db`)", strip=False),
    Setting("ANNOTA_ELASTICSEARCH_API_KEY", _secret, None, "an API key (no control characters)",
            "Elasticsearch API key (OpenSearch has none)", secret=True),
    Setting("ANNOTA_ELASTICSEARCH_USERNAME", _text, None, "a user name (no control characters)",
            "basic-auth user of the search engine"),
    Setting("ANNOTA_ELASTICSEARCH_PASSWORD", _secret, None, "a password (no control characters)",
            "basic-auth password of the search engine", secret=True),
    Setting("ANNOTA_ELASTICSEARCH_CA_PATH", _path, None, "a file path (no control characters)",
            "CA bundle for the search engine (system CAs)", strip=False),
    Setting("ANNOTA_ELASTICSEARCH_SSL_VERIFY", _flag, True, "true or false",
            "`false` turns TLS verification off"),
    Setting("ANNOTA_SEARCH_INDEX_PREFIX", _index_prefix, "annota",
            "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            "prefix of annota's aliases and indices (deployments can share a cluster)"),
    Setting("ANNOTA_SEARCH_REPLICAS", _whole(0, 100), 0, "a whole number from 0 to 100",
            "replicas restored after an index build"),
    Setting("ANNOTA_SEARCH_SHARDS", _whole(1, 1024), 1, "a whole number from 1 to 1024",
            "primary shards per index"),
    Setting("ANNOTA_REDIS_URL", _redis_url, None, "a redis:// or rediss:// URL",
            "run backfill jobs on RQ workers (`annota server worker`), not in-process"),
    Setting("ANNOTA_BACKFILL_THREADS", _whole(1, 64), 2, "a whole number from 1 to 64",
            "in-process backfill threads (PostgreSQL; SQLite uses one)"),
    Setting("ANNOTA_BACKFILL_STALE_SECONDS", _seconds, DEFAULT_STALE_SECONDS,
            "a number of seconds above 0",
            "a RUNNING job without a heartbeat this long is reclaimed"),
    Setting("ANNOTA_BACKFILL_BATCH_SECONDS", _seconds, 0.1, "a number of seconds above 0",
            "the time a backfill batch's transaction aims at (its size adapts)"),
    Setting("ANNOTA_MIGRATION_LOCK_TIMEOUT", _seconds, 5.0, "a number of seconds above 0",
            "PostgreSQL: how long a revision waits for a lock before it is tried again"),
    Setting("ANNOTA_MIGRATION_STATEMENT_TIMEOUT", _seconds, 600.0,
            "a number of seconds above 0",
            "PostgreSQL: how long one statement of a revision may run"),
    Setting("ANNOTA_MIGRATION_RETRIES", _whole(0, 100), 4, "a whole number from 0 to 100",
            "times a revision that hit the lock timeout is tried again (with backoff)"),
    Setting("ANNOTA_BACKUP_KEEP", _whole(1, 1000), 5, "a whole number from 1 to 1000",
            "archives `upgrade` keeps under $ANNOTA_HOME/backups (the newest)"),
    Setting("ANNOTA_ALLOW_SCHEDULED_MIGRATIONS", _flag, False, "true or false",
            "`true`: `migrate` only schedules async migrations"),
    Setting("ANNOTA_SERVER_HOST", _host, "127.0.0.1", "a host name or IP address",
            "where `annota server start` listens (as `--host`)"),
    Setting("ANNOTA_SERVER_PORT", _whole(1, 65535), 6900, "a port number from 1 to 65535",
            "the API's TCP port (as `--port`)"),
    Setting("ANNOTA_NEW_USER_API_KEY", _secret, None, "an API key (no control characters)",
            "the API key `users create` gives the new user (as `--api-key`)", secret=True),
    Setting("ANNOTA_SECRET_KEY", _secret, None, "a key (no control characters)",
            "signs the dashboard's session cookies; replicas behind one address share it "
            "(`$ANNOTA_HOME/secret-key`, made on first use)", secret=True),
)
BY_VARIABLE = {s.variable: s for s in SETTINGS}


@dataclass(frozen=True)
class SearchSettings:
    """Where and how to reach the search engine. Secrets print as ``***``."""

    engine: str  # elasticsearch | opensearch | sqlite
    url: str = field(repr=False)  # may carry user:password; show masked_url
    api_key: Secret | None
    username: str | None
    password: Secret | None
    ca_path: Path | None
    verify_certs: bool
    index_prefix: str
    replicas: int
    shards: int
    path: Path | None = None  # the embedded engine's file

    @property
    def masked_url(self) -> str:
        """Where the engine is, as messages show it (the embedded engine: its file)."""
        return str(self.path) if self.engine == "sqlite" else mask_url(self.url)

    @property
    def secrets(self) -> list[str]:
        """The secret values, for scrubbing engine messages."""
        return [s.get_secret_value() for s in (self.password, self.api_key) if s] + [
            p for p in [url_password(self.url)] if p]


@dataclass(frozen=True)
class Settings:
    """Every setting of one annota process, validated."""

    home: Path
    database_url: DatabaseURL
    search: SearchSettings
    traceback: bool
    redis_url: str | None = field(repr=False)  # may carry a password
    backfill_threads: int
    backfill_stale_seconds: float
    backfill_batch_seconds: float
    migration_lock_timeout: float
    migration_statement_timeout: float
    migration_retries: int
    backup_keep: int
    allow_scheduled_migrations: bool
    server_host: str
    server_port: int
    new_user_api_key: Secret | None
    secret_key: Secret | None

    @property
    def secrets(self) -> list[str]:
        """Every secret these settings hold, for scrubbing anything shown to a user."""
        url = self.database_url
        return [s for s in (url.password, url.raw_password, *self.search.secrets,
                            url_password(self.redis_url or ""),
                            self.new_user_api_key and self.new_user_api_key.get_secret_value(),
                            self.secret_key and self.secret_key.get_secret_value())
                if s]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting from ``environ`` (default: this process's)."""
        env = os.environ if environ is None else environ
        values = {s.attribute: s.read(env) for s in SETTINGS}
        home = values.pop("home") or Path("~/.annota").expanduser().absolute()
        raw_url = values.pop("database_url")
        database_url = (DatabaseURL.parse(raw_url) if raw_url
                        else DatabaseURL.for_sqlite_file(home / "annota.db"))
        engine_url = values.pop("elasticsearch")
        engine = values.pop("search_engine") or (
            "sqlite" if engine_url is None and database_url.backend == "sqlite"
            else "elasticsearch")
        search = SearchSettings(
            engine=engine, url=engine_url or DEFAULT_ENGINE_URL,
            path=values.pop("search_path") or _search_file(home, database_url),
            api_key=values.pop("elasticsearch_api_key"),
            username=values.pop("elasticsearch_username"),
            password=values.pop("elasticsearch_password"),
            ca_path=values.pop("elasticsearch_ca_path"),
            verify_certs=values.pop("elasticsearch_ssl_verify"),
            index_prefix=values.pop("search_index_prefix"),
            replicas=values.pop("search_replicas"), shards=values.pop("search_shards"),
        )
        if search.api_key and (search.username or search.password):
            raise ConfigurationError(
                "ANNOTA_ELASTICSEARCH_API_KEY and ANNOTA_ELASTICSEARCH_USERNAME/_PASSWORD are "
                "both set; the search engine takes one way to authenticate: unset one")
        if search.engine == "opensearch" and search.api_key:
            raise ConfigurationError(
                "OpenSearch has no API keys; set ANNOTA_ELASTICSEARCH_USERNAME and "
                "ANNOTA_ELASTICSEARCH_PASSWORD instead of ANNOTA_ELASTICSEARCH_API_KEY")
        return cls(home=home, database_url=database_url, search=search, **values)


def _search_file(home: Path, database_url: DatabaseURL) -> Path:
    """The embedded engine's file: beside a SQLite database (``annota.db`` ->
    ``annota.search.db``), else under ``ANNOTA_HOME``."""
    db = database_url.sqlite_path
    if db is None:
        return home / "search.db"
    return db.with_name(f"{db.stem}.search{db.suffix}")


def traceback_requested(environ: Mapping[str, str] | None = None) -> bool:
    """``ANNOTA_TRACEBACK``, read on its own: the error handler needs it even when another
    setting is what failed."""
    env = os.environ if environ is None else environ
    return env.get("ANNOTA_TRACEBACK", "").strip().lower() in _TRUE
