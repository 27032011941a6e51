"""Backfills: derived data recomputed per dataset, as resumable jobs."""

from __future__ import annotations

from annota.server.jobs.backfills.agreement import Agreement
from annota.server.jobs.backfills.base import Backfill
from annota.server.jobs.backfills.record_status import RecordStatus

BACKFILLS: dict[str, Backfill] = {b.name: b for b in (RecordStatus(), Agreement())}
