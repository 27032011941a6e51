"""Settings from the environment. Read once per command; passed explicitly after that."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from annota.errors import ConfigurationError
from annota.server.dburl import DatabaseURL, mask_url

SEARCH_ENGINES = ("elasticsearch", "opensearch")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE | _FALSE:
        raise ConfigurationError(f"{name} must be true or false, not {raw!r}")
    return raw in _TRUE


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None


@dataclass(frozen=True)
class SearchSettings:
    """Where and how to reach the search engine. Secrets never leave through ``repr``."""

    engine: str
    url: str = field(repr=False)  # may carry user:password; show masked_url
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_path: str | None = None
    verify_certs: bool = True
    index_prefix: str = "annota"
    replicas: int = 0
    shards: int = 1

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SearchSettings:
        engine = env.get("ANNOTA_SEARCH_ENGINE", "elasticsearch").strip().lower()
        if engine not in SEARCH_ENGINES:
            raise ConfigurationError(
                f"ANNOTA_SEARCH_ENGINE must be one of {', '.join(SEARCH_ENGINES)}, not {engine!r}"
            )
        url = env.get("ANNOTA_ELASTICSEARCH", "http://localhost:9200").strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
            raise ConfigurationError(
                f"ANNOTA_ELASTICSEARCH must be an http(s) URL such as http://localhost:9200, "
                f"not {mask_url(url)!r}"
            )
        prefix = env.get("ANNOTA_SEARCH_INDEX_PREFIX", "annota").strip()
        if not prefix or prefix != prefix.lower() or prefix.startswith(("_", "-", "+", ".")):
            raise ConfigurationError(
                "ANNOTA_SEARCH_INDEX_PREFIX must be lowercase and not start with _ - + or ."
            )
        return cls(
            engine=engine,
            url=url,
            api_key=env.get("ANNOTA_ELASTICSEARCH_API_KEY") or None,
            username=env.get("ANNOTA_ELASTICSEARCH_USERNAME") or None,
            password=env.get("ANNOTA_ELASTICSEARCH_PASSWORD") or None,
            ca_path=env.get("ANNOTA_ELASTICSEARCH_CA_PATH") or None,
            verify_certs=_flag(env, "ANNOTA_ELASTICSEARCH_SSL_VERIFY", True),
            index_prefix=prefix,
            replicas=_int(env, "ANNOTA_SEARCH_REPLICAS", 0),
            shards=_int(env, "ANNOTA_SEARCH_SHARDS", 1),
        )


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: DatabaseURL
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def search(self) -> SearchSettings:
        """Read when first needed, so a search setting never breaks a database command."""
        return SearchSettings.from_env(self.environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("ANNOTA_HOME") or Path.home() / ".annota").expanduser().absolute()
        raw = env.get("ANNOTA_DATABASE_URL") or f"sqlite:///{home / 'annota.db'}"
        return cls(home=home, database_url=DatabaseURL.parse(raw), environ=dict(env))
