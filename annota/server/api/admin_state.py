"""What the dashboard shows, read in one place: the release and what is still ahead, the
async migrations, the backfill jobs with rate and ETA, and each dataset's index against
its records. Nothing secret: the database and engine appear masked, users not at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.errors import AnnotaError
from annota.server.domain import models as m
from annota.server.schema import async_migrations
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history


def release(settings: Settings) -> dict[str, Any]:
    state = migrations.status(settings)
    hist = history()
    ahead = hist.plan(state.current, hist.head.revision).steps if state.current else []
    return {
        "database": settings.database_url.masked,
        "revision": state.current, "release": state.current_release,
        "head": hist.head.revision, "head_release": hist.head.release,
        "state": state.state.replace("_", " "),
        "current": state.state == migrations.UP_TO_DATE,
        "ahead": [{"revision": s.revision.revision, "release": s.revision.release,
                   "description": s.revision.description,
                   "gate": [*s.revision.requires_backfills,
                            *s.revision.requires_async_migrations]}
                  for s in ahead if s.direction == "upgrade"],
    }


def async_rows(connection: sa.Connection) -> list[dict[str, Any]]:
    if not sa.inspect(connection).has_table("async_migrations"):
        return []
    return [{"name": r["name"], "revision": r["revision"], "status": r["status"],
             "attempts": r["attempts"], "error": r["error"],
             "runnable": r["status"] in (async_migrations.SCHEDULED, async_migrations.ERROR)}
            for r in async_migrations.listing(connection)]


def backfill_rows(connection: sa.Connection) -> list[dict[str, Any]]:
    from annota.server.jobs import backfill_jobs as jobs

    if not sa.inspect(connection).has_table("backfill_jobs"):
        return []
    now = m.utcnow()
    out = []
    for row in jobs.jobs(connection):
        total, done = row["total"], row["processed"] or 0
        rate = eta = None
        started = _naive(row["started_at"])
        until = _naive(row["finished_at"]) or (now if row["status"] == "RUNNING" else None)
        if started and until and until > started and done:
            rate = done / (until - started).total_seconds()
            if row["status"] == "RUNNING" and total:
                eta = max(0.0, (total - done) / rate)
        out.append({"name": row["name"], "dataset_id": str(row["dataset_id"]),
                    "dataset": row["dataset_name"], "status": row["status"],
                    "processed": done, "total": total, "attempts": row["attempts"],
                    "last_error": row["last_error"],
                    "rate": round(rate, 1) if rate else None,
                    "eta_seconds": round(eta, 1) if eta is not None else None})
    return out


def indices(settings: Settings, engine: Any, tasks: Any) -> dict[str, Any]:
    from annota.search import maintenance

    try:
        state = maintenance.status(settings, engine)
    except AnnotaError as exc:
        return {"error": str(exc), "datasets": []}
    out = []
    for d in state.datasets:
        task = tasks.running(d.dataset_id)
        out.append({"dataset_id": d.dataset_id, "dataset": d.name, "records": d.records,
                    "documents": d.documents, "drift": list(d.reasons),
                    "needs_reindex": d.needs_reindex,
                    "task": task.to_dict() if task else None})
    return {"error": None, "datasets": out}


def _naive(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=None) if value is not None and value.tzinfo else value
