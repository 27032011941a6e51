"""Merging a source's rows into a database: who and what exists already, and the rows
written with their ids kept (users and workspaces are matched by name).

- users: matched by username; a new one keeps its id (or gets a new one when another
  user has it). A user archived without credentials gets a random API key digest and a
  random password hash: it cannot log in until an owner sets them.
- workspaces: matched by name (or all datasets go to ``--workspace``); memberships follow.
- datasets: new ones keep their ids and all their rows. One whose id or name (in its
  target workspace) exists is a conflict, unless the existing one is identical (same
  digest): that is an import run before, and nothing is written for it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from annota.errors import ImportConflictError, InvalidArchiveError
from annota.server.archive import bulk
from annota.server.archive.rebuild import indexes_built_after
from annota.server.archive.snapshot import figures_of
from annota.server.archive.sources import Source
from annota.server.archive.tables import Scope, TableSpec, reflect, write_rows
from annota.server.archive.values import AnyUuid, Digest, uuid_text

CONFLICTS = ("fail", "skip", "replace")


@dataclass
class DatasetPlan:
    id: str
    name: str
    workspace: str
    action: str  # import | skip | replace | unchanged
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "workspace": self.workspace,
                "action": self.action, "reason": self.reason}


@dataclass
class MergePlan:
    users: dict[str, str] = field(default_factory=dict)  # source id -> target id
    new_users: set[str] = field(default_factory=set)  # source ids to insert
    workspaces: dict[str, str] = field(default_factory=dict)
    new_workspaces: dict[str, str] = field(default_factory=dict)  # target id -> name
    members: set[tuple[str, str]] = field(default_factory=set)  # existing pairs
    used_ids: dict[str, set[str]] = field(default_factory=dict)  # per small table
    datasets: list[DatasetPlan] = field(default_factory=list)
    replaced: set[str] = field(default_factory=set)  # target dataset ids to delete

    @property
    def writing(self) -> set[str]:
        return {d.id for d in self.datasets if d.action in ("import", "replace")}

    def remap(self, spec: TableSpec, values: list[Any]) -> list[Any]:
        """A source row as it is written to the target (users and workspaces mapped)."""
        if spec.name not in _MAPPED_TABLES:
            return values
        values = list(values)
        for column, mapping in (("user_id", self.users), ("workspace_id", self.workspaces)):
            if column in spec.columns:
                i = spec.index(column)
                values[i] = mapping.get(values[i], values[i])
        if spec.name in ("users", "workspaces"):
            i = spec.index("id")
            values[i] = (self.users if spec.name == "users" else self.workspaces).get(
                values[i], values[i])
        return values


_MAPPED_TABLES = ("users", "workspaces", "workspaces_users", "datasets", "responses")


def _pairs(connection: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in connection.execute(sa.text(sql)).all()]


def plan_merge(target: sa.Connection | None, source: Source, *, workspace: str | None,
               on_conflict: str) -> MergePlan:
    """Decide everything before anything is written. ``target`` None: an empty database."""
    plan = MergePlan()
    specs = {s.name: s for s in source.specs}
    users = _pairs(target, "SELECT username, id FROM users") if target is not None else []
    by_username = {name: uuid_text(i) for name, i in users}
    plan.used_ids["users"] = set(by_username.values())
    for values in _source_rows(source, specs["users"]):
        row = dict(zip(specs["users"].columns, values, strict=True))
        if row["username"] in by_username:
            plan.users[row["id"]] = by_username[row["username"]]
            continue
        plan.users[row["id"]] = _free(row["id"], plan.used_ids["users"])
        plan.new_users.add(row["id"])
    spaces = _pairs(target, "SELECT name, id FROM workspaces") if target is not None else []
    by_name = {name: uuid_text(i) for name, i in spaces}
    plan.used_ids["workspaces"] = set(by_name.values())
    source_spaces = {row[0]: row[1] for row in (
        (v[specs["workspaces"].index("id")], v[specs["workspaces"].index("name")])
        for v in _source_rows(source, specs["workspaces"]))}
    for source_id, name in source_spaces.items():
        name = workspace or name
        if name not in by_name:
            by_name[name] = _free(source_id, plan.used_ids["workspaces"])
            plan.new_workspaces[by_name[name]] = name
        plan.workspaces[source_id] = by_name[name]
    if workspace and workspace not in by_name:
        by_name[workspace] = str(uuid.uuid4())
        plan.new_workspaces[by_name[workspace]] = workspace
    if target is not None:
        plan.members = {(uuid_text(w), uuid_text(u)) for w, u in _pairs(
            target, "SELECT workspace_id, user_id FROM workspaces_users")}
        plan.used_ids["workspaces_users"] = {uuid_text(i) for (i,) in _pairs(
            target, "SELECT id FROM workspaces_users")}
    _plan_datasets(plan, target, source, specs, by_name, source_spaces, on_conflict)
    return plan


def _free(wanted: str, used: set[str]) -> str:
    chosen = wanted if wanted not in used else str(uuid.uuid4())
    used.add(chosen)
    return chosen


def _source_rows(source: Source, spec: TableSpec) -> Iterator[list[Any]]:
    for _dataset, values in source.rows(spec):
        yield values


def _plan_datasets(plan: MergePlan, target: sa.Connection | None, source: Source,
                   specs: dict[str, TableSpec], spaces: dict[str, str],
                   source_spaces: dict[str, str], on_conflict: str) -> None:
    spec = specs["datasets"]
    existing: dict[str, tuple[str, str]] = {}
    if target is not None:
        existing = {uuid_text(i): (n, uuid_text(w)) for i, n, w in _pairs(
            target, "SELECT id, name, workspace_id FROM datasets")}
    by_name = {(n, w): i for i, (n, w) in existing.items()}
    names = {v: k for k, v in spaces.items()}
    conflicts: list[str] = []
    for values in _source_rows(source, spec):
        row = dict(zip(spec.columns, values, strict=True))
        ws = plan.workspaces[row["workspace_id"]]
        entry = DatasetPlan(str(row["id"]), row["name"], names[ws], "import")
        same_name = by_name.get((row["name"], ws))
        clashes = [i for i in {row["id"] if row["id"] in existing else None, same_name} if i]
        if clashes:
            if clashes == [row["id"]] and _identical(plan, target, source, specs, row["id"]):
                entry.action, entry.reason = "unchanged", "imported before (same digest)"
            else:
                entry.reason = ("its id exists" if row["id"] in existing else
                                f"workspace {names[ws]!r} has a dataset named {row['name']!r}")
                entry.action = {"fail": "conflict", "skip": "skip",
                                "replace": "replace"}[on_conflict]
                if on_conflict == "replace":
                    plan.replaced.update(clashes)
                conflicts.append(f"{row['name']!r} ({row['id']}): {entry.reason}")
        plan.datasets.append(entry)
    if conflicts and on_conflict == "fail":
        shown = "; ".join(conflicts[:3]) + (f"; and {len(conflicts) - 3} more"
                                            if len(conflicts) > 3 else "")
        raise ImportConflictError(
            f"{len(conflicts)} dataset{'s' * (len(conflicts) != 1)} of the archive exist "
            f"in the database: {shown}; pass --on-conflict skip or replace. Nothing was "
            "written")


def _identical(plan: MergePlan, target: sa.Connection, source: Source,
               specs: dict[str, TableSpec], dataset: str) -> bool:
    """The target's dataset holds the source's data (rows mapped as they would be written;
    derived values aside, which an import may have recomputed)."""
    ours = figures_of(target, reflect(target), Scope([dataset], credentials=False),
                      primary=True)
    theirs = Digest()
    for spec in specs.values():
        if not _dataset_bound(spec):
            continue
        for row_dataset, values in source.rows(spec):
            if row_dataset == dataset:
                mapped = plan.remap(spec, values)
                value = spec.codec.hash(spec.codec.encode(mapped), primary=True)
                if value:
                    theirs.add(value)
    return ours.datasets.get(str(dataset), Digest()) == theirs


def _dataset_bound(spec: TableSpec) -> bool:
    return spec.name == "datasets" or spec.name not in (
        "users", "workspaces", "workspaces_users")


def write(connection: sa.Connection, source: Source, plan: MergePlan, progress=None,  # noqa: ANN001
          expected: dict[str, int] | None = None) -> dict[str, int]:
    """Write the plan's rows in one transaction (the caller's); rows written per table.
    ``expected``: rows to come per table (the big ones into empty tables load without
    their indexes, built after)."""
    target = {s.name: s for s in reflect(connection)}  # before any index is dropped
    with indexes_built_after(connection, expected or {}):
        return _write(connection, source, plan, target, progress)


def _write(connection: sa.Connection, source: Source, plan: MergePlan,
           target: dict[str, TableSpec], progress) -> dict[str, int]:  # noqa: ANN001
    if plan.replaced:
        datasets = sa.table("datasets", sa.column("id", AnyUuid()))
        connection.execute(sa.delete(datasets).where(datasets.c.id.in_(plan.replaced)))
    written: dict[str, int] = {}
    writing = plan.writing
    for spec in source.specs:
        have = target.get(spec.name)
        if have is None or set(have.columns) != set(spec.columns):
            raise InvalidArchiveError(
                f"the archive's table {spec.name} does not match this database's at the "
                "same revision; nothing was written")
        chunks = getattr(source, "chunks", None)
        if chunks is not None and bulk.usable(connection, have):
            written[spec.name] = bulk.copy_member(connection, chunks(spec.name), spec, have,
                                                  writing, plan.users, progress)
            continue
        order = [spec.index(c) for c in have.columns]
        rows = (plan.remap(spec, v) for v in _chosen(spec, source, plan, writing))
        written[spec.name] = write_rows(connection, have, _counted(
            ([r[i] for i in order] for r in rows), progress))
    if plan.new_workspaces:
        _insert_new_workspaces(connection, plan)
    return written


def _chosen(spec: TableSpec, source: Source, plan: MergePlan, writing: set[str]
            ) -> Iterator[list[Any]]:
    if spec.name == "users":
        credentials = [spec.index(c) for c in ("api_key", "password_hash")]
        for _d, values in source.rows(spec):
            if values[spec.index("id")] in plan.new_users:
                if values[credentials[0]] is None:
                    values = _without_login(values, credentials)
                yield values
    elif spec.name == "workspaces":
        for _d, values in source.rows(spec):
            name = plan.new_workspaces.pop(plan.workspaces[values[spec.index("id")]], None)
            if name is not None:  # created by this import (the archive's, or --workspace)
                values = list(values)
                values[spec.index("name")] = name
                yield values
    elif spec.name == "workspaces_users":
        used = plan.used_ids.setdefault("workspaces_users", set())
        for _d, values in source.rows(spec):
            mapped = plan.remap(spec, values)
            pair = (mapped[spec.index("workspace_id")], mapped[spec.index("user_id")])
            if pair in plan.members:
                continue
            plan.members.add(pair)
            values = list(values)
            values[spec.index("id")] = _free(values[spec.index("id")], used)
            yield values
    else:
        for dataset, values in source.rows(spec):
            if dataset in writing:
                yield values


def _insert_new_workspaces(connection: sa.Connection, plan: MergePlan) -> None:
    """Workspaces the plan creates that no source row carries (``--workspace NAME``)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    table = sa.table("workspaces", sa.column("id", AnyUuid()), sa.column("name"),
                     sa.column("inserted_at", sa.DateTime()),
                     sa.column("updated_at", sa.DateTime()))
    connection.execute(table.insert(), [
        {"id": i, "name": n, "inserted_at": now, "updated_at": now}
        for i, n in plan.new_workspaces.items()])
    plan.new_workspaces.clear()


def _without_login(values: list[Any], credentials: list[int]) -> list[Any]:
    from annota.server.domain.users import hash_password, key_digest

    values = list(values)
    values[credentials[0]] = key_digest(secrets.token_urlsafe(32))
    values[credentials[1]] = hash_password(secrets.token_urlsafe(32))
    return values


def _counted(rows: Iterator[list[Any]], progress) -> Iterator[list[Any]]:  # noqa: ANN001
    n = 0
    for row in rows:
        yield row
        n += 1
        if progress and n % 1000 == 0:
            progress.advanced(1000)
    if progress:
        progress.advanced(n % 1000)
