"""The archive ``upgrade`` writes before its schema step: the whole instance, under
``$ANNOTA_HOME/backups`` (or ``--backup-to``), the newest ``ANNOTA_BACKUP_KEEP`` kept."""

from __future__ import annotations

import shlex
from pathlib import Path

from annota.config import Settings
from annota.errors import ConfigurationError
from annota.server.archive.export import export

SUFFIX = ".annota"


class UpgradeBackup:
    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.directory = directory or settings.home / "backups"
        self.keep = settings.backup_keep
        self.written: Path | None = None

    def planned(self) -> str:
        return str(self.directory / f"annota-<release>-<time>{SUFFIX}")

    def write(self) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {self.directory} for the upgrade's "
                                     f"backup: {exc.strerror or exc}; pass --backup-to DIR "
                                     "or --no-backup") from None
        self.written = export(self.settings, self.directory).path
        self._prune()
        return self.written

    def _prune(self) -> None:
        archives = sorted((p for p in self.directory.glob(f"annota-*{SUFFIX}")
                           if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in archives[self.keep:]:
            old.unlink(missing_ok=True)

    @staticmethod
    def restore_command(path: Path | str) -> str:
        return ("into an empty database (a new ANNOTA_DATABASE_URL, or the SQLite file moved "
                f"aside): annota server database import {shlex.quote(str(path))}")
