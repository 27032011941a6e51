"""``status`` (database vs index, per dataset) and ``cleanup`` (indices no alias uses)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from annota.config import Settings
from annota.search import connect
from annota.search.engine import EngineInfo, SearchEngine, index_pattern
from annota.search.lease import STALE_SECONDS, live_builds
from annota.search.mapping import MAPPING_VERSION
from annota.search.reindex import DatasetPlan, identity_differences, plan
from annota.server.db import open_database, read_only
from annota.server.schema.migrate import ensure_at_head


@dataclass
class DatasetIndexStatus:
    dataset_id: str
    name: str
    records: int
    documents: int | None
    index: str | None
    mapping_version: int | None
    reasons: list[str] = field(default_factory=list)

    @property
    def needs_reindex(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "name": self.name, "records": self.records,
                "documents": self.documents, "index": self.index,
                "mapping_version": self.mapping_version, "needs_reindex": self.needs_reindex,
                "reasons": self.reasons}


@dataclass
class SearchStatus:
    engine: EngineInfo
    datasets: list[DatasetIndexStatus]
    orphans: list[str]

    @property
    def drift(self) -> bool:
        return any(d.needs_reindex for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": {"kind": self.engine.kind, "version": self.engine.version},
                "datasets": [d.to_dict() for d in self.datasets], "orphans": self.orphans,
                "drift": self.drift}


def status(settings: Settings, engine: SearchEngine | None = None, *,
           verify: bool = False) -> SearchStatus:
    """Each dataset's index against its records: by count, mapping version and settings;
    with ``verify``, also by identity (every record's document at its version, no other
    document), which reads every id and version on both sides."""
    ensure_at_head(settings)
    engine = engine or connect(settings.search)
    datasets = [_dataset_status(engine, p) for p in plan(settings, None, engine)]
    if verify:
        _verify(settings, engine, [d for d in datasets if d.index])
    indices = engine.indices(index_pattern(engine.prefix))
    orphans = sorted(name for name, aliases in indices.items() if not aliases)
    return SearchStatus(engine.info(), datasets, orphans)


def _dataset_status(engine: SearchEngine, plan: DatasetPlan) -> DatasetIndexStatus:
    status = DatasetIndexStatus(plan.dataset_id, plan.name, plan.records, None, None, None)
    if not plan.current:
        status.reasons.append("no index")
        return status
    status.index = plan.current[0]
    status.documents = engine.count(plan.alias)
    meta = engine.mapping_meta(status.index).get(status.index, {}).get("annota", {})
    status.mapping_version = meta.get("mapping_version")
    if status.documents != plan.records:
        status.reasons.append(f"{plan.records} records but {status.documents} documents")
    if status.mapping_version != MAPPING_VERSION:
        status.reasons.append(
            f"mapping version {status.mapping_version} (this annota writes {MAPPING_VERSION})")
    if meta.get("settings_fingerprint") != plan.fingerprint:
        status.reasons.append("dataset settings changed since the index was built")
    return status


def _verify(settings: Settings, engine: SearchEngine,
            datasets: list[DatasetIndexStatus]) -> None:
    db = read_only(open_database(settings.database_url))
    try:
        for status in datasets:
            engine.refresh(status.index)
            stale, extra = identity_differences(db, engine, status.index,
                                                uuid.UUID(status.dataset_id))
            if stale or extra:
                status.reasons.append(
                    f"{len(stale)} records without their document at their version, "
                    f"{len(extra)} documents of no record")
    finally:
        db.dispose()


@dataclass
class CleanupResult:
    deleted: list[str] = field(default_factory=list)
    kept_building: list[str] = field(default_factory=list)  # a live reindex is filling them


def cleanup(settings: Settings, *, dry_run: bool = False,
            stale_after: float = STALE_SECONDS) -> CleanupResult:
    """Delete annota indices that no alias points to, except those a live reindex is
    building, on any machine: named by a lease that is renewed while it is watched (for up
    to ``stale_after`` seconds, and only when a lease names an unaliased index)."""
    engine = connect(settings.search)
    result = CleanupResult()
    indices = engine.indices(index_pattern(engine.prefix))
    unaliased = sorted(n for n, aliases in indices.items() if not aliases)
    building = live_builds(engine, set(unaliased), stale_after)
    now = engine.indices(index_pattern(engine.prefix)) if building else indices
    for name in unaliased:
        if name in building or now.get(name):  # a build's, or aliased while we watched
            result.kept_building.append(name)
            continue
        if not dry_run:
            engine.delete_index(name)
        result.deleted.append(name)
    return result
