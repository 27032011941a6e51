"""Settings from the environment. Read once per command; passed explicitly after that."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from annota.server.dburl import DatabaseURL


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: DatabaseURL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("ANNOTA_HOME") or Path.home() / ".annota").expanduser().absolute()
        raw = env.get("ANNOTA_DATABASE_URL") or f"sqlite:///{home / 'annota.db'}"
        return cls(home=home, database_url=DatabaseURL.parse(raw))
